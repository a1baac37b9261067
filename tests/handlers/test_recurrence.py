"""Completing a recurring task creates its next occurrence in the same transaction,
and the board's clients see the completion and the new task in seq order."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.support import Account, Hub, Peer

START = datetime(2026, 1, 30, 9, 0, tzinfo=UTC)  # a Friday
DUE = datetime(2026, 1, 31, 17, 30, tzinfo=UTC)  # a Saturday, the last day of January


async def _recurring(peer: Peer, board_id: str, rule: str, **fields: Any) -> dict[str, Any]:
    ack = await peer.call(
        "task:create",
        {
            "board_id": board_id,
            "title": "Water the plants",
            "description": "all of them",
            "priority": "high",
            "tags": ["home", "green"],
            "epic": "Garden",
            "start_date": START.isoformat(),
            "due_date": DUE.isoformat(),
            "recurrence": rule,
            **fields,
        },
    )
    assert ack["ok"], ack
    return dict(ack["data"]["task"])


async def _setup(hub: Hub) -> tuple[Account, Account, str, Peer]:
    owner, helper = await hub.register("Owner"), await hub.register("Helper")
    board_id = await hub.create_board(owner)
    await hub.add_member(owner, board_id, helper, "editor")
    peer = await hub.peer(owner)
    joined = await peer.call("board:join", {"board_id": board_id})
    assert joined["ok"], joined
    return owner, helper, board_id, peer


async def _tasks_in_db(hub: Hub) -> list[dict[str, Any]]:
    conn = await hub.db()
    try:
        rows = await conn.fetch("SELECT * FROM tasks ORDER BY created_at, id")
        return [dict(r) for r in rows]
    finally:
        await conn.close()


@pytest.mark.parametrize(
    ("rule", "start", "due"),
    [
        (
            "daily",
            datetime(2026, 1, 31, 9, 0, tzinfo=UTC),
            datetime(2026, 2, 1, 17, 30, tzinfo=UTC),
        ),
        (
            "weekly",
            datetime(2026, 2, 6, 9, 0, tzinfo=UTC),
            datetime(2026, 2, 7, 17, 30, tzinfo=UTC),
        ),
        (
            # the 30th and the 31st of January both become the last day of February
            "monthly",
            datetime(2026, 2, 28, 9, 0, tzinfo=UTC),
            datetime(2026, 2, 28, 17, 30, tzinfo=UTC),
        ),
        (
            # Mondays at 08:00: the next fire after Sat 31 Jan 17:30 is Mon 2 Feb 08:00,
            # and the start keeps its distance before the due date
            "0 8 * * 1",
            datetime(2026, 1, 31, 23, 30, tzinfo=UTC),
            datetime(2026, 2, 2, 8, 0, tzinfo=UTC),
        ),
    ],
    ids=["daily", "weekly", "monthly", "cron"],
)
async def test_completing_a_recurring_task_creates_the_next_occurrence(
    hub: Hub, rule: str, start: datetime, due: datetime
) -> None:
    owner, helper, board_id, peer = await _setup(hub)
    watcher = await hub.peer(helper)
    try:
        assert (await watcher.call("board:join", {"board_id": board_id}))["ok"]
        task = await _recurring(peer, board_id, rule, assignee_id=helper.id)
        done = await peer.call(
            "task:update",
            {"task_id": task["id"], "base_version": 1, "changes": {"status": "done"}},
        )
        assert done["ok"], done
        assert done["data"]["type"] == "task.completed"
        completion_seq = done["data"]["seq"]

        (created,) = [
            e
            for e in await watcher.wait_for("task:created", 2)
            if e["task"]["recurrence_of"] is not None
        ]
        nxt = created["task"]
        assert created["seq"] == completion_seq + 1
        assert created["type"] == "task.created" and created["actor_id"] == owner.id
        assert nxt["recurrence_of"] == task["id"] and nxt["id"] != task["id"]
        assert nxt["status"] == "todo" and nxt["completed_at"] is None
        assert datetime.fromisoformat(nxt["start_date"]) == start
        assert datetime.fromisoformat(nxt["due_date"]) == due
        for field in (
            "board_id",
            "title",
            "description",
            "priority",
            "assignee_id",
            "tags",
            "recurrence",
            "epic",
            "creator_id",
        ):
            assert nxt[field] == task[field], field

        # the completion first, then the new occurrence: the room sees them in seq order
        seqs = [
            data["seq"]
            for event, data in watcher.received
            if event in ("task:created", "task:updated")
        ]
        assert seqs == sorted(seqs) and seqs[-2:] == [completion_seq, completion_seq + 1]
    finally:
        await watcher.close()
        await peer.close()
    rows = await _tasks_in_db(hub)
    assert len(rows) == 2
    assert rows[1]["recurrence_of"] == uuid.UUID(task["id"])


async def test_moving_to_the_done_column_also_recurs_and_only_once(hub: Hub) -> None:
    _, _, board_id, peer = await _setup(hub)
    try:
        task = await _recurring(peer, board_id, "daily")
        moved = await peer.call(
            "task:move",
            {"task_id": task["id"], "base_version": 1, "position": 10, "status": "done"},
        )
        assert moved["ok"], moved
        await peer.wait_for("task:created", 2)
        # reopened and completed again: the series already moved on, no second occurrence
        reopened = await peer.call(
            "task:update",
            {"task_id": task["id"], "base_version": 2, "changes": {"status": "todo"}},
        )
        assert reopened["ok"], reopened
        again = await peer.call(
            "task:update",
            {"task_id": task["id"], "base_version": 3, "changes": {"status": "done"}},
        )
        assert again["ok"], again
        # a board event after it, so anything the second completion caused has arrived
        marker = await peer.call("task:create", {"board_id": board_id, "title": "marker"})
        assert marker["ok"], marker
        await peer.wait_for("task:created", 3)
    finally:
        await peer.close()
    rows = await _tasks_in_db(hub)
    assert sum(1 for r in rows if r["recurrence_of"] == uuid.UUID(task["id"])) == 1
    assert len(rows) == 3
    created = [d for e, d in peer.received if e == "task:created"]
    assert [d["task"]["title"] for d in created] == ["Water the plants"] * 2 + ["marker"]


async def test_resent_completion_creates_one_occurrence(hub: Hub) -> None:
    _, _, board_id, peer = await _setup(hub)
    op_id = str(uuid.uuid4())
    try:
        task = await _recurring(peer, board_id, "weekly")
        payload = {
            "task_id": task["id"],
            "base_version": 1,
            "changes": {"status": "done"},
            "op_id": op_id,
        }
        first = await peer.call("task:update", payload)
        second = await peer.call("task:update", payload)
        assert first["ok"] and second == first, (first, second)
    finally:
        await peer.close()
    assert len(await _tasks_in_db(hub)) == 2


async def test_non_recurring_and_undated_tasks(hub: Hub) -> None:
    _, _, board_id, peer = await _setup(hub)
    try:
        plain = await peer.call("task:create", {"board_id": board_id, "title": "Once"})
        assert plain["ok"], plain
        done = await peer.call(
            "task:update",
            {
                "task_id": plain["data"]["task"]["id"],
                "base_version": 1,
                "changes": {"status": "done"},
            },
        )
        assert done["ok"], done
        # a recurring task without dates recurs without dates
        undated = await _recurring(peer, board_id, "daily", start_date=None, due_date=None)
        done = await peer.call(
            "task:update",
            {"task_id": undated["id"], "base_version": 1, "changes": {"status": "done"}},
        )
        assert done["ok"], done
    finally:
        await peer.close()
    rows = await _tasks_in_db(hub)
    assert [(r["title"], r["status"]) for r in rows] == [
        ("Once", "done"),
        ("Water the plants", "done"),
        ("Water the plants", "todo"),
    ]
    assert rows[2]["recurrence_of"] == uuid.UUID(undated["id"])
    assert rows[2]["due_date"] is None and rows[2]["start_date"] is None


async def test_a_cron_expression_croniter_rejects_is_invalid_payload(hub: Hub) -> None:
    _, _, board_id, peer = await _setup(hub)
    try:
        # five fields, so the shape passes; minute 99 does not exist
        created = await peer.call(
            "task:create", {"board_id": board_id, "title": "Never", "recurrence": "99 * * * *"}
        )
        assert not created["ok"] and created["error"]["code"] == "invalid_payload", created
        task = await _recurring(peer, board_id, "daily")
        edited = await peer.call(
            "task:update",
            {"task_id": task["id"], "base_version": 1, "changes": {"recurrence": "0 25 * * *"}},
        )
        assert not edited["ok"] and edited["error"]["code"] == "invalid_payload", edited
    finally:
        await peer.close()
    rows = await _tasks_in_db(hub)
    assert len(rows) == 1 and rows[0]["recurrence"] == "daily" and rows[0]["version"] == 1
