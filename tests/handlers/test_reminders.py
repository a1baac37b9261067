"""`reminders:create`, `reminders:list`, `reminders:dismiss`: who may, what is refused,
and that a refused call changes nothing. Delivery is tested in tests/workers/test_scheduler.py."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.support import Account, Hub


def _in(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


async def _board_task(hub: Hub, owner: Account) -> tuple[str, str]:
    board_id = await hub.create_board(owner)
    peer = await hub.peer(owner)
    try:
        ack = await peer.call("task:create", {"board_id": board_id, "title": "Remind me"})
        assert ack["ok"], ack
        return board_id, str(ack["data"]["task"]["id"])
    finally:
        await peer.close()


async def _reminder_rows(hub: Hub) -> list[dict[str, Any]]:
    conn = await hub.db()
    try:
        rows = await conn.fetch("SELECT * FROM reminders ORDER BY created_at, id")
        return [dict(r) for r in rows]
    finally:
        await conn.close()


async def test_member_creates_lists_and_dismisses_own_reminder(hub: Hub) -> None:
    owner, viewer = await hub.register("Owner"), await hub.register("Viewer")
    board_id, task_id = await _board_task(hub, owner)
    await hub.add_member(owner, board_id, viewer, "viewer")
    peer = await hub.peer(viewer)
    try:
        at = _in(3600)
        # a viewer may read the task, so may be reminded of it
        created = await peer.call(
            "reminders:create", {"task_id": task_id, "remind_at": at, "method": "email"}
        )
        assert created["ok"], created
        reminder = created["data"]
        assert reminder["user_id"] == viewer.id and reminder["task_id"] == task_id
        assert reminder["status"] == "scheduled" and reminder["method"] == "email"
        assert datetime.fromisoformat(reminder["remind_at"]) == datetime.fromisoformat(at)

        default = await peer.call("reminders:create", {"task_id": task_id, "remind_at": _in(60)})
        assert default["ok"] and default["data"]["method"] == "in_app", default

        listed = await peer.call("reminders:list", {"task_id": task_id})
        assert listed["ok"], listed
        # soonest first
        assert [r["id"] for r in listed["data"]["reminders"]] == [
            default["data"]["id"],
            reminder["id"],
        ]

        dismissed = await peer.call("reminders:dismiss", {"reminder_id": reminder["id"]})
        assert dismissed["ok"] and dismissed["data"]["status"] == "dismissed", dismissed
        again = await peer.call("reminders:dismiss", {"reminder_id": reminder["id"]})
        assert again["ok"] and again["data"]["status"] == "dismissed", again
    finally:
        await peer.close()
    statuses = {str(r["id"]): r["status"] for r in await _reminder_rows(hub)}
    assert statuses == {reminder["id"]: "dismissed", default["data"]["id"]: "scheduled"}
    # the `reminders` topic hears of each change once (the relay publishes the outbox)
    conn = await hub.db()
    try:
        records = await conn.fetch(
            "SELECT type FROM outbox WHERE topic = 'reminders' AND payload->>'reminder_id' = $1"
            " ORDER BY id",
            reminder["id"],
        )
    finally:
        await conn.close()
    assert [r["type"] for r in records] == ["reminder.scheduled", "reminder.dismissed"]


async def test_reminders_are_private_to_their_owner(hub: Hub) -> None:
    owner, editor = await hub.register("Owner"), await hub.register("Editor")
    board_id, task_id = await _board_task(hub, owner)
    await hub.add_member(owner, board_id, editor, "editor")
    mine, theirs = await hub.peer(owner), await hub.peer(editor)
    try:
        created = await mine.call("reminders:create", {"task_id": task_id, "remind_at": _in(600)})
        assert created["ok"], created
        listed = await theirs.call("reminders:list", {"task_id": task_id})
        assert listed["ok"] and listed["data"]["reminders"] == [], listed
        # another user's reminder is not theirs to see or dismiss
        refused = await theirs.call("reminders:dismiss", {"reminder_id": created["data"]["id"]})
        assert not refused["ok"] and refused["error"]["code"] == "not_found", refused
    finally:
        await mine.close()
        await theirs.close()
    (row,) = await _reminder_rows(hub)
    assert row["status"] == "scheduled" and str(row["user_id"]) == owner.id


async def test_non_member_is_forbidden_and_nothing_is_stored(hub: Hub) -> None:
    owner, stranger = await hub.register("Owner"), await hub.register("Stranger")
    _, task_id = await _board_task(hub, owner)
    peer = await hub.peer(stranger)
    try:
        for event, payload in (
            ("reminders:create", {"task_id": task_id, "remind_at": _in(600)}),
            ("reminders:list", {"task_id": task_id}),
        ):
            ack = await peer.call(event, payload)
            assert not ack["ok"] and ack["error"]["code"] == "forbidden", (event, ack)
        unknown = await peer.call(
            "reminders:create", {"task_id": str(uuid.uuid4()), "remind_at": _in(600)}
        )
        assert not unknown["ok"] and unknown["error"]["code"] == "not_found", unknown
        missing = await peer.call("reminders:dismiss", {"reminder_id": str(uuid.uuid4())})
        assert not missing["ok"] and missing["error"]["code"] == "not_found", missing
    finally:
        await peer.close()
    assert await _reminder_rows(hub) == []


async def test_reminder_on_a_deleted_task_is_not_found(hub: Hub) -> None:
    owner = await hub.register("Owner")
    _, task_id = await _board_task(hub, owner)
    peer = await hub.peer(owner)
    try:
        deleted = await peer.call("task:delete", {"task_id": task_id})
        assert deleted["ok"], deleted
        ack = await peer.call("reminders:create", {"task_id": task_id, "remind_at": _in(600)})
        assert not ack["ok"] and ack["error"]["code"] == "not_found", ack
    finally:
        await peer.close()
    assert await _reminder_rows(hub) == []


@pytest.mark.parametrize(
    ("change", "mentions"),
    [
        ({"remind_at": "past"}, "future"),
        ({"remind_at": "2030-01-01T10:00:00"}, "remind_at"),  # no timezone
        ({"remind_at": "tomorrow"}, "remind_at"),
        ({"remind_at": None}, "remind_at"),
        ({"method": "pigeon"}, "method"),
        ({"task_id": "not-a-uuid"}, "task_id"),
        ({"task_id": None}, "task_id"),
        ({"colour": "red"}, "colour"),
    ],
    ids=[
        "past",
        "naive",
        "not-a-time",
        "null-time",
        "method",
        "bad-task-id",
        "null-task",
        "unknown",
    ],
)
async def test_bad_create_is_refused_and_changes_nothing(
    hub: Hub, change: dict[str, Any], mentions: str
) -> None:
    owner = await hub.register("Owner")
    _, task_id = await _board_task(hub, owner)
    payload: dict[str, Any] = {"task_id": task_id, "remind_at": _in(600), **change}
    if payload["remind_at"] == "past":
        payload["remind_at"] = _in(-5)
    peer = await hub.peer(owner)
    try:
        ack = await peer.call("reminders:create", payload)
    finally:
        await peer.close()
    assert not ack["ok"] and ack["error"]["code"] == "invalid_payload", ack
    assert mentions in ack["error"]["message"] + str(ack["error"].get("details")), ack
    assert await _reminder_rows(hub) == []


async def test_bad_list_and_dismiss_are_refused(hub: Hub) -> None:
    owner = await hub.register("Owner")
    peer = await hub.peer(owner)
    try:
        for event, payload in (
            ("reminders:list", {}),
            ("reminders:list", {"task_id": 5}),
            ("reminders:dismiss", {}),
            ("reminders:dismiss", {"reminder_id": "x"}),
            ("reminders:dismiss", {"reminder_id": str(uuid.uuid4()), "extra": 1}),
        ):
            ack = await peer.call(event, payload)
            assert not ack["ok"] and ack["error"]["code"] == "invalid_payload", (event, ack)
    finally:
        await peer.close()


async def test_create_resent_with_the_same_op_id_is_stored_once(hub: Hub) -> None:
    owner = await hub.register("Owner")
    _, task_id = await _board_task(hub, owner)
    peer = await hub.peer(owner)
    op_id = str(uuid.uuid4())
    try:
        payload = {"task_id": task_id, "remind_at": _in(600), "op_id": op_id}
        first = await peer.call("reminders:create", payload)
        second = await peer.call("reminders:create", payload)
    finally:
        await peer.close()
    assert first["ok"] and second == first, (first, second)
    assert len(await _reminder_rows(hub)) == 1
