"""The scheduler worker against real PostgreSQL and Redis, inside real hub nodes:
reminders fire once (two schedulers, a restart), other methods go through the
sender, and overdue tasks are marked delayed once."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.support import Account, Hub, Peer

# ticks of 0.1 s: "due in 1 s" is then seen within a tenth of a second
SCHEDULER = {"EMBEDDED_WORKERS": "scheduler", "SCHEDULER_INTERVAL": "0.1"}


def _in(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


async def _task(peer: Peer, board_id: str, **fields: Any) -> dict[str, Any]:
    ack = await peer.call("task:create", {"board_id": board_id, "title": "Call the vet", **fields})
    assert ack["ok"], ack
    return dict(ack["data"]["task"])


async def _remind(peer: Peer, task_id: str, seconds: float, method: str = "in_app") -> str:
    ack = await peer.call(
        "reminders:create", {"task_id": task_id, "remind_at": _in(seconds), "method": method}
    )
    assert ack["ok"], ack
    return str(ack["data"]["id"])


async def _wait_until(hub: Hub, query: str, *args: Any, expect: Any, timeout: float = 5) -> None:
    """Poll the database until `query` returns `expect` (for outcomes no client sees)."""
    conn = await hub.db()
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while (value := await conn.fetchval(query, *args)) != expect:
            assert asyncio.get_running_loop().time() < deadline, (query, value)
            await asyncio.sleep(0.05)
    finally:
        await conn.close()


async def _reminder_state(hub: Hub, reminder_id: str) -> dict[str, Any]:
    conn = await hub.db()
    try:
        row = await conn.fetchrow("SELECT * FROM reminders WHERE id = $1", uuid.UUID(reminder_id))
        notes = await conn.fetch(
            "SELECT * FROM notifications WHERE event_id = $1", uuid.UUID(reminder_id)
        )
        records = await conn.fetch(
            "SELECT topic, key, type, payload FROM outbox WHERE topic = 'reminders' ORDER BY id"
        )
    finally:
        await conn.close()
    return {
        "reminder": dict(row),
        "notifications": [dict(n) for n in notes],
        "records": [{**dict(r), "payload": json.loads(r["payload"])} for r in records],
    }


def _reminder_notes(peer: Peer) -> list[Any]:
    return [n for n in peer.events("notification") if n["type"] == "reminder"]


async def test_reminder_fires_once_with_two_schedulers_and_a_restart(
    start_hub: Callable[..., Any],
) -> None:
    front: Hub = await start_hub()  # the user's node runs no worker
    first: Hub = await start_hub(**SCHEDULER)
    await start_hub(**SCHEDULER)  # a second scheduler, racing the first
    owner: Account = await front.register("Owner")
    board_id = await front.create_board(owner)
    peer = await front.peer(owner)
    try:
        task = await _task(peer, board_id, due_date=_in(3600))
        reminder_id = await _remind(peer, task["id"], 1)

        (note,) = await peer.wait_for("notification", timeout=5)
        assert note["type"] == "reminder" and note["user_id"] == owner.id
        assert note["task_id"] == task["id"] and note["board_id"] == board_id
        assert note["title"] == "Reminder: Call the vet" and note["read_at"] is None

        # the scheduler that delivered it restarts; a new one starts; both keep ticking
        await first.server.close()
        third: Hub = await start_hub(**SCHEDULER)
        await asyncio.sleep(1.0)  # ten ticks of each scheduler still running
        assert len(_reminder_notes(peer)) == 1, peer.received

        # a sent reminder can no longer be dismissed
        refused = await peer.call("reminders:dismiss", {"reminder_id": reminder_id})
        assert not refused["ok"] and refused["error"]["code"] == "invalid_payload", refused
        listed = await peer.call("reminders:list", {"task_id": task["id"]})
        assert [r["status"] for r in listed["data"]["reminders"]] == ["sent"], listed
    finally:
        await peer.close()
    state = await _reminder_state(third, reminder_id)
    assert state["reminder"]["status"] == "sent" and state["reminder"]["attempts"] == 1
    assert state["reminder"]["sent_at"] is not None
    assert [str(n["id"]) for n in state["notifications"]] == [note["id"]]
    scheduled, record = state["records"]  # one record when set, one when delivered
    assert scheduled["type"] == "reminder.scheduled" and scheduled["key"] == task["id"]
    assert record["type"] == "reminder.sent" and record["key"] == task["id"]
    assert record["payload"]["reminder_id"] == reminder_id
    assert record["payload"]["status"] == "sent"


async def test_restart_before_the_reminder_is_due_still_delivers_it_once(
    start_hub: Callable[..., Any],
) -> None:
    front: Hub = await start_hub()
    scheduler: Hub = await start_hub(**SCHEDULER)
    owner: Account = await front.register("Owner")
    board_id = await front.create_board(owner)
    peer = await front.peer(owner)
    try:
        task = await _task(peer, board_id)
        reminder_id = await _remind(peer, task["id"], 1.5)
        await scheduler.server.close()
        await start_hub(**SCHEDULER)
        await peer.wait_for("notification", timeout=5)
        await asyncio.sleep(0.5)
        assert len(_reminder_notes(peer)) == 1
    finally:
        await peer.close()
    state = await _reminder_state(front, reminder_id)
    assert state["reminder"]["status"] == "sent" and len(state["notifications"]) == 1


async def test_email_reminder_goes_through_the_sender_not_the_inbox(
    start_hub: Callable[..., Any],
) -> None:
    hub: Hub = await start_hub(**SCHEDULER)
    owner: Account = await hub.register("Owner")
    board_id = await hub.create_board(owner)
    peer = await hub.peer(owner)
    try:
        task = await _task(peer, board_id)
        reminder_id = await _remind(peer, task["id"], 0.5, method="email")
        await _wait_until(
            hub,
            "SELECT status FROM reminders WHERE id = $1",
            uuid.UUID(reminder_id),
            expect="sent",
        )
    finally:
        await peer.close()
    state = await _reminder_state(hub, reminder_id)
    assert state["notifications"] == [] and _reminder_notes(peer) == []
    assert [r["type"] for r in state["records"]] == ["reminder.scheduled", "reminder.sent"]
    assert state["records"][0]["payload"]["method"] == "email"


async def test_reminder_of_a_deleted_task_fails_and_notifies_nobody(
    start_hub: Callable[..., Any],
) -> None:
    hub: Hub = await start_hub(**SCHEDULER)
    owner: Account = await hub.register("Owner")
    board_id = await hub.create_board(owner)
    peer = await hub.peer(owner)
    try:
        task = await _task(peer, board_id)
        reminder_id = await _remind(peer, task["id"], 0.5)
        deleted = await peer.call("task:delete", {"task_id": task["id"]})
        assert deleted["ok"], deleted
        await _wait_until(
            hub,
            "SELECT status FROM reminders WHERE id = $1",
            uuid.UUID(reminder_id),
            expect="failed",
        )
    finally:
        await peer.close()
    state = await _reminder_state(hub, reminder_id)
    assert state["reminder"]["last_error"] == "the task was deleted"
    assert state["notifications"] == [] and _reminder_notes(peer) == []
    assert [r["type"] for r in state["records"]] == ["reminder.scheduled", "reminder.failed"]


async def test_dismissed_reminder_never_fires(start_hub: Callable[..., Any]) -> None:
    hub: Hub = await start_hub(**SCHEDULER)
    owner: Account = await hub.register("Owner")
    board_id = await hub.create_board(owner)
    peer = await hub.peer(owner)
    try:
        task = await _task(peer, board_id)
        kept = await _remind(peer, task["id"], 0.8)
        dropped = await _remind(peer, task["id"], 0.5)
        ack = await peer.call("reminders:dismiss", {"reminder_id": dropped})
        assert ack["ok"], ack
        # the later one arrives, so the earlier one had its chance and did not
        (note,) = await peer.wait_for("notification", timeout=5)
        assert note["event_id"] == kept
        await asyncio.sleep(0.3)
        assert len(_reminder_notes(peer)) == 1
    finally:
        await peer.close()
    assert (await _reminder_state(hub, dropped))["reminder"]["status"] == "dismissed"


async def test_overdue_task_is_marked_delayed_once(start_hub: Callable[..., Any]) -> None:
    front: Hub = await start_hub()
    owner: Account = await front.register("Owner")
    board_id = await front.create_board(owner)
    peer = await front.peer(owner)
    try:
        assert (await peer.call("board:join", {"board_id": board_id}))["ok"]
        late = await _task(peer, board_id, title="Late", due_date=_in(1))
        past = datetime.now(UTC) - timedelta(days=1)
        # finished, or not due yet: never delayed
        await _task(peer, board_id, title="Done", status="done", due_date=past.isoformat())
        await _task(peer, board_id, title="Later", due_date=_in(3600))
        # two schedulers race for the same overdue task
        await start_hub(**SCHEDULER)
        await start_hub(**SCHEDULER)

        def delayed() -> list[Any]:
            return [e for e in peer.events("task:updated") if e["type"] == "task.delayed"]

        deadline = asyncio.get_running_loop().time() + 5
        while not delayed():
            assert asyncio.get_running_loop().time() < deadline, peer.received
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.6)  # several more ticks of both
        (event,) = delayed()
        assert event["task_id"] == late["id"] and event["actor_id"] is None
        assert event["task"]["is_delayed"] is True and event["task"]["version"] == 2
        assert event["changes"] == {"is_delayed": {"before": False, "after": True}}

        # moving the due date out of the past ends the delay, in the edit itself
        moved = await peer.call(
            "task:update",
            {"task_id": late["id"], "base_version": 2, "changes": {"due_date": _in(3600)}},
        )
        assert moved["ok"], moved
        assert moved["data"]["task"]["is_delayed"] is False
        assert moved["data"]["changes"]["is_delayed"] == {"before": True, "after": False}
        await asyncio.sleep(0.3)
        assert len(delayed()) == 1
    finally:
        await peer.close()
    conn = await front.db()
    try:
        rows = {
            r["title"]: (r["is_delayed"], r["version"])
            for r in await conn.fetch("SELECT title, is_delayed, version FROM tasks")
        }
        delays = await conn.fetch(
            "SELECT task_id, seq FROM task_events WHERE type = 'task.delayed'"
        )
        seqs = [r["seq"] for r in await conn.fetch("SELECT seq FROM task_events ORDER BY seq")]
    finally:
        await conn.close()
    assert rows == {"Late": (False, 3), "Done": (False, 1), "Later": (False, 1)}
    assert [str(r["task_id"]) for r in delays] == [late["id"]]
    assert seqs == list(range(1, len(seqs) + 1))  # no seq lost to the losing scheduler
