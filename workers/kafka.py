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

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import IllegalStateError, KafkaError

from storage import outages
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
        # aiokafka's 500 ms default made the embedded broker hold records that long
        # before a room saw them; see Settings.kafka_fetch_max_wait_ms
        fetch_max_wait_ms=deps.config.kafka_fetch_max_wait_ms,
    )
    if not await start_with_retry(consumer, stop, name):
        return
    offsets = _CommittedOffsets(consumer, name)
    try:
        while not stop.is_set():
            try:
                batches = await consumer.getmany(timeout_ms=200)
            except KafkaError as exc:
                log.warning(
                    "kafka fetch failed; retrying", extra={"worker": name, "error": repr(exc)}
                )
                await sleep_or_stop(stop, RETRY_FIRST)
                continue
            records = [r for part in batches.values() for r in part]
            if not records:
                await offsets.check_broker_kept_them()
                continue
            if not await _handle(handle, records, stop, name):
                return  # stopped during an outage: uncommitted, handled again after restart
            try:
                await consumer.commit()
            except KafkaError as exc:
                # e.g. the group was rebalanced or the broker restarted: the records
                # come again after the rejoin and handlers dedupe them
                log.warning("offset commit failed", extra={"worker": name, "error": repr(exc)})
                continue
            offsets.committed(records)
    finally:
        await consumer.stop()


def _passing(exc: BaseException) -> bool:
    """A failure that passes: a dependency is away (storage.outages, which also knows
    the errors that only follow from a dropped database connection), or the broker.
    Anything else is the record's fault."""
    return isinstance(exc, KafkaError) or outages.is_outage(exc)


async def _handle(
    handle: BatchHandler, records: Sequence[ConsumerRecord], stop: asyncio.Event, name: str
) -> bool:
    """Handle records until done; False if `stop` came during an outage.

    An outage is waited out with backoff, on the same records. Any other failure
    is a record that can never be handled (a NUL in its text, say): the batch is
    split and handled one record at a time, and only the bad record is logged and
    skipped, so one poison record never stalls the worker.
    """
    delay = RETRY_FIRST
    while True:
        try:
            await handle(records)
            return True
        except Exception as exc:
            if _passing(exc):
                log.warning(
                    "a dependency is unavailable; retrying the batch",
                    extra={"worker": name, "error": outages.describe(exc)},
                )
                await sleep_or_stop(stop, delay)
                delay = min(delay * 2, RETRY_MAX)
                if stop.is_set():
                    return False
                continue
            if len(records) > 1:
                for record in records:
                    if not await _handle(handle, [record], stop, name):
                        return False
                return True
            (record,) = records
            log.exception(
                "a record that cannot be handled was skipped",
                extra={
                    "worker": name,
                    "topic": record.topic,
                    "partition": record.partition,
                    "offset": record.offset,
                },
            )
            return True


def skip_malformed(record: ConsumerRecord, error: BaseException, worker: str) -> None:
    """Log a record that does not decode, with where it is, so it can be found."""
    log.warning(
        "malformed record skipped",
        extra={
            "worker": worker,
            "topic": record.topic,
            "partition": record.partition,
            "offset": record.offset,
            "error": str(error),
        },
    )


class _CommittedOffsets:
    """Notice a broker that lost its log and our offsets, and read again from the start.

    Real Kafka keeps both; the embedded broker forgets everything when restarted
    and then refills the topics from offset 0 as the relay publishes again. A
    consumer that kept its old position would skip those first records, so when
    the broker no longer knows an offset we committed, the partition is read from
    the beginning (handlers dedupe by event_id, so a replay is harmless).
    """

    CHECK_EVERY = 2.0

    def __init__(self, consumer: AIOKafkaConsumer, name: str) -> None:
        self._consumer = consumer
        self._name = name
        self._ours: dict[TopicPartition, int] = {}
        self._next_check = 0.0

    def committed(self, records: Sequence[ConsumerRecord]) -> None:
        for record in records:
            tp = TopicPartition(record.topic, record.partition)
            self._ours[tp] = max(self._ours.get(tp, 0), record.offset + 1)

    async def check_broker_kept_them(self) -> None:
        now = asyncio.get_running_loop().time()
        if now < self._next_check or not self._ours:
            return
        self._next_check = now + self.CHECK_EVERY
        for tp, ours in list(self._ours.items()):
            try:
                theirs = await self._consumer.committed(tp)
            except (KafkaError, OSError):
                return  # the broker is away; look again later
            if theirs is None or theirs < ours:
                log.warning(
                    "broker lost committed offsets; reading the partition again",
                    extra={"worker": self._name, "topic": tp.topic, "partition": tp.partition},
                )
                del self._ours[tp]
                with contextlib.suppress(IllegalStateError):
                    await self._consumer.seek_to_beginning(tp)
