"""The outbox relay (`taskhub worker outbox`): unpublished rows to Kafka, in order.

Wakes on PostgreSQL NOTIFY `taskhub_outbox` (sent by the writing transaction on
commit) and polls every `outbox_poll_interval` in case a notification was
missed (the listening connection dropped, say). Each round claims up to
`outbox_batch_size` rows per table (storage.outbox: a session advisory lock per
board or key, rows in seq/id order), publishes them with `acks=all`, and marks
only what the broker acknowledged. While Kafka is down rows simply stay
unpublished and the round is retried with backoff; a fresh producer is made and
the topics are (re)created before the retry, because the embedded broker forgets
its topics when it restarts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from protocol.records import encode, headers
from storage import outbox
from storage.db import Connection
from storage.outbox import Pending
from storage.topics import BROKER_EPOCH, ensure_topics
from workers.deps import WorkerDeps
from workers.kafka import RETRY_FIRST, RETRY_MAX, make_producer, sleep_or_stop, start_with_retry

log = logging.getLogger(__name__)

CHANNEL = "taskhub_outbox"
# How long a publish may wait for acknowledgements after `stop`, before the
# batch is abandoned unmarked (it is published again by the next relay).
STOP_GRACE = 1.0
# Upper bound for one publish round; the producer's own request timeout is 10 s.
PUBLISH_TIMEOUT = 30.0
TOPICS_TIMEOUT = 10.0
# When the broker lost its log, rows published this recently are sent again.
REPUBLISH_WINDOW = 15 * 60.0
CLOSE_TIMEOUT = 5.0


class BrokerUnavailable(Exception):
    """Publishing failed; the unacknowledged rows stay unpublished."""


async def run(deps: WorkerDeps, stop: asyncio.Event) -> None:
    """Relay until `stop`; a batch in flight is either marked whole-acked-prefix or not at all."""
    wake = asyncio.Event()
    # `stop` also wakes the idle wait, so shutdown never waits out a poll interval.
    stop_watch = asyncio.create_task(stop.wait(), name="outbox-stop-watch")
    stop_watch.add_done_callback(lambda _: wake.set())
    relay = _Relay(deps, stop, wake)
    try:
        await relay.loop()
    finally:
        stop_watch.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await stop_watch
        await relay.close()


class _Relay:
    def __init__(self, deps: WorkerDeps, stop: asyncio.Event, wake: asyncio.Event) -> None:
        self.deps = deps
        self.stop = stop
        self.wake = wake
        self.producer: AIOKafkaProducer | None = None
        self.listener: Connection | None = None
        # set when the broker is found to have lost its log (see _ensure_topics)
        self.log_lost = False

    async def loop(self) -> None:
        delay = RETRY_FIRST
        while not self.stop.is_set():
            self.wake.clear()
            await self._listen()
            try:
                await self._republish_if_log_lost()
                sent = await self._round()
            except BrokerUnavailable as exc:
                log.warning("kafka publish failed; rows kept for retry", extra={"error": str(exc)})
                await self._drop_producer()
                await sleep_or_stop(self.stop, delay)
                delay = min(delay * 2, RETRY_MAX)
                continue
            except (asyncpg.PostgresError, OSError) as exc:
                log.warning("outbox read failed; retrying", extra={"error": repr(exc)})
                await sleep_or_stop(self.stop, delay)
                delay = min(delay * 2, RETRY_MAX)
                continue
            delay = RETRY_FIRST
            if sent:
                continue  # more may be waiting: drain before sleeping
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), self.deps.config.outbox_poll_interval)

    async def _round(self) -> int:
        """One claim-publish-mark round; returns how many rows were claimed."""
        async with self.deps.pool.acquire() as conn:
            leases, pending = await outbox.claim(conn, self.deps.config.outbox_batch_size)
            try:
                if not pending:
                    return 0
                # Before sending: if the broker lost its log, older rows were just
                # flagged again and must go first, so claim anew in order.
                if await self._broker_lost_log():
                    return len(pending)
                producer = await self._producer()
                if producer is None:
                    return 0  # stopped while waiting for the broker
                acked, error = await self._publish(producer, pending)
                if acked:
                    await self._check_topics_kept(acked)
                # One UPDATE per table: a batch is never half-marked within a table,
                # and what is marked was acknowledged.
                await outbox.mark_published(conn, acked)
                if error is not None:
                    raise BrokerUnavailable(f"{len(pending) - len(acked)} unacknowledged: {error}")
                return len(pending)
            finally:
                await outbox.release(conn, leases)

    async def _publish(
        self, producer: AIOKafkaProducer, pending: Sequence[Pending]
    ) -> tuple[list[Pending], BaseException | None]:
        """Send in order and wait for acks; returns each key's acknowledged prefix.

        Only a prefix per ordering key counts as published, so a retry never
        publishes an event after a later one of the same board was marked.
        """
        sending = asyncio.create_task(self._send_all(producer, pending), name="outbox-publish")
        stopping = asyncio.create_task(self.stop.wait(), name="outbox-publish-stop")
        try:
            done, _ = await asyncio.wait(
                {sending, stopping}, timeout=PUBLISH_TIMEOUT, return_when=asyncio.FIRST_COMPLETED
            )
            if sending not in done and stopping in done:
                await asyncio.wait({sending}, timeout=STOP_GRACE)
        finally:
            stopping.cancel()
            if not sending.done():
                sending.cancel()
            await asyncio.gather(sending, stopping, return_exceptions=True)
        if sending.cancelled():
            return [], TimeoutError("publish abandoned (stop or timeout)")
        if sending.exception() is not None:
            return [], sending.exception()
        results = sending.result()
        acked: list[Pending] = []
        failed_keys: set[tuple[str, str]] = set()
        first_error: BaseException | None = None
        for item, result in zip(pending, results, strict=True):
            order_key = (item.table, item.lock_key)
            if isinstance(result, BaseException) or order_key in failed_keys:
                failed_keys.add(order_key)
                if first_error is None and isinstance(result, BaseException):
                    first_error = result
                continue
            acked.append(item)
        if failed_keys and first_error is None:
            first_error = KafkaError("unacknowledged records")
        return acked, first_error

    async def _send_all(self, producer: AIOKafkaProducer, pending: Sequence[Pending]) -> list[Any]:
        # Queue everything first (aiokafka keeps a partition's batches in order),
        # then wait for every acknowledgement.
        deliveries = []
        for item in pending:
            deliveries.append(
                await producer.send(
                    self.deps.topic(item.topic),
                    value=encode(item.record),
                    key=item.key.encode(),
                    headers=headers(item.record),
                )
            )
        return list(await asyncio.gather(*deliveries, return_exceptions=True))

    async def _check_topics_kept(self, acked: Sequence[Pending]) -> None:
        """Refuse acks that a restarted broker gave for a topic it had forgotten.

        The embedded broker acknowledges records sent to a topic it no longer
        knows (after a restart mid-publish) and then never serves them. So after
        each acknowledged round the topics are ensured; if one had to be created,
        nothing is marked and the rows are published again into the new topic.
        """
        created = await self._ensure_topics()
        lost = set(created) & {self.deps.topic(item.topic) for item in acked}
        if lost:
            raise BrokerUnavailable(f"the broker had forgotten {sorted(lost)}; publishing again")

    async def _producer(self) -> AIOKafkaProducer | None:
        if self.producer is not None:
            return self.producer
        await self._ensure_topics()
        producer = make_producer(self.deps)
        if not await start_with_retry(producer, self.stop, "outbox"):
            return None
        self.producer = producer
        return producer

    async def _ensure_topics(self) -> list[str]:
        """(Re)create missing topics; when the broker lost its log, publish recent rows again.

        The epoch topic is made by relays only and never written, so finding it
        gone means the broker forgot everything (the embedded broker does on a
        restart): records published shortly before may never have been read.
        """
        try:
            created = await asyncio.wait_for(
                ensure_topics(
                    self.deps.config.kafka_bootstrap_servers,
                    self.deps.config.topic_prefix,
                    extra=(BROKER_EPOCH,),
                ),
                TOPICS_TIMEOUT,
            )
        except (KafkaError, OSError, TimeoutError) as exc:
            raise BrokerUnavailable(f"cannot ensure topics: {exc!r}") from exc
        if self.deps.topic(BROKER_EPOCH.name) in created:
            # republished by the loop once this round gave its leases back
            self.log_lost = True
        return created

    async def _broker_lost_log(self) -> bool:
        await self._ensure_topics()
        return self.log_lost

    async def _republish_if_log_lost(self) -> None:
        if not self.log_lost:
            return
        async with self.deps.pool.acquire() as conn:
            rows = await outbox.republish_recent(conn, REPUBLISH_WINDOW)
        self.log_lost = False
        log.warning(
            "the broker lost its log; publishing recent rows again",
            extra={"rows": rows, "window_seconds": REPUBLISH_WINDOW},
        )

    async def _drop_producer(self) -> None:
        """A failed producer is replaced, so the next one starts from fresh metadata."""
        producer, self.producer = self.producer, None
        if producer is not None:
            # With the broker down, stop() would wait for undeliverable batches.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(producer.stop(), STOP_GRACE)

    async def _listen(self) -> None:
        """Keep one connection LISTENing; without it the relay still polls."""
        if self.listener is not None and not self.listener.is_closed():
            return
        await self._unlisten()
        try:
            conn: Connection = await self.deps.pool.acquire()
        except (asyncpg.PostgresError, OSError) as exc:
            log.warning("cannot LISTEN; polling only", extra={"error": repr(exc)})
            return
        try:
            await conn.add_listener(CHANNEL, self._notified)
        except (asyncpg.PostgresError, OSError) as exc:
            log.warning("cannot LISTEN; polling only", extra={"error": repr(exc)})
            await self.deps.pool.release(conn)
            return
        self.listener = conn

    def _notified(self, *_: Any) -> None:
        self.wake.set()

    async def _unlisten(self) -> None:
        conn, self.listener = self.listener, None
        if conn is None:
            return
        with contextlib.suppress(Exception):
            if not conn.is_closed():
                await conn.remove_listener(CHANNEL, self._notified)
        with contextlib.suppress(Exception):
            await self.deps.pool.release(conn)

    async def close(self) -> None:
        await self._unlisten()
        producer, self.producer = self.producer, None
        if producer is not None:
            # Bounded: with the broker down, stop() would wait for undeliverable
            # batches, and whatever is unacknowledged is still unmarked anyway.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(producer.stop(), CLOSE_TIMEOUT)
