"""Kafka clients as every worker uses them, and the one consume loop.

Offsets are committed only after a batch was handled, so a worker that dies
mid-batch handles it again on restart (at least once); handlers dedupe by
event_id. A handler that fails (PostgreSQL away, say) is retried with backoff
on the same records instead of skipping them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from aiokafka.errors import KafkaError

from workers.deps import WorkerDeps

log = logging.getLogger(__name__)

BatchHandler = Callable[[Sequence[ConsumerRecord]], Awaitable[None]]

RETRY_FIRST = 0.2
RETRY_MAX = 5.0


def make_producer(deps: WorkerDeps) -> AIOKafkaProducer:
    # The embedded broker refuses idempotent producers; correctness never depends
    # on idempotence anyway, since every consumer dedupes by event_id.
    return AIOKafkaProducer(
        bootstrap_servers=deps.config.kafka_bootstrap_servers,
        acks="all",
        enable_idempotence=deps.config.kafka_idempotence,
        linger_ms=2,
        request_timeout_ms=10_000,
        retry_backoff_ms=200,
    )


async def sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


async def start_with_retry(
    client: AIOKafkaProducer | AIOKafkaConsumer, stop: asyncio.Event, what: str
) -> bool:
    """Start a client, waiting for the broker as long as it takes; False if stopped first."""
    delay = RETRY_FIRST
    while not stop.is_set():
        try:
            await client.start()
            return True
        except (KafkaError, OSError) as exc:
            log.warning("kafka unreachable; retrying", extra={"client": what, "error": repr(exc)})
            with contextlib.suppress(Exception):
                await client.stop()
            await sleep_or_stop(stop, delay)
            delay = min(delay * 2, RETRY_MAX)
    return False


async def consume(
    deps: WorkerDeps,
    stop: asyncio.Event,
    *,
    name: str,
    topics: Sequence[str],
    handle: BatchHandler,
) -> None:
    """Consume `topics` in the worker's group until `stop`; commit after each handled batch."""
    consumer = AIOKafkaConsumer(
        *(deps.topic(t) for t in topics),
        bootstrap_servers=deps.config.kafka_bootstrap_servers,
        group_id=deps.group(name),
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=500,
        metadata_max_age_ms=5_000,
    )
    if not await start_with_retry(consumer, stop, name):
        return
    try:
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=200)
            records = [r for part in batches.values() for r in part]
            if not records:
                continue
            delay = RETRY_FIRST
            while True:
                try:
                    await handle(records)
                    break
                except Exception:
                    log.exception("handling a batch failed; retrying", extra={"worker": name})
                    await sleep_or_stop(stop, delay)
                    delay = min(delay * 2, RETRY_MAX)
                    if stop.is_set():
                        return  # uncommitted: handled again after the restart
            await consumer.commit()
    finally:
        await consumer.stop()
