"""The audit worker (`taskhub worker audit`): files events into `event_logs`, and purges.

It consumes `task_events` (every task change) and `audit_events` (account and
membership changes the hub wrote to the outbox) in group "audit". Each record
becomes one entry, keyed by its event_id, so a record delivered twice (a crash
before the commit, a relay that published twice) is filed once. A record that
does not decode is logged and skipped: one bad producer must not stop the trail.

Retention runs in the same worker, once at start and then hourly, deleting by
type prefix (seed 001: user activity a year, task events 180 days).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import msgspec
from aiokafka import ConsumerRecord

from protocol.audit import AUDIT_TOPIC, AuditPayload, EntityType
from protocol.records import decode_outbox, decode_task_event
from storage import event_logs
from storage.db import Pool
from storage.event_logs import NewEntry
from workers.deps import WorkerDeps
from workers.kafka import consume, skip_malformed, sleep_or_stop

log = logging.getLogger(__name__)

NAME = "audit"
TASK_TOPIC = "task_events"
RETENTION_INTERVAL = 3600.0
RETENTION_BATCH = 1000
RETRY_AFTER_FAILURE = 60.0


def task_entry(value: bytes) -> NewEntry:
    """A `task_events` record as an entry; raises msgspec errors when malformed."""
    record = decode_task_event(value)
    payload: dict[str, object] = {"board_id": str(record.board_id), "changes": record.changes}
    if record.seq is not None:
        payload["seq"] = record.seq
    if record.task is not None:
        payload["version"] = record.task.version
    metadata = {**record.metadata, "source": record.source}
    if record.trace_id:
        metadata["trace_id"] = record.trace_id
    return NewEntry(
        event_id=record.event_id,
        type=record.type,
        actor_id=record.actor_id,
        entity_type=EntityType.TASK.value,
        entity_id=record.task_id,
        created_at=record.occurred_at,
        correlation_id=record.correlation_id,
        payload=msgspec.to_builtins(payload),
        metadata=metadata,
    )


def audit_entry(value: bytes) -> NewEntry:
    """An `audit_events` record as an entry; raises msgspec errors when malformed."""
    record = decode_outbox(value)
    body = msgspec.convert(record.payload, AuditPayload)
    return NewEntry(
        event_id=record.event_id,
        type=record.type,
        actor_id=body.actor_id,
        entity_type=body.entity_type.value,
        entity_id=body.entity_id,
        created_at=record.occurred_at,
        correlation_id=record.correlation_id,
        payload=body.data,
        metadata=msgspec.to_builtins(body.metadata),
    )


def entries(deps: WorkerDeps, records: Sequence[ConsumerRecord]) -> list[NewEntry]:
    """The entries of a batch; malformed records are logged with where they are, and dropped."""
    task_topic = deps.topic(TASK_TOPIC)
    found: list[NewEntry] = []
    for record in records:
        convert = task_entry if record.topic == task_topic else audit_entry
        try:
            if record.value is None:
                raise msgspec.DecodeError("record has no value")
            found.append(convert(record.value))
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            skip_malformed(record, exc, NAME)
    return found


async def file_batch(pool: Pool, batch: Sequence[NewEntry]) -> int:
    """File a batch in one statement; returns how many entries were new."""
    async with pool.acquire() as conn:
        return await event_logs.insert_many(conn, batch)


async def apply_retention(
    pool: Pool, rules: Sequence[tuple[str, int]], *, batch: int = RETENTION_BATCH
) -> dict[str, int]:
    """Delete what has outlived its rule; counts deleted by type prefix."""
    deleted = await event_logs.purge(pool, rules, batch=batch)
    if any(deleted.values()):
        log.info("audit retention purged entries", extra={"deleted": deleted})
    return deleted


async def _retention_loop(deps: WorkerDeps, stop: asyncio.Event) -> None:
    """Purge at start and every RETENTION_INTERVAL; a failure waits and tries again."""
    while not stop.is_set():
        try:
            await apply_retention(deps.pool, deps.config.audit_retention_days)
            wait = RETENTION_INTERVAL
        except Exception:
            log.exception("audit retention failed; will retry")
            wait = RETRY_AFTER_FAILURE
        await sleep_or_stop(stop, wait)


async def run(deps: WorkerDeps, stop: asyncio.Event) -> None:
    """Consume and purge until `stop`; both parts end together, and neither is left behind."""

    async def handle(records: Sequence[ConsumerRecord]) -> None:
        batch = entries(deps, records)
        new = await file_batch(deps.pool, batch)
        if new < len(batch):
            log.info("audit records already filed", extra={"duplicates": len(batch) - new})

    async with asyncio.TaskGroup() as group:
        group.create_task(_retention_loop(deps, stop), name="audit-retention")
        group.create_task(
            consume(deps, stop, name=NAME, topics=[TASK_TOPIC, AUDIT_TOPIC], handle=handle),
            name="audit-consume",
        )
