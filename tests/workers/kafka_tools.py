"""Reading and writing topics as another service would: plain aiokafka clients."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition

from protocol.records import TaskEventRecord, encode
from tests.support import Peer


async def read_topic(bootstrap: str, topic: str, timeout: float = 10) -> list[ConsumerRecord]:
    """Every record now in `topic`, partition by partition (no group: assign + seek)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        await consumer.topics()  # fills the metadata
        partitions = [
            TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        assert partitions, f"topic {topic} does not exist"
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        records: list[ConsumerRecord] = []
        deadline = asyncio.get_running_loop().time() + timeout
        while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
            assert asyncio.get_running_loop().time() < deadline, "topic not read in time"
            batches = await consumer.getmany(timeout_ms=200)
            for part in batches.values():
                records.extend(part)
        records.sort(key=lambda r: (r.partition, r.offset))
        return records
    finally:
        await consumer.stop()


async def produce(
    bootstrap: str,
    topic: str,
    values: Sequence[bytes],
    *,
    key: bytes | None = None,
    partition: int | None = None,
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=False)
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value, key=key, partition=partition)
    finally:
        await producer.stop()


def foreign_event(board_id: str, task_id: str | None = None, **fields: Any) -> TaskEventRecord:
    """A task event as another service of ours would produce it (no seq).

    The bridge relays it only if `task_id` is a stored task of `board_id`; the
    notifier and audit trail take it whatever the task.
    """
    values: dict[str, Any] = {
        "event_id": uuid.uuid4(),
        "type": "task.updated",
        "occurred_at": datetime.now(UTC),
        "source": "planner-service",
        "board_id": uuid.UUID(board_id),
        "task_id": uuid.UUID(task_id) if task_id else uuid.uuid4(),
        "changes": {"title": {"before": "a", "after": "b"}},
        **fields,
    }
    return TaskEventRecord(**values)


TASK_EVENTS = ("task:created", "task:updated", "task:deleted")


def seen_event_ids(peer: Peer) -> list[str]:
    """The event_id of every task event the client received, repeats included."""
    return [data["event_id"] for event, data in peer.received if event in TASK_EVENTS]


async def wait_for_event_ids(peer: Peer, wanted: set[str], timeout: float = 10) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not wanted <= set(seen_event_ids(peer)):
        missing = wanted - set(seen_event_ids(peer))
        assert asyncio.get_running_loop().time() < deadline, f"never received {missing}"
        await asyncio.sleep(0.05)


async def flush_bridge(
    bootstrap: str, topic: str, board_id: str, task_id: str, peer: Peer, partitions: int = 4
) -> None:
    """Put a foreign sentinel on every partition and wait until the client got all of them.

    The bridge handles a partition in order, so once a partition's sentinel
    arrived, every record before it on that partition was handled. `task_id`
    is a stored task of the board, which the sentinels are about.
    """
    sentinels = [foreign_event(board_id, task_id) for _ in range(partitions)]
    for number, record in enumerate(sentinels):
        await produce(bootstrap, topic, [encode(record)], partition=number)
    await wait_for_event_ids(peer, {str(r.event_id) for r in sentinels}, timeout=20)
