"""A client's request_id travels with the event: the row, the Kafka record and its headers."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from protocol.records import decode_task_event
from tests.support import Hub
from tests.workers.kafka_tools import read_topic


async def test_request_id_reaches_the_kafka_record_and_headers(
    start_hub: Callable[..., Awaitable[Hub]],
) -> None:
    hub = await start_hub(EMBEDDED_WORKERS="outbox", OUTBOX_POLL_INTERVAL="0.2")
    alice = await hub.register("Alice")
    board_id = await hub.create_board(alice)
    peer = await hub.peer(alice)
    try:
        ack = await peer.call(
            "task:create", {"board_id": board_id, "title": "Traced", "request_id": "req-kafka-7"}
        )
        assert ack["ok"], ack
    finally:
        await peer.close()
    topic = hub.settings.kafka_topic_prefix + "task_events"
    for _ in range(100):
        records = await read_topic(hub.settings.kafka_bootstrap_servers, topic)
        if records:
            break
        await asyncio.sleep(0.1)
    (record,) = records
    assert decode_task_event(record.value).correlation_id == "req-kafka-7"
    headers = dict(record.headers)
    assert headers["correlation_id"] == b"req-kafka-7"
    assert headers["event_id"] == ack["data"]["event_id"].encode()
    assert record.key == ack["data"]["task_id"].encode()
