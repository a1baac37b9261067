"""The notifier against a real broker, database and Redis.

Most tests feed it records made by a plain aiokafka producer (as another
service of ours would), so they test the notifier alone; the first one goes the
whole way: a hub edit, the outbox relay, Kafka, the notifier, the client.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import msgspec
from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis

from protocol.records import TaskEventRecord, encode
from storage.keys import RedisKeys
from tests.support import Account, Hub, Peer

StartHub = Callable[..., Any]

# A new notification must reach the user's tabs "within a second"; on a loaded
# CI machine we allow two.
PUSH_DEADLINE = 2.0
# The first record also waits for the notifier's consumer group to form.
WARM_UP_DEADLINE = 20.0


async def _create_task(peer: Peer, board_id: str, **fields: Any) -> dict[str, Any]:
    ack = await peer.call("task:create", {"board_id": board_id, "title": "Write docs", **fields})
    assert ack["ok"], ack
    return ack["data"]  # type: ignore[no-any-return]


async def _update(peer: Peer, task: dict[str, Any], **changes: Any) -> dict[str, Any]:
    ack = await peer.call(
        "task:update",
        {"task_id": task["id"], "base_version": task["version"], "changes": changes},
    )
    assert ack["ok"], ack
    return ack["data"]  # type: ignore[no-any-return]


def _record(event: dict[str, Any], **overrides: Any) -> bytes:
    """The Kafka record of a task event the hub acked, as another producer would send it."""
    fields = {
        name: event[name]
        for name in (
            "event_id",
            "type",
            "occurred_at",
            "board_id",
            "task_id",
            "actor_id",
            "seq",
            "task",
            "changes",
        )
    }
    fields.update(overrides)
    return encode(msgspec.convert(fields, TaskEventRecord))


async def _produce(hub: Hub, key: str, *values: bytes) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=hub.settings.kafka_bootstrap_servers,
        acks="all",
        enable_idempotence=False,
    )
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(
                hub.settings.kafka_topic_prefix + "task_events", value, key=key.encode()
            )
    finally:
        await producer.stop()


async def _rows(hub: Hub, user: Account) -> list[dict[str, Any]]:
    conn = await hub.db()
    try:
        rows = await conn.fetch(
            "SELECT event_id, type, read_at FROM notifications WHERE user_id = $1",
            uuid.UUID(user.id),
        )
    finally:
        await conn.close()
    return [dict(r) for r in rows]


async def _team(hub: Hub) -> tuple[Account, Account, Account, str]:
    """Alice owns a board; Bob and Carol edit on it."""
    alice, bob, carol = (
        await hub.register("Alice"),
        await hub.register("Bob"),
        await hub.register("Carol"),
    )
    board_id = await hub.create_board(alice)
    await hub.add_member(alice, board_id, bob, "editor")
    await hub.add_member(alice, board_id, carol, "editor")
    return alice, bob, carol, board_id


async def test_assignment_through_the_relay_reaches_every_tab_of_the_assignee(
    start_hub: StartHub,
) -> None:
    hub: Hub = await start_hub(EMBEDDED_WORKERS="outbox,notifier")
    alice, bob, _carol, board_id = await _team(hub)
    actor = await hub.peer(alice)
    tab1, tab2 = await hub.peer(bob), await hub.peer(bob)
    redis = Redis.from_url(hub.settings.redis_url, decode_responses=True)
    pubsub = redis.pubsub()
    await pubsub.subscribe(RedisKeys(hub.settings.redis_key_prefix).notifications_channel())
    try:
        # Warm-up: the relay and the notifier's consumer group get going on a
        # first assignment, so the timed one below measures a running pipeline.
        first = (await _create_task(actor, board_id, assignee_id=bob.id))["task"]
        await tab1.wait_for("notification", 1, timeout=WARM_UP_DEADLINE)
        await tab2.wait_for("notification", 1, timeout=PUSH_DEADLINE)

        task = (await _create_task(actor, board_id))["task"]
        started = time.monotonic()
        event = await _update(actor, task, assignee_id=bob.id)
        assert event["type"] == "task.assigned"
        both = await asyncio.gather(
            tab1.wait_for("notification", 2, timeout=PUSH_DEADLINE),
            tab2.wait_for("notification", 2, timeout=PUSH_DEADLINE),
        )
        assert time.monotonic() - started < PUSH_DEADLINE
        for received in both:
            note = received[1]
            assert note["type"] == "task_assigned"
            assert note["user_id"] == bob.id
            assert note["task_id"] == task["id"]
            assert note["board_id"] == board_id
            assert note["event_id"] == event["event_id"]
            assert note["read_at"] is None
            assert "Write docs" in note["title"] and "Alice" in note["message"]
        assert both[0][1] == both[1][1]

        # the same notification went out on Redis for other services
        published: list[dict[str, Any]] = []
        deadline = time.monotonic() + PUSH_DEADLINE
        while len(published) < 2 and time.monotonic() < deadline:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.5)
            if message is not None:
                published.append(json.loads(message["data"]))
        assert [p["event_id"] for p in published] == [
            both[0][0]["event_id"],
            event["event_id"],
        ]

        # the actor is told nothing
        await asyncio.sleep(0.5)
        assert actor.events("notification") == []

        # reading on one tab clears the badge on both
        joined = await tab2.call("board:join", {"board_id": board_id})
        assert joined["data"]["unread_notifications"] == 2
        ids = [n["id"] for n in both[0]]
        ack = await tab1.call("notifications:read", {"ids": ids})
        assert ack == {"ok": True, "data": {"unread": 0}}
        assert (await tab2.wait_for("notifications:unread"))[-1] == {"unread": 0}
        joined = await tab2.call("board:join", {"board_id": board_id})
        assert joined["data"]["unread_notifications"] == 0
        assert first["assignee_id"] == bob.id
    finally:
        await pubsub.aclose()
        await redis.aclose()
        for peer in (actor, tab1, tab2):
            await peer.close()


async def test_a_notification_is_still_there_unread_after_reconnecting(
    start_hub: StartHub,
) -> None:
    hub: Hub = await start_hub(EMBEDDED_WORKERS="notifier")
    alice, bob, _carol, board_id = await _team(hub)
    actor = await hub.peer(alice)
    tab = await hub.peer(bob)
    try:
        created = await _create_task(actor, board_id, assignee_id=bob.id)
        await _produce(hub, created["task_id"], _record(created))
        pushed = (await tab.wait_for("notification", timeout=WARM_UP_DEADLINE))[0]
    finally:
        await tab.close()
        await actor.close()

    # tomorrow, on another device
    again = await hub.peer(bob)
    try:
        ack = await again.call("notifications:list", {})
        assert ack["ok"], ack
        assert ack["data"]["unread"] == 1
        assert ack["data"]["next"] is None
        assert ack["data"]["notifications"] == [pushed]
        assert pushed["read_at"] is None
    finally:
        await again.close()


async def test_status_changes_notify_creator_and_assignee_but_never_the_actor(
    start_hub: StartHub,
) -> None:
    hub: Hub = await start_hub(EMBEDDED_WORKERS="notifier")
    alice, bob, carol, board_id = await _team(hub)
    a, b, c = await hub.peer(alice), await hub.peer(bob), await hub.peer(carol)
    try:
        # Alice creates the task for Bob; Carol moves it along, then Bob finishes it.
        created = await _create_task(a, board_id, assignee_id=bob.id)
        moved = await _update(c, created["task"], status="in_progress")
        assert moved["type"] == "task.status_changed"
        done = await _update(b, moved["task"], status="done")
        assert done["type"] == "task.completed"
        await _produce(hub, created["task_id"], *(_record(e) for e in (created, moved, done)))

        # Bob: assigned (by Alice), status changed (by Carol); not his own completion
        bob_got = await b.wait_for("notification", 2, timeout=WARM_UP_DEADLINE)
        # Alice, the creator: the status change and the completion
        alice_got = await a.wait_for("notification", 2, timeout=PUSH_DEADLINE)
        await asyncio.sleep(0.5)  # anything more would have arrived by now
        assert [(n["type"], n["event_id"]) for n in b.events("notification")] == [
            ("task_assigned", created["event_id"]),
            ("task_status_changed", moved["event_id"]),
        ]
        assert "Carol" in bob_got[1]["message"] and "in_progress" in bob_got[1]["title"]
        assert [(n["type"], n["event_id"]) for n in a.events("notification")] == [
            ("task_status_changed", moved["event_id"]),
            ("task_completed", done["event_id"]),
        ]
        assert "Bob" in alice_got[1]["message"]
        # Carol acted, and she is neither creator nor assignee
        assert c.events("notification") == []
        assert await _rows(hub, carol) == []
    finally:
        for peer in (a, b, c):
            await peer.close()


async def test_redelivered_events_notify_once(start_hub: StartHub) -> None:
    hub: Hub = await start_hub(EMBEDDED_WORKERS="notifier")
    alice, bob, _carol, board_id = await _team(hub)
    a, b = await hub.peer(alice), await hub.peer(bob)
    try:
        created = await _create_task(a, board_id, assignee_id=bob.id)
        record = _record(created)
        # twice in one batch, and once more after the first was handled and committed
        await _produce(hub, created["task_id"], record, record)
        await b.wait_for("notification", timeout=WARM_UP_DEADLINE)
        await _produce(hub, created["task_id"], record)
        # a later event of the same task (same partition) proves the repeat was handled
        moved = await _update(a, created["task"], status="review")
        await _produce(hub, created["task_id"], _record(moved))
        await b.wait_for("notification", 2, timeout=PUSH_DEADLINE * 3)
        await asyncio.sleep(0.5)
        assert [n["event_id"] for n in b.events("notification")] == [
            created["event_id"],
            moved["event_id"],
        ]
        rows = await _rows(hub, bob)
        assert sorted(str(r["event_id"]) for r in rows) == sorted(
            [created["event_id"], moved["event_id"]]
        )
    finally:
        await a.close()
        await b.close()


async def test_a_second_hub_node_consuming_again_creates_nothing_new(
    start_hub: StartHub,
) -> None:
    """A replay by another node (the group's offsets lost, as when the embedded
    broker restarts) finds the rows there and pushes nothing."""
    first: Hub = await start_hub(EMBEDDED_WORKERS="notifier")
    alice, bob, _carol, board_id = await _team(first)
    a, b = await first.peer(alice), await first.peer(bob)
    try:
        created = await _create_task(a, board_id, assignee_id=bob.id)
        await _produce(first, created["task_id"], _record(created))
        await b.wait_for("notification", timeout=WARM_UP_DEADLINE)
        # A second node reads the same topic under a new group (its own topic
        # prefix names its group), so it consumes the record from the start.
        second: Hub = await start_hub(
            EMBEDDED_WORKERS="notifier", KAFKA_TOPIC_PREFIX=first.settings.kafka_topic_prefix + "x-"
        )
        moved = await _update(a, created["task"], status="review")
        await _produce(second, created["task_id"], _record(created), _record(moved))
        # the status change is new: it arrives; the replayed assignment does not
        await b.wait_for("notification", 2, timeout=WARM_UP_DEADLINE)
        await asyncio.sleep(0.5)
        assert [n["event_id"] for n in b.events("notification")] == [
            created["event_id"],
            moved["event_id"],
        ]
        assert len(await _rows(first, bob)) == 2
    finally:
        await a.close()
        await b.close()


async def test_delayed_task_notifies_assignee_and_owners(start_hub: StartHub) -> None:
    hub: Hub = await start_hub(EMBEDDED_WORKERS="notifier")
    alice, bob, carol, board_id = await _team(hub)
    a, b, c = await hub.peer(alice), await hub.peer(bob), await hub.peer(carol)
    try:
        created = await _create_task(
            a, board_id, assignee_id=bob.id, due_date="2020-01-01T09:00:00Z"
        )
        # the scheduler's event: no actor; Alice owns the board, Bob is the assignee
        delayed = _record(
            created,
            event_id=str(uuid.uuid4()),
            type="task.delayed",
            actor_id=None,
            changes={"is_delayed": {"before": False, "after": True}},
            occurred_at=datetime.now(UTC).isoformat(),
        )
        await _produce(hub, created["task_id"], delayed)
        got_b = await b.wait_for("notification", timeout=WARM_UP_DEADLINE)
        got_a = await a.wait_for("notification", timeout=PUSH_DEADLINE)
        await asyncio.sleep(0.5)
        for got in (got_a, got_b):
            assert len(got) == 1
            assert got[0]["type"] == "task_delayed"
            assert got[0]["level"] == "warning"
            assert "2020-01-01" in got[0]["message"]
        assert c.events("notification") == []
    finally:
        for peer in (a, b, c):
            await peer.close()


async def test_former_members_and_malformed_records_are_skipped(start_hub: StartHub) -> None:
    hub: Hub = await start_hub(EMBEDDED_WORKERS="notifier")
    alice, bob, carol, board_id = await _team(hub)
    a, b, c = await hub.peer(alice), await hub.peer(bob), await hub.peer(carol)
    try:
        for_bob = await _create_task(a, board_id, assignee_id=bob.id)
        for_carol = await _create_task(a, board_id, assignee_id=carol.id)
        status, body = await hub.request(
            "DELETE", f"/api/boards/{board_id}/members/{bob.id}", token=alice.access_token
        )
        assert status in (200, 204), body
        key = for_bob["task_id"]
        await _produce(
            hub,
            key,
            b"not json at all",
            b'{"event_id": "nope"}',
            _record(for_bob),  # Bob has left the board since
            _record(for_bob, event_id=str(uuid.uuid4()), task_id=str(uuid.uuid4())),  # no task
            _record(for_carol),
        )
        got = await c.wait_for("notification", timeout=WARM_UP_DEADLINE)
        assert got[0]["event_id"] == for_carol["event_id"]
        await asyncio.sleep(0.5)
        assert b.events("notification") == []
        assert await _rows(hub, bob) == []
        # the notifier lives on: a later record still arrives
        moved = await _update(a, for_carol["task"], status="review")
        await _produce(hub, for_carol["task_id"], _record(moved))
        await c.wait_for("notification", 2, timeout=PUSH_DEADLINE * 3)
    finally:
        for peer in (a, b, c):
            await peer.close()


async def test_a_notification_whose_push_was_lost_is_pushed_later(start_hub: StartHub) -> None:
    """A notifier that stored a notification and died before pushing it: the scheduler's
    sweep pushes it, once, to every tab of its user."""
    hub = await start_hub(EMBEDDED_WORKERS="scheduler", SCHEDULER_INTERVAL="0.2")
    user = await hub.register("Stranded")
    tab = await hub.peer(user)
    try:
        conn = await hub.db()
        try:
            stranded = await conn.fetchval(
                """INSERT INTO notifications (user_id, type, title, event_id, created_at)
                   VALUES ($1, 'system', 'left behind', gen_random_uuid(),
                           now() - interval '1 minute')
                   RETURNING id""",
                uuid.UUID(user.id),
            )
        finally:
            await conn.close()
        pushed = await tab.wait_for("notification", timeout=10)
        assert [n["id"] for n in pushed] == [str(stranded)]
        await asyncio.sleep(1)  # several sweeps later: still once
        assert len(tab.events("notification")) == 1
    finally:
        await tab.close()
    conn = await hub.db()
    try:
        assert await conn.fetchval("SELECT pushed_at FROM notifications WHERE id = $1", stranded)
    finally:
        await conn.close()
