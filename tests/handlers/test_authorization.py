"""Who may do what on a board: non-members nothing, viewers read, editors write."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from tests.support import Account, Hub, Peer


@dataclass
class Board:
    owner: Account
    owner_peer: Peer
    board_id: str
    task: dict[str, Any]  # a live task, version 1


async def _board(hub: Hub) -> Board:
    """A board whose owner is connected, joined, and created one task."""
    owner = await hub.register("Owner")
    board_id = await hub.create_board(owner)
    peer = await hub.peer(owner)
    assert (await peer.call("board:join", {"board_id": board_id}))["ok"]
    created = await peer.call("task:create", {"board_id": board_id, "title": "Existing"})
    assert created["ok"], created
    await peer.wait_for("task:created")
    return Board(owner, peer, board_id, created["data"]["task"])


async def _snapshot(hub: Hub, board_id: str) -> dict[str, Any]:
    conn = await hub.db()
    try:
        rows = await conn.fetch("SELECT * FROM tasks ORDER BY id")
        return {
            "tasks": [dict(row) for row in rows],
            "task_events": await conn.fetchval("SELECT count(*) FROM task_events"),
            "processed_ops": await conn.fetchval("SELECT count(*) FROM processed_ops"),
            "last_seq": await conn.fetchval(
                "SELECT last_seq FROM boards WHERE id = $1", uuid.UUID(board_id)
            ),
        }
    finally:
        await conn.close()


def _writes(board: Board) -> list[tuple[str, dict[str, Any]]]:
    """One of each write on `board`, each valid for an editor."""
    task_id = board.task["id"]
    return [
        ("task:create", {"board_id": board.board_id, "title": "Mine", "op_id": str(uuid.uuid4())}),
        (
            "task:update",
            {"task_id": task_id, "base_version": 1, "changes": {"title": "Hijacked"}},
        ),
        ("task:move", {"task_id": task_id, "base_version": 1, "position": 1.0, "status": "done"}),
        ("task:delete", {"task_id": task_id, "base_version": 1}),
    ]


def _about(received: list[tuple[str, Any]], board_id: str) -> list[tuple[str, Any]]:
    return [(event, data) for event, data in received if board_id in json.dumps(data)]


def _error(ack: dict[str, Any], code: str) -> None:
    assert ack["ok"] is False, ack
    assert ack["error"]["code"] == code, ack


async def test_a_non_member_can_neither_join_nor_write_nor_hear_a_board(hub: Hub) -> None:
    board = await _board(hub)
    editor = await hub.register("Editor")
    await hub.add_member(board.owner, board.board_id, editor, "editor")
    stranger = await hub.register("Stranger")
    editor_peer = await hub.peer(editor)
    outsider = await hub.peer(stranger)
    try:
        assert (await editor_peer.call("board:join", {"board_id": board.board_id}))["ok"]
        before = await _snapshot(hub, board.board_id)

        _error(await outsider.call("board:join", {"board_id": board.board_id}), "forbidden")
        _error(await outsider.call("presence:list", {"board_id": board.board_id}), "forbidden")
        for event, payload in _writes(board):
            _error(await outsider.call(event, payload), "forbidden")
        assert await _snapshot(hub, board.board_id) == before

        # The board stays busy; the editor hears all of it, the stranger none.
        created = await board.owner_peer.call(
            "task:create", {"board_id": board.board_id, "title": "After"}
        )
        assert created["ok"], created
        new_id = created["data"]["task"]["id"]
        updated = await board.owner_peer.call(
            "task:update", {"task_id": new_id, "base_version": 1, "changes": {"title": "Edited"}}
        )
        assert updated["ok"], updated
        deleted = await board.owner_peer.call("task:delete", {"task_id": new_id})
        assert deleted["ok"], deleted
        assert (await board.owner_peer.call("board:leave", {"board_id": board.board_id}))["ok"]
        assert (await board.owner_peer.call("board:join", {"board_id": board.board_id}))["ok"]
        await editor_peer.wait_for("task:created")
        await editor_peer.wait_for("task:updated")
        await editor_peer.wait_for("task:deleted")
        await editor_peer.wait_for("presence", 2)  # the owner left and came back
        # A round trip of the stranger's own after the last event reached the editor.
        _error(await outsider.call("presence:list", {"board_id": board.board_id}), "forbidden")
        assert _about(outsider.received, board.board_id) == []
        assert outsider.sio.connected
    finally:
        await outsider.close()
        await editor_peer.close()
        await board.owner_peer.close()


async def test_a_viewer_reads_but_every_write_is_forbidden(hub: Hub) -> None:
    board = await _board(hub)
    viewer = await hub.register("Viewer")
    await hub.add_member(board.owner, board.board_id, viewer, "viewer")
    peer = await hub.peer(viewer)
    try:
        joined = await peer.call("board:join", {"board_id": board.board_id})
        assert joined["ok"], joined
        assert [task["id"] for task in joined["data"]["tasks"]] == [board.task["id"]]
        listed = await peer.call("presence:list", {"board_id": board.board_id})
        assert listed["ok"], listed
        assert {user["id"] for user in listed["data"]["users"]} == {board.owner.id, viewer.id}

        before = await _snapshot(hub, board.board_id)
        for event, payload in _writes(board):
            ack = await peer.call(event, payload)
            _error(ack, "forbidden")
        assert await _snapshot(hub, board.board_id) == before
        assert [event for event, _ in peer.received if event.startswith("task:")] == []

        # Still a reader: the owner's edit reaches the viewer.
        edit = await board.owner_peer.call(
            "task:update",
            {"task_id": board.task["id"], "base_version": 1, "changes": {"title": "By owner"}},
        )
        assert edit["ok"], edit
        assert (await peer.wait_for("task:updated"))[0]["task"]["title"] == "By owner"
    finally:
        await peer.close()
        await board.owner_peer.close()


async def test_an_editor_can_write(hub: Hub) -> None:
    board = await _board(hub)
    editor = await hub.register("Editor")
    await hub.add_member(board.owner, board.board_id, editor, "editor")
    peer = await hub.peer(editor)
    try:
        assert (await peer.call("board:join", {"board_id": board.board_id}))["ok"]
        acks = []
        for (event, payload), base_version in zip(_writes(board), [None, 1, 2, 3], strict=True):
            if base_version is not None:  # each write bumps the task's version
                payload = {**payload, "base_version": base_version}
            ack = await peer.call(event, payload)
            assert ack["ok"], (event, ack)
            acks.append(ack["data"])
        assert [ack["seq"] for ack in acks] == [2, 3, 4, 5]

        conn = await hub.db()
        try:
            row = await conn.fetchrow(
                "SELECT title, status, version, deleted_at FROM tasks WHERE id = $1",
                uuid.UUID(board.task["id"]),
            )
            assert row["title"] == "Hijacked" and row["status"] == "done"
            assert row["version"] == 4 and row["deleted_at"] is not None
            assert await conn.fetchval("SELECT count(*) FROM tasks") == 2
            assert await conn.fetchval("SELECT count(*) FROM task_events") == 5
            assert (
                await conn.fetchval(
                    "SELECT last_seq FROM boards WHERE id = $1", uuid.UUID(board.board_id)
                )
                == 5
            )
        finally:
            await conn.close()
        # The owner hears the editor's writes.
        await board.owner_peer.wait_for("task:created", 2)
        await board.owner_peer.wait_for("task:updated", 2)
        await board.owner_peer.wait_for("task:deleted")
    finally:
        await peer.close()
        await board.owner_peer.close()


async def test_ids_that_do_not_exist_are_not_found(hub: Hub) -> None:
    board = await _board(hub)
    peer = board.owner_peer
    missing = str(uuid.uuid4())
    try:
        before = await _snapshot(hub, board.board_id)
        _error(await peer.call("board:join", {"board_id": missing}), "not_found")
        _error(await peer.call("presence:list", {"board_id": missing}), "not_found")
        _error(await peer.call("task:create", {"board_id": missing, "title": "X"}), "not_found")
        _error(
            await peer.call(
                "task:update", {"task_id": missing, "base_version": 1, "changes": {"title": "X"}}
            ),
            "not_found",
        )
        _error(
            await peer.call("task:move", {"task_id": missing, "base_version": 1, "position": 1}),
            "not_found",
        )
        _error(await peer.call("task:delete", {"task_id": missing}), "not_found")
        assert await _snapshot(hub, board.board_id) == before
        assert (await peer.call("presence:list", {"board_id": board.board_id}))["ok"]
    finally:
        await peer.close()


async def test_a_deleted_task_is_not_found(hub: Hub) -> None:
    board = await _board(hub)
    peer = board.owner_peer
    task_id = board.task["id"]
    try:
        deleted = await peer.call("task:delete", {"task_id": task_id, "base_version": 1})
        assert deleted["ok"], deleted
        before = await _snapshot(hub, board.board_id)
        assert before["last_seq"] == 2

        for base_version in (1, 2):
            _error(
                await peer.call(
                    "task:update",
                    {"task_id": task_id, "base_version": base_version, "changes": {"title": "Z"}},
                ),
                "not_found",
            )
        _error(
            await peer.call("task:move", {"task_id": task_id, "base_version": 2, "position": 3}),
            "not_found",
        )
        _error(await peer.call("task:delete", {"task_id": task_id}), "not_found")
        assert await _snapshot(hub, board.board_id) == before
        joined = await peer.call("board:join", {"board_id": board.board_id})
        assert joined["ok"] and joined["data"]["tasks"] == [], joined
    finally:
        await peer.close()
