"""Live task edits under concurrency: version locking, field merge, idempotent resends."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

from tests.support import Account, Hub, Peer


async def _board_with_task(hub: Hub, *editors: Account) -> tuple[str, dict[str, Any]]:
    owner = editors[0]
    board_id = await hub.create_board(owner)
    for editor in editors[1:]:
        await hub.add_member(owner, board_id, editor, "editor")
    peer = await hub.peer(owner)
    try:
        ack = await peer.call(
            "task:create", {"board_id": board_id, "title": "Shared", "position": 0}
        )
        assert ack["ok"], ack
        return board_id, ack["data"]["task"]
    finally:
        await peer.close()


async def _update(
    peer: Peer, task_id: str, base: int, changes: dict[str, Any], **extra: Any
) -> Any:
    return await peer.call(
        "task:update", {"task_id": task_id, "base_version": base, "changes": changes, **extra}
    )


async def test_same_field_from_same_base_exactly_one_wins(
    hub: Hub, start_hub: Callable[..., Any]
) -> None:
    other = await start_hub()  # the two writers sit on different nodes: no local lock helps
    alice, bob = await hub.register("Alice"), await hub.register("Bob")
    _, task = await _board_with_task(hub, alice, bob)
    a, b = await hub.peer(alice), await other.peer(bob)
    try:
        acks = await asyncio.gather(
            _update(a, task["id"], 1, {"title": "Alice's"}),
            _update(b, task["id"], 1, {"title": "Bob's"}),
        )
        winners = [ack for ack in acks if ack["ok"]]
        losers = [ack for ack in acks if not ack["ok"]]
        assert len(winners) == 1 and len(losers) == 1, acks
        error = losers[0]["error"]
        assert error["code"] == "version_conflict"
        assert error["details"]["conflicting_fields"] == ["title"]
        current = error["details"]["task"]
        assert current["version"] == 2
        assert current["title"] == winners[0]["data"]["task"]["title"]
    finally:
        await a.close()
        await b.close()
    conn = await hub.db()
    try:
        row = await conn.fetchrow(
            "SELECT title, version FROM tasks WHERE id = $1", uuid.UUID(task["id"])
        )
        events = await conn.fetchval(
            "SELECT count(*) FROM task_events WHERE task_id = $1", uuid.UUID(task["id"])
        )
    finally:
        await conn.close()
    assert row["version"] == 2 and row["title"] == current["title"]
    assert events == 2  # created + the one winning update


async def test_disjoint_fields_from_same_base_both_apply(hub: Hub) -> None:
    alice, bob = await hub.register("Alice"), await hub.register("Bob")
    _, task = await _board_with_task(hub, alice, bob)
    a, b = await hub.peer(alice), await hub.peer(bob)
    try:
        first = await _update(a, task["id"], 1, {"title": "New title"})
        second = await _update(b, task["id"], 1, {"priority": "urgent", "tags": ["x"]})
        assert first["ok"] and second["ok"], (first, second)
        merged = second["data"]["task"]
        assert merged["version"] == 3
        assert merged["title"] == "New title" and merged["priority"] == "urgent"
        assert merged["tags"] == ["x"]
        # a third edit from the original base touching a changed field conflicts
        third = await _update(a, task["id"], 1, {"priority": "low"})
        assert third["error"]["code"] == "version_conflict"
        assert third["error"]["details"]["conflicting_fields"] == ["priority"]
        assert third["error"]["details"]["task"]["version"] == 3
    finally:
        await a.close()
        await b.close()


async def test_resent_op_id_is_applied_once_and_gets_the_first_ack(
    hub: Hub, start_hub: Callable[..., Any]
) -> None:
    other = await start_hub()
    alice, bob = await hub.register("Alice"), await hub.register("Bob")
    board_id, task = await _board_with_task(hub, alice, bob)
    a, watcher = await hub.peer(alice), await hub.peer(bob)
    try:
        assert (await watcher.call("board:join", {"board_id": board_id}))["ok"]
        op_id = str(uuid.uuid4())
        first = await _update(a, task["id"], 1, {"title": "Once"}, op_id=op_id)
        await a.close()
        a = await hub.peer(alice)  # as after a reconnect
        again = await _update(a, task["id"], 1, {"title": "Once"}, op_id=op_id)
        assert first["ok"] and again == first
        assert first["data"]["task"]["version"] == 2
        await watcher.wait_for("task:updated")
        await asyncio.sleep(0.3)
        assert len(watcher.events("task:updated")) == 1
        # resends racing each other on two nodes are still applied once
        op2 = str(uuid.uuid4())
        a_elsewhere = await other.peer(alice)
        racing = await asyncio.gather(
            *(
                _update(peer, task["id"], 2, {"description": "raced"}, op_id=op2)
                for peer in (a, a_elsewhere, a, a_elsewhere)
            )
        )
        await a_elsewhere.close()
        assert all(ack == racing[0] for ack in racing) and racing[0]["ok"], racing
        # the same op_id with another payload is not answered with the first ack
        changed = await _update(a, task["id"], 2, {"description": "other"}, op_id=op2)
        assert changed["error"]["code"] == "invalid_payload"
        # the same op_id reused for another event is refused
        reused = await a.call("task:delete", {"task_id": task["id"], "op_id": op_id})
        assert reused["error"]["code"] == "invalid_payload"
    finally:
        await a.close()
        await watcher.close()
    conn = await hub.db()
    try:
        version = await conn.fetchval(
            "SELECT version FROM tasks WHERE id = $1", uuid.UUID(task["id"])
        )
        events = await conn.fetchval(
            "SELECT count(*) FROM task_events WHERE task_id = $1", uuid.UUID(task["id"])
        )
    finally:
        await conn.close()
    assert version == 3 and events == 3


async def test_twenty_editors_incrementing_lose_nothing(
    hub: Hub, start_hub: Callable[..., Any]
) -> None:
    other = await start_hub()
    editors = [await hub.register(f"Editor {n}") for n in range(20)]
    _, task = await _board_with_task(hub, *editors)
    # half the editors on each of two nodes, so only PostgreSQL can keep them apart
    peers = [await (hub, other)[n % 2].peer(account) for n, account in enumerate(editors)]
    successes = 0

    async def increment_ten_times(peer: Peer) -> None:
        nonlocal successes
        known = task
        for _ in range(10):
            while True:
                ack = await _update(
                    peer, task["id"], known["version"], {"position": known["position"] + 1}
                )
                if ack["ok"]:
                    successes += 1
                    known = ack["data"]["task"]
                    break
                assert ack["error"]["code"] == "version_conflict", ack
                known = ack["error"]["details"]["task"]

    try:
        await asyncio.wait_for(asyncio.gather(*(increment_ten_times(p) for p in peers)), 50)
    finally:
        await asyncio.gather(*(p.close() for p in peers))
    conn = await hub.db()
    try:
        row = await conn.fetchrow(
            "SELECT version, position FROM tasks WHERE id = $1", uuid.UUID(task["id"])
        )
    finally:
        await conn.close()
    assert successes == 200
    assert row["version"] == 1 + successes
    assert row["position"] == 200


async def test_move_delete_and_catch_up_by_seq(hub: Hub) -> None:
    alice = await hub.register("Alice")
    board_id, task = await _board_with_task(hub, alice)
    a = await hub.peer(alice)
    try:
        moved = await a.call(
            "task:move", {"task_id": task["id"], "base_version": 1, "status": "done", "position": 5}
        )
        assert moved["ok"], moved
        assert moved["data"]["type"] == "task.completed"
        assert moved["data"]["task"]["completed_at"] is not None
        reopened = await a.call(
            "task:move", {"task_id": task["id"], "base_version": 2, "status": "todo", "position": 1}
        )
        assert reopened["data"]["task"]["completed_at"] is None
        stale = await a.call("task:delete", {"task_id": task["id"], "base_version": 1})
        assert stale["error"]["code"] == "version_conflict"
        deleted = await a.call("task:delete", {"task_id": task["id"], "base_version": 3})
        assert deleted["ok"] and deleted["data"]["task"]["deleted_at"] is not None
        edit = await _update(a, task["id"], 4, {"title": "ghost"})
        assert edit["error"]["code"] == "not_found"

        catch_up = await a.call("board:join", {"board_id": board_id, "since_seq": 1})
        assert catch_up["data"]["mode"] == "events"
        assert [e["seq"] for e in catch_up["data"]["events"]] == [2, 3, 4]
        assert [e["type"] for e in catch_up["data"]["events"]] == [
            "task.completed",
            "task.status_changed",
            "task.deleted",
        ]
        snapshot = await a.call("board:join", {"board_id": board_id})
        assert snapshot["data"]["mode"] == "snapshot"
        assert snapshot["data"]["tasks"] == [] and snapshot["data"]["seq"] == 4
        ahead = await a.call("board:join", {"board_id": board_id, "since_seq": 99})
        assert ahead["data"]["mode"] == "snapshot"
    finally:
        await a.close()


async def test_merge_that_breaks_a_cross_field_rule_is_a_conflict(hub: Hub) -> None:
    alice, bob = await hub.register("Alice"), await hub.register("Bob")
    _, task = await _board_with_task(hub, alice, bob)
    a, b = await hub.peer(alice), await hub.peer(bob)
    try:
        first = await _update(a, task["id"], 1, {"start_date": "2030-01-10T00:00:00Z"})
        assert first["ok"], first
        # valid alone, invalid on top of Alice's edit: Bob must rebase, not fix input
        second = await _update(b, task["id"], 1, {"due_date": "2030-01-01T00:00:00Z"})
        assert second["error"]["code"] == "version_conflict", second
        assert second["error"]["details"]["task"]["start_date"] == "2030-01-10T00:00:00Z"
        assert second["error"]["details"]["conflicting_fields"] == ["due_date"]
        # against the current version the same edit is plain bad input
        third = await _update(b, task["id"], 2, {"due_date": "2030-01-01T00:00:00Z"})
        assert third["error"] == {
            "code": "invalid_payload",
            "message": "due_date must not be before start_date",
            "details": {"field": "due_date"},
        }
    finally:
        await a.close()
        await b.close()


async def test_concurrent_edits_on_one_node_reach_the_room_in_seq_order(hub: Hub) -> None:
    """The emit turn is taken before commit, so racing writers of one board are
    emitted by their node in seq order, though none waits for another's emit."""
    editors = [await hub.register(f"Racer {n}") for n in range(8)]
    board_id, _ = await _board_with_task(hub, *editors)
    peers = [await hub.peer(account) for account in editors]
    watcher = await hub.peer(editors[0])
    try:
        assert (await watcher.call("board:join", {"board_id": board_id}))["ok"]
        created = [
            await p.call("task:create", {"board_id": board_id, "title": f"Own {n}"})
            for n, p in enumerate(peers)
        ]
        tasks = [ack["data"]["task"] for ack in created]

        async def edit_five(peer: Peer, task: dict[str, Any]) -> None:
            version = task["version"]
            for n in range(5):
                ack = await _update(peer, task["id"], version, {"title": f"{task['title']} {n}"})
                assert ack["ok"], ack
                version = ack["data"]["task"]["version"]

        await asyncio.wait_for(
            asyncio.gather(*(edit_five(p, t) for p, t in zip(peers, tasks, strict=True))), 30
        )
        await watcher.wait_for("task:updated", 40)
        seqs = [
            data["seq"]
            for event, data in watcher.received
            if event in ("task:created", "task:updated")
        ]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs) == 48
    finally:
        await asyncio.gather(watcher.close(), *(p.close() for p in peers))
