"""`notifications:list`, `notifications:read` and the unread count of `board:join`.

Notifications are made here with the storage function the workers use, one per
transaction so each has its own creation time; the notifier's own tests are in
tests/workers/test_notifier.py.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from protocol.models import NotificationType
from storage import notifications
from tests.support import Account, Hub, Peer


async def _notify(hub: Hub, user: Account, count: int) -> list[str]:
    """`count` notifications for `user`, oldest first; returns their ids."""
    conn = await hub.db()
    try:
        ids = []
        for n in range(count):
            (created,) = await notifications.create(
                conn,
                [
                    notifications.Draft(
                        user_id=uuid.UUID(user.id),
                        type=NotificationType.SYSTEM,
                        title=f"note {n}",
                        event_id=uuid.uuid4(),
                    )
                ],
            )
            ids.append(str(created.id))
        return ids
    finally:
        await conn.close()


async def _unread_in_db(hub: Hub, user: Account) -> int:
    conn = await hub.db()
    try:
        return int(
            await conn.fetchval(
                "SELECT count(*) FROM notifications WHERE user_id = $1 AND read_at IS NULL",
                uuid.UUID(user.id),
            )
        )
    finally:
        await conn.close()


async def _list_all(peer: Peer, limit: int) -> list[list[dict[str, Any]]]:
    pages: list[list[dict[str, Any]]] = []
    before: str | None = None
    while True:
        payload: dict[str, Any] = {"limit": limit}
        if before is not None:
            payload["before"] = before
        ack = await peer.call("notifications:list", payload)
        assert ack["ok"], ack
        pages.append(ack["data"]["notifications"])
        before = ack["data"]["next"]
        if before is None:
            return pages


async def test_list_pages_unread_first_then_newest(hub: Hub) -> None:
    bob, alice = await hub.register("Bob"), await hub.register("Alice")
    ids = await _notify(hub, bob, 5)
    await _notify(hub, alice, 2)
    peer = await hub.peer(bob)
    try:
        ack = await peer.call("notifications:read", {"ids": [ids[0], ids[3]]})
        assert ack == {"ok": True, "data": {"unread": 3}}

        pages = await _list_all(peer, limit=2)
        assert [[n["id"] for n in page] for page in pages] == [
            [ids[4], ids[2]],
            [ids[1], ids[3]],
            [ids[0]],
        ]
        listed = [n for page in pages for n in page]
        assert [n["read_at"] is None for n in listed] == [True, True, True, False, False]
        assert {n["user_id"] for n in listed} == {bob.id}

        first = await peer.call("notifications:list", {})
        assert first["data"]["unread"] == 3
        assert first["data"]["next"] is None
        assert [n["id"] for n in first["data"]["notifications"]] == [n["id"] for n in listed]
        assert set(first["data"]["notifications"][0]) == {
            "id",
            "user_id",
            "type",
            "level",
            "title",
            "message",
            "task_id",
            "board_id",
            "event_id",
            "read_at",
            "created_at",
        }
    finally:
        await peer.close()


async def test_read_updates_every_tab_and_touches_only_own_notifications(hub: Hub) -> None:
    alice, bob = await hub.register("Alice"), await hub.register("Bob")
    alices = await _notify(hub, alice, 1)
    bobs = await _notify(hub, bob, 3)
    board_id = await hub.create_board(bob)
    tab1, tab2, other = await hub.peer(bob), await hub.peer(bob), await hub.peer(alice)
    try:
        joined = await tab1.call("board:join", {"board_id": board_id})
        assert joined["data"]["unread_notifications"] == 3

        # Alice's id in Bob's request, an unknown id, one of Bob's: only Bob's is read
        ack = await tab1.call(
            "notifications:read", {"ids": [alices[0], str(uuid.uuid4()), bobs[0]]}
        )
        assert ack == {"ok": True, "data": {"unread": 2}}
        assert await _unread_in_db(hub, alice) == 1
        assert (await tab2.wait_for("notifications:unread"))[-1] == {"unread": 2}

        # reading it again changes nothing
        ack = await tab2.call("notifications:read", {"ids": [bobs[0]]})
        assert ack == {"ok": True, "data": {"unread": 2}}

        ack = await tab2.call("notifications:read", {"all": True})
        assert ack == {"ok": True, "data": {"unread": 0}}
        await tab1.wait_for("notifications:unread", 3)
        assert tab1.events("notifications:unread")[-1] == {"unread": 0}
        assert await _unread_in_db(hub, alice) == 1
        await asyncio.sleep(0.3)
        assert other.events("notifications:unread") == []

        joined = await tab1.call("board:join", {"board_id": board_id})
        assert joined["data"]["unread_notifications"] == 0
    finally:
        for peer in (tab1, tab2, other):
            await peer.close()


BAD_LIST: list[tuple[str, Any]] = [
    ("limit-zero", {"limit": 0}),
    ("limit-over-100", {"limit": 101}),
    ("limit-string", {"limit": "10"}),
    ("limit-float", {"limit": 2.5}),
    ("before-empty", {"before": ""}),
    ("before-garbage", {"before": "not a cursor"}),
    ("before-base64-garbage", {"before": "aGVsbG8"}),
    ("before-number", {"before": 5}),
    ("before-too-long", {"before": "x" * 201}),
    ("unknown-field", {"bogus": 1}),
    ("not-an-object", ["limit", 5]),
    ("null", None),
]
BAD_READ: list[tuple[str, Any]] = [
    ("neither", {}),
    ("both", {"ids": ["{id}"], "all": True}),
    ("all-false", {"all": False}),
    ("all-string", {"all": "yes"}),
    ("ids-empty", {"ids": []}),
    ("ids-not-uuid", {"ids": ["not-a-uuid"]}),
    ("ids-one-bad", {"ids": ["{id}", "nope"]}),
    ("ids-not-list", {"ids": "{id}"}),
    ("ids-over-500", {"ids": ["{id}"] * 501}),
    ("ids-null-and-all-null", {"ids": None, "all": None}),
    ("unknown-field", {"all": True, "bogus": 1}),
    ("not-an-object", "all"),
]


def _fill(value: Any, notification_id: str) -> Any:
    if isinstance(value, dict):
        return {k: _fill(v, notification_id) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, notification_id) for v in value]
    return notification_id if value == "{id}" else value


async def test_bad_input_is_refused_and_changes_nothing(hub: Hub) -> None:
    bob = await hub.register("Bob")
    (notification_id,) = await _notify(hub, bob, 1)
    tab, other_tab = await hub.peer(bob), await hub.peer(bob)
    try:
        cases = [("notifications:list", *case) for case in BAD_LIST] + [
            ("notifications:read", *case) for case in BAD_READ
        ]
        for event, name, payload in cases:
            ack = await tab.call(event, _fill(payload, notification_id))
            assert ack["ok"] is False, (event, name, ack)
            assert ack["error"]["code"] == "invalid_payload", (event, name, ack)
        assert await _unread_in_db(hub, bob) == 1
        await asyncio.sleep(0.3)
        assert other_tab.events("notifications:unread") == []
        assert tab.events("notifications:unread") == []
        # the connection is still good
        ack = await tab.call("notifications:list", {})
        assert ack["ok"] and ack["data"]["unread"] == 1
    finally:
        await tab.close()
        await other_tab.close()
