"""The audit trail (`event_logs`): filing entries, reading them, and retention."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from protocol.audit import AuditEntry
from storage import cursors
from storage.db import Connection, Pool

_COLUMNS = (
    "id, event_id, type, actor_id, entity_type, entity_id, payload, metadata, "
    "correlation_id, created_at"
)


@dataclass(frozen=True, slots=True)
class NewEntry:
    """An entry as the audit worker files it; `created_at` is when the action happened."""

    event_id: uuid.UUID
    type: str
    actor_id: uuid.UUID | None
    entity_type: str
    entity_id: uuid.UUID | None
    created_at: datetime
    correlation_id: str | None = None
    payload: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """What an admin narrows the trail to; `type_prefix` matches `task.` and the like."""

    type: str | None = None
    type_prefix: str | None = None
    actor_id: uuid.UUID | None = None
    entity_type: str | None = None
    entity_id: uuid.UUID | None = None
    correlation_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def _entry(row: asyncpg.Record) -> AuditEntry:
    return AuditEntry(**{k: row[k] for k in AuditEntry.__struct_fields__})


async def insert_many(conn: Connection, entries: Sequence[NewEntry]) -> int:
    """File entries; one already filed (a redelivered record) is left as it is.

    Returns how many were new, so the worker can tell redeliveries apart in logs.
    """
    if not entries:
        return 0
    rows = await conn.fetch(
        """INSERT INTO event_logs (event_id, type, actor_id, entity_type, entity_id,
                                   payload, metadata, correlation_id, created_at)
           SELECT * FROM unnest($1::uuid[], $2::text[], $3::uuid[], $4::text[], $5::uuid[],
                                $6::jsonb[], $7::jsonb[], $8::text[], $9::timestamptz[])
           ON CONFLICT (event_id) DO NOTHING
           RETURNING id""",
        [e.event_id for e in entries],
        [e.type for e in entries],
        [e.actor_id for e in entries],
        [e.entity_type for e in entries],
        [e.entity_id for e in entries],
        [e.payload for e in entries],
        [e.metadata for e in entries],
        [e.correlation_id for e in entries],
        [e.created_at for e in entries],
    )
    return len(rows)


async def purge_batch(conn: Connection, type_prefix: str, days: int, batch: int) -> int:
    """Delete up to `batch` entries of a type prefix older than `days`; returns the count.

    Bounded so one retention pass never holds a long lock or a huge WAL burst;
    SKIP LOCKED lets two audit workers purge side by side.
    """
    result: str = await conn.execute(
        """WITH doomed AS (
               SELECT id FROM event_logs
               WHERE starts_with(type, $1) AND created_at < now() - make_interval(days => $2)
               ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED)
           DELETE FROM event_logs e USING doomed WHERE e.id = doomed.id""",
        type_prefix,
        days,
        batch,
    )
    return int(result.rsplit(" ", 1)[-1])


async def purge(
    pool: Pool, rules: Sequence[tuple[str, int]], *, batch: int = 1000
) -> dict[str, int]:
    """Apply every (type prefix, days) rule in committed batches; counts by prefix."""
    deleted: dict[str, int] = {}
    for prefix, days in rules:
        total = 0
        while True:
            async with pool.acquire() as conn:
                count = await purge_batch(conn, prefix, days, batch)
            total += count
            if count < batch:
                break
        deleted[prefix] = total
    return deleted


def encode_cursor(entry: AuditEntry) -> str:
    return cursors.encode([entry.created_at.isoformat(), entry.id])


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    created, entry_id = cursors.decode(cursor, [cursors.aware_datetime, int], "after")
    return created, entry_id


async def page(
    conn: Connection, where: AuditFilter, *, limit: int, after: str | None
) -> tuple[list[AuditEntry], str | None]:
    """Newest first, keyset-paginated on (created_at, id) so pages never skip or repeat."""
    clauses: list[str] = []
    params: list[Any] = []

    def add(sql: str, value: Any) -> None:
        params.append(value)
        clauses.append(sql.format(f"${len(params)}"))

    if where.type is not None:
        add("type = {}", where.type)
    if where.type_prefix is not None:
        add("starts_with(type, {})", where.type_prefix)
    if where.actor_id is not None:
        add("actor_id = {}", where.actor_id)
    if where.entity_type is not None:
        add("entity_type = {}", where.entity_type)
    if where.entity_id is not None:
        add("entity_id = {}", where.entity_id)
    if where.correlation_id is not None:
        add("correlation_id = {}", where.correlation_id)
    if where.since is not None:
        add("created_at >= {}", where.since)
    if where.until is not None:
        add("created_at < {}", where.until)
    if after:
        created, entry_id = decode_cursor(after)
        params += [created, entry_id]
        clauses.append(f"(created_at, id) < (${len(params) - 1}, ${len(params)})")
    params.append(limit + 1)
    rows = await conn.fetch(
        f"""SELECT {_COLUMNS} FROM event_logs
            WHERE {" AND ".join(clauses) or "true"}
            ORDER BY created_at DESC, id DESC LIMIT ${len(params)}""",
        *params,
    )
    entries = [_entry(r) for r in rows[:limit]]
    cursor = encode_cursor(entries[-1]) if len(rows) > limit and entries else None
    return entries, cursor
