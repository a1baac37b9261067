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


async def _board_with_client(hub: Hub) -> tuple[str, Peer]:
    owner = await hub.register("Owner")
    board_id = await hub.create_board(owner)
    peer = await hub.peer(owner)
    ack = await peer.call("board:join", {"board_id": board_id})
    assert ack["ok"], ack
    return board_id, peer


async def test_a_record_from_another_producer_reaches_the_board_room(
    start_hub: StartHub,
) -> None:
    hub: Hub = await start_hub(EMBEDDED_WORKERS="bridge")
    board_id, peer = await _board_with_client(hub)
    bootstrap = hub.settings.kafka_bootstrap_servers
    topic = hub.settings.kafka_topic_prefix + "task_events"

    created = foreign_event(board_id, type="task.created")
    updated = foreign_event(board_id, str(created.task_id), type="task.status_changed")
    deleted = foreign_event(board_id, str(created.task_id), type="task.deleted")
    key = str(created.task_id).encode()
    await produce(bootstrap, topic, [encode(created), encode(updated), encode(deleted)], key=key)

    await wait_for_event_ids(peer, {str(deleted.event_id)}, timeout=WARM_UP)
    received = [(name, data) for name, data in peer.received if name.startswith("task:")]
    assert [(name, data["event_id"], data["type"]) for name, data in received] == [
        ("task:created", str(created.event_id), "task.created"),
        ("task:updated", str(updated.event_id), "task.status_changed"),
        ("task:deleted", str(deleted.event_id), "task.deleted"),
    ]
    body = received[1][1]
    assert body["board_id"] == board_id
    assert body["task_id"] == str(created.task_id)
    assert body["source"] == "planner-service"
    assert body["changes"] == {"title": {"before": "a", "after": "b"}}
    await peer.close()


async def test_malformed_records_are_skipped_and_the_next_good_one_arrives(
    start_hub: StartHub,
) -> None:
    hub: Hub = await start_hub(EMBEDDED_WORKERS="bridge")
    board_id, peer = await _board_with_client(hub)
    bootstrap = hub.settings.kafka_bootstrap_servers
    topic = hub.settings.kafka_topic_prefix + "task_events"
    task_id = str(uuid.uuid4())
    good = foreign_event(board_id, task_id)
    missing_fields = json.dumps(
        {"event_id": str(uuid.uuid4()), "type": "task.updated", "board_id": board_id}
    ).encode()
    unknown_type = encode(foreign_event(board_id, task_id, type="task.exploded"))
    # One key, so one partition: the good record comes after the bad ones.
    await produce(
        bootstrap,
        topic,
        [b"\x00\xffnot json at all", missing_fields, unknown_type, encode(good)],
        key=task_id.encode(),
    )
    await wait_for_event_ids(peer, {str(good.event_id)}, timeout=WARM_UP)
    assert seen_event_ids(peer) == [str(good.event_id)]

    # The bridge is still consuming after the bad records.
    later = foreign_event(board_id, task_id)
    await produce(bootstrap, topic, [encode(later)], key=task_id.encode())
    await wait_for_event_ids(peer, {str(later.event_id)})
    assert seen_event_ids(peer) == [str(good.event_id), str(later.event_id)]
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
    board_id, peer = await _board_with_client(hub)
    bootstrap = hub.settings.kafka_bootstrap_servers
    topic = hub.settings.kafka_topic_prefix + "task_events"

    # A hub edit: emitted by the hub after commit, relayed to Kafka, then seen
    # by the bridge, which must recognise it.
    ack = await peer.call("task:create", {"board_id": board_id, "title": "Made in the hub"})
    assert ack["ok"], ack
    hub_event = ack["data"]["event_id"]
    await _wait_published(hub, hub_event)
    # A foreign event delivered twice (a producer's retry).
    foreign = foreign_event(board_id)
    await produce(bootstrap, topic, [encode(foreign), encode(foreign)], key=b"same-partition")

    # Records after the hub's event on every partition: once they arrived, the
    # bridge has handled (and recognised) the hub's event too.
    await flush_bridge(bootstrap, topic, board_id, peer)
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
