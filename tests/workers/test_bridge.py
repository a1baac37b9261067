"""Kafka into rooms: records that other services produce reach the board room.

A plain aiokafka producer plays the other service; a real Socket.IO client in
the board room is the observer.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from typing import Any

from handlers import task_service
from protocol.payloads import TaskCreate
from protocol.records import encode
from storage.db import create_pool, transaction
from storage.task_events import Origin
from tests.support import Hub, Peer
from tests.workers.kafka_tools import (
    flush_bridge,
    foreign_event,
    produce,
    seen_event_ids,
    wait_for_event_ids,
)

StartHub = Callable[..., Any]
# The first record also waits for the bridge's consumer group to form.
WARM_UP = 20.0


async def _board_with_task(hub: Hub) -> tuple[str, str, Peer]:
    """A board with one stored task, and its owner's client in the room."""
    owner = await hub.register("Owner")
    board_id = await hub.create_board(owner)
    peer = await hub.peer(owner)
    ack = await peer.call("board:join", {"board_id": board_id})
    assert ack["ok"], ack
    created = await peer.call("task:create", {"board_id": board_id, "title": "Stored"})
    assert created["ok"], created
    return board_id, created["data"]["task_id"], peer


def _foreign_seen(peer: Peer, created_event: str) -> list[str]:
    return [i for i in seen_event_ids(peer) if i != created_event]


async def test_a_record_from_another_producer_reaches_the_room_as_the_boards_next_event(
    start_hub: StartHub,
) -> None:
    hub: Hub = await start_hub(EMBEDDED_WORKERS="bridge")
    board_id, task_id, peer = await _board_with_task(hub)
    bootstrap = hub.settings.kafka_bootstrap_servers
    topic = hub.settings.kafka_topic_prefix + "task_events"
    stranger = await hub.register("Not a user of the record")

    changed = foreign_event(
        board_id,
        task_id,
        type="task.status_changed",
        seq=999,  # a producer's seq means nothing to the board
        actor_id=uuid.uuid4(),  # no such user
        correlation_id="planner-42",
    )
    assigned = foreign_event(
        board_id, task_id, type="task.assigned", actor_id=uuid.UUID(stranger.id)
    )
    await produce(bootstrap, topic, [encode(changed), encode(assigned)], key=task_id.encode())

    await wait_for_event_ids(peer, {str(assigned.event_id)}, timeout=WARM_UP)
    received = [data for name, data in peer.received if name == "task:updated"]
    assert [(e["event_id"], e["seq"]) for e in received] == [
        (str(changed.event_id), 2),
        (str(assigned.event_id), 3),
    ]
    first = received[0]
    assert first["board_id"] == board_id and first["task_id"] == task_id
    assert first["type"] == "task.status_changed"
    assert first["source"] == "planner-service"
    assert first["correlation_id"] == "planner-42"
    assert first["changes"] == {"title": {"before": "a", "after": "b"}}
    assert first["actor_id"] is None
    assert received[1]["actor_id"] == stranger.id
    # the snapshot is the stored task, not the producer's word
    assert first["task"]["title"] == "Stored" and first["task"]["version"] == 1

    # Part of the board's history: a client catching up gets them, in order.
    joined = await peer.call("board:join", {"board_id": board_id, "since_seq": 1})
    assert joined["data"]["mode"] == "events"
    assert [e["event_id"] for e in joined["data"]["events"]] == [
        str(changed.event_id),
        str(assigned.event_id),
    ]
    assert joined["data"]["seq"] == 3

    # The hub's next write follows them; a relayed event did not change the task.
    renamed = await peer.call(
        "task:update", {"task_id": task_id, "base_version": 1, "changes": {"title": "Mine"}}
    )
    assert renamed["ok"], renamed
    assert renamed["data"]["seq"] == 4 and renamed["data"]["task"]["version"] == 2

    # A deletion another service announces after the hub deleted the task.
    deleted = await peer.call("task:delete", {"task_id": task_id, "base_version": 2})
    assert deleted["ok"], deleted
    gone = foreign_event(board_id, task_id, type="task.deleted")
    await produce(bootstrap, topic, [encode(gone)], key=task_id.encode())
    await wait_for_event_ids(peer, {str(gone.event_id)})
    (relayed,) = [d for n, d in peer.received if d.get("event_id") == str(gone.event_id)]
    assert relayed["seq"] == 6 and relayed["task"]["deleted_at"] is not None
    await peer.close()


async def test_malformed_and_unfounded_records_are_skipped_and_the_next_good_one_arrives(
    start_hub: StartHub,
) -> None:
    hub: Hub = await start_hub(EMBEDDED_WORKERS="bridge")
    board_id, task_id, peer = await _board_with_task(hub)
    created_event = seen_event_ids(peer)[0]
    other_owner = await hub.register("Other owner")
    other_board = await hub.create_board(other_owner)
    other_peer = await hub.peer(other_owner)
    assert (await other_peer.call("board:join", {"board_id": other_board}))["ok"]
    bootstrap = hub.settings.kafka_bootstrap_servers
    topic = hub.settings.kafka_topic_prefix + "task_events"
    good = foreign_event(board_id, task_id)
    missing_fields = json.dumps(
        {"event_id": str(uuid.uuid4()), "type": "task.updated", "board_id": board_id}
    ).encode()
    bad = [
        b"\x00\xffnot json at all",
        missing_fields,
        encode(foreign_event(board_id, task_id, type="task.exploded")),
        encode(foreign_event(board_id, str(uuid.uuid4()))),  # no such task
        encode(foreign_event(other_board, task_id)),  # the task is on another board
        encode(foreign_event(board_id, task_id, type="task.deleted")),  # it is not deleted
    ]
    # One key, so one partition: the good record comes after the bad ones.
    await produce(bootstrap, topic, [*bad, encode(good)], key=task_id.encode())
    await wait_for_event_ids(peer, {str(good.event_id)}, timeout=WARM_UP)
    assert _foreign_seen(peer, created_event) == [str(good.event_id)]
    assert seen_event_ids(other_peer) == []

    # The bridge is still consuming after the bad records.
    later = foreign_event(board_id, task_id)
    await produce(bootstrap, topic, [encode(later)], key=task_id.encode())
    await wait_for_event_ids(peer, {str(later.event_id)})
    assert _foreign_seen(peer, created_event) == [str(good.event_id), str(later.event_id)]
    conn = await hub.db()
    try:
        seqs = await conn.fetch(
            "SELECT seq FROM task_events WHERE board_id = $1 ORDER BY seq", uuid.UUID(board_id)
        )
        assert [r["seq"] for r in seqs] == [1, 2, 3]  # nothing stored for the bad ones
    finally:
        await conn.close()
    await peer.close()
    await other_peer.close()


async def test_records_of_two_boards_fetched_together_keep_each_boards_order(
    start_hub: StartHub,
) -> None:
    """Records produced before the bridge's group forms come in one fetch: each board
    still numbers its own records in produced order, a repeat is kept once, and a
    rejected record in between takes no seq."""
    hub: Hub = await start_hub(EMBEDDED_WORKERS="bridge")
    board_a, task_a, peer_a = await _board_with_task(hub)
    board_b, task_b, peer_b = await _board_with_task(hub)
    bootstrap = hub.settings.kafka_bootstrap_servers
    topic = hub.settings.kafka_topic_prefix + "task_events"
    a1, a2, a3 = (foreign_event(board_a, task_a) for _ in range(3))
    b1, b2 = (foreign_event(board_b, task_b) for _ in range(2))
    contradicting = foreign_event(board_b, task_b, type="task.deleted")
    ordered = [a1, b1, a2, a1, contradicting, b2, a3]
    await produce(bootstrap, topic, [encode(r) for r in ordered], key=b"one-partition")

    for peer, wanted in ((peer_a, [a1, a2, a3]), (peer_b, [b1, b2])):
        await wait_for_event_ids(peer, {str(r.event_id) for r in wanted}, timeout=WARM_UP)
        received = [(d["event_id"], d["seq"]) for n, d in peer.received if n == "task:updated"]
        assert received == [(str(r.event_id), seq) for seq, r in enumerate(wanted, start=2)]
        board_id = board_a if peer is peer_a else board_b
        joined = await peer.call("board:join", {"board_id": board_id, "since_seq": 1})
        assert [e["event_id"] for e in joined["data"]["events"]] == [
            str(r.event_id) for r in wanted
        ]
        await peer.close()


async def _wait_published(hub: Hub, event_id: str, timeout: float = 10) -> None:
    conn = await hub.db()
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while not await conn.fetchval(
            "SELECT published_at IS NOT NULL FROM task_events WHERE event_id = $1",
            uuid.UUID(event_id),
        ):
            assert asyncio.get_running_loop().time() < deadline, "the relay never published it"
            await asyncio.sleep(0.05)
    finally:
        await conn.close()


async def test_hub_events_and_redeliveries_reach_the_room_once(start_hub: StartHub) -> None:
    hub: Hub = await start_hub(EMBEDDED_WORKERS="outbox,bridge", OUTBOX_POLL_INTERVAL="0.2")
    board_id, task_id, peer = await _board_with_task(hub)
    bootstrap = hub.settings.kafka_bootstrap_servers
    topic = hub.settings.kafka_topic_prefix + "task_events"

    # A hub edit: emitted by the hub after commit, relayed to Kafka, then seen
    # by the bridge, which must recognise it.
    ack = await peer.call("task:create", {"board_id": board_id, "title": "Made in the hub"})
    assert ack["ok"], ack
    hub_event = ack["data"]["event_id"]
    await _wait_published(hub, hub_event)
    # A foreign event delivered twice (a producer's retry).
    foreign = foreign_event(board_id, task_id)
    await produce(bootstrap, topic, [encode(foreign), encode(foreign)], key=b"same-partition")

    # Records after the hub's event on every partition: once they arrived, the
    # bridge has handled (and recognised) the hub's event too.
    await flush_bridge(bootstrap, topic, board_id, task_id, peer)
    seen = seen_event_ids(peer)
    assert seen.count(hub_event) == 1
    assert seen.count(str(foreign.event_id)) == 1
    await peer.close()


async def test_a_committed_event_nobody_emitted_reaches_the_room_through_the_bridge(
    start_hub: StartHub,
) -> None:
    """A write by a process that does not emit (a script, a node that died between
    commit and emit) still reaches connected clients, through the relay and bridge."""
    hub = await start_hub(EMBEDDED_WORKERS="outbox,bridge", OUTBOX_POLL_INTERVAL="0.2")
    owner = await hub.register("Owner")
    board_id = await hub.create_board(owner)
    peer = await hub.peer(owner)
    try:
        assert (await peer.call("board:join", {"board_id": board_id}))["ok"]
        pool = await create_pool(hub.settings.database_url, min_size=1, max_size=1)
        try:
            async with transaction(pool) as conn:
                event = await task_service.create(
                    conn,
                    uuid.UUID(owner.id),
                    TaskCreate(board_id=uuid.UUID(board_id), title="Written by a script"),
                    Origin("script-1"),
                )
        finally:
            await pool.close()
        created = await peer.wait_for("task:created", timeout=15)
        assert [e["event_id"] for e in created] == [str(event.event_id)]
        assert created[0]["task"]["title"] == "Written by a script"
    finally:
        await peer.close()
