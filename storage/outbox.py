"""What the outbox relay reads and marks: unpublished `task_events` and `outbox` rows.

Ordering across several relays: a relay first takes a *session-level*
advisory lock per ordering key (a board for `task_events`, a topic and key for
`outbox`) on its own connection, then reads that key's unpublished rows in
order (seq, or id), publishes them, marks them published and unlocks. No
transaction stays open while Kafka is called, so a broker outage never pins
row locks or a snapshot; yet no two relays ever publish one key's rows at the
same time, so a board's events reach Kafka in seq order. If the relay dies, its
connection closes and PostgreSQL drops the locks: the lock is a lease that
cannot outlive its holder.

`published_at` is set only after the broker acknowledged the records. A crash
between the acknowledgement and the mark publishes them again: duplicates are
allowed (consumers dedupe by event_id), loss is not.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Literal

import asyncpg
import msgspec

from protocol.models import Task
from protocol.records import OutboxRecord, TaskEventRecord
from storage.db import Connection

# Two-int advisory-lock namespaces, so these locks never collide with others'.
_BOARD_LOCKS = "taskhub.outbox.board"
_KEY_LOCKS = "taskhub.outbox.key"

TASK_EVENTS_TOPIC = "task_events"

Table = Literal["task_events", "outbox"]


@dataclass(frozen=True, slots=True)
class Pending:
    """One unpublished row, ready to be sent: `topic` is the base name (no prefix)."""

    table: Table
    row_id: int
    lock_key: str  # the ordering key: a board id, or topic and key
    topic: str
    key: str
    record: TaskEventRecord | OutboxRecord


@dataclass(frozen=True, slots=True)
class Lease:
    """An advisory lock held by the relay's connection on one ordering key."""

    table: Table
    lock_key: str


async def _try_lock(conn: Connection, namespace: str, lock_key: str) -> bool:
    got = await conn.fetchval(
        "SELECT pg_try_advisory_lock(hashtext($1), hashtext($2))", namespace, lock_key
    )
    return bool(got)


async def release(conn: Connection, leases: Sequence[Lease]) -> None:
    """Give the keys back; a relay calls this after marking, or after a failed publish."""
    for lease in leases:
        namespace = _BOARD_LOCKS if lease.table == "task_events" else _KEY_LOCKS
        await conn.fetchval(
            "SELECT pg_advisory_unlock(hashtext($1), hashtext($2))", namespace, lease.lock_key
        )


def _task_event(row: asyncpg.Record) -> Pending:
    payload: dict[str, Any] = row["payload"]
    task = payload.get("task")
    record = TaskEventRecord(
        event_id=row["event_id"],
        type=row["type"],
        occurred_at=row["created_at"],
        source=row["source"],
        correlation_id=row["correlation_id"],
        trace_id=row["trace_id"],
        board_id=row["board_id"],
        task_id=row["task_id"],
        actor_id=row["actor_id"],
        seq=row["seq"],
        task=msgspec.convert(task, Task, strict=False) if task is not None else None,
        changes=payload.get("changes") or {},
        metadata=row["metadata"],
    )
    return Pending(
        "task_events",
        row["id"],
        str(row["board_id"]),
        TASK_EVENTS_TOPIC,
        str(row["task_id"]),
        record,
    )


def _outbox(row: asyncpg.Record) -> Pending:
    record = OutboxRecord(
        event_id=row["event_id"],
        type=row["type"],
        occurred_at=row["created_at"],
        correlation_id=row["correlation_id"],
        payload=row["payload"],
    )
    return Pending(
        "outbox",
        row["id"],
        _outbox_lock_key(row["topic"], row["key"]),
        row["topic"],
        row["key"],
        record,
    )


def _outbox_lock_key(topic: str, key: str) -> str:
    return f"{topic}/{key}"


async def _claim_task_events(conn: Connection, limit: int) -> tuple[list[Lease], list[Pending]]:
    """Lock boards with unpublished events (oldest first) and read their events in seq order."""
    boards = await conn.fetch(
        """SELECT board_id FROM task_events WHERE published_at IS NULL
           GROUP BY board_id ORDER BY min(id) LIMIT $1""",
        limit,
    )
    leases: list[Lease] = []
    pending: list[Pending] = []
    for board in boards:
        if len(pending) >= limit:
            break
        board_id: uuid.UUID = board["board_id"]
        lease = Lease("task_events", str(board_id))
        if not await _try_lock(conn, _BOARD_LOCKS, lease.lock_key):
            continue  # another relay is publishing this board
        # Read after locking: what the previous holder marked is committed by now.
        rows = await conn.fetch(
            """SELECT id, event_id, board_id, seq, task_id, type, actor_id, payload,
                      correlation_id, trace_id, source, created_at, metadata
               FROM task_events WHERE board_id = $1 AND published_at IS NULL
               ORDER BY seq LIMIT $2""",
            board_id,
            limit - len(pending),
        )
        leases.append(lease)
        pending.extend(_task_event(r) for r in rows)
    return leases, pending


async def _claim_outbox(conn: Connection, limit: int) -> tuple[list[Lease], list[Pending]]:
    """Lock (topic, key) pairs with unpublished rows and read their rows in id order."""
    keys = await conn.fetch(
        """SELECT topic, key FROM outbox WHERE published_at IS NULL
           GROUP BY topic, key ORDER BY min(id) LIMIT $1""",
        limit,
    )
    leases: list[Lease] = []
    pending: list[Pending] = []
    for item in keys:
        if len(pending) >= limit:
            break
        lease = Lease("outbox", _outbox_lock_key(item["topic"], item["key"]))
        if not await _try_lock(conn, _KEY_LOCKS, lease.lock_key):
            continue
        rows = await conn.fetch(
            """SELECT id, event_id, topic, key, type, payload, correlation_id, created_at
               FROM outbox WHERE topic = $1 AND key = $2 AND published_at IS NULL
               ORDER BY id LIMIT $3""",
            item["topic"],
            item["key"],
            limit - len(pending),
        )
        leases.append(lease)
        pending.extend(_outbox(r) for r in rows)
    return leases, pending


async def claim(conn: Connection, limit: int) -> tuple[list[Lease], list[Pending]]:
    """Lock ordering keys and read up to `limit` rows of each table to publish.

    `conn` must not be in a transaction: the locks are session locks, held until
    `release`. Every lease returned must be released, even when no row came back.
    """
    leases, pending = await _claim_task_events(conn, limit)
    try:
        more_leases, more = await _claim_outbox(conn, limit)
    except BaseException:
        await release(conn, leases)
        raise
    return leases + more_leases, pending + more


async def mark_published(conn: Connection, published: Sequence[Pending]) -> None:
    """Set published_at on rows the broker acknowledged; one statement per table."""
    for table in ("task_events", "outbox"):
        ids = [p.row_id for p in published if p.table == table]
        if ids:
            await conn.execute(
                f"UPDATE {table} SET published_at = now() WHERE id = ANY($1::bigint[])", ids
            )


async def unpublished_count(conn: Connection) -> int:
    """Rows still waiting, in both tables (for metrics and tests)."""
    value = await conn.fetchval(
        """SELECT (SELECT count(*) FROM task_events WHERE published_at IS NULL)
                + (SELECT count(*) FROM outbox WHERE published_at IS NULL)"""
    )
    return int(value)


async def enqueue(
    conn: Connection,
    *,
    topic: str,
    key: str,
    type: str,
    payload: dict[str, Any],
    correlation_id: str | None,
) -> uuid.UUID:
    """Write a record for `topic` in the caller's transaction; the relay publishes it
    once that transaction committed. Returns its event_id."""
    event_id: uuid.UUID = await conn.fetchval(
        """INSERT INTO outbox (topic, key, type, payload, correlation_id)
           VALUES ($1, $2, $3, $4, $5) RETURNING event_id""",
        topic,
        key,
        type,
        payload,
        correlation_id,
    )
    return event_id


async def republish_recent(conn: Connection, seconds: float) -> int:
    """Mark rows published in the last `seconds` as unpublished again.

    Used when the broker lost its log: those records may never have been read.
    Each ordering key is reset under its lease (waiting for a relay that is
    publishing it), so what goes out again never overtakes what is in flight.
    Consumers dedupe by event_id, so sending a record twice is harmless.
    """
    since = "published_at > now() - make_interval(secs => $1)"
    total = 0
    for row in await conn.fetch(
        f"SELECT DISTINCT board_id FROM task_events WHERE {since}", float(seconds)
    ):
        async with _lease(conn, _BOARD_LOCKS, str(row["board_id"])):
            status = await conn.execute(
                f"UPDATE task_events SET published_at = NULL WHERE board_id = $2 AND {since}",
                float(seconds),
                row["board_id"],
            )
        total += int(status.split()[-1])
    for row in await conn.fetch(
        f"SELECT DISTINCT topic, key FROM outbox WHERE {since}", float(seconds)
    ):
        async with _lease(conn, _KEY_LOCKS, _outbox_lock_key(row["topic"], row["key"])):
            status = await conn.execute(
                f"""UPDATE outbox SET published_at = NULL
                    WHERE topic = $2 AND key = $3 AND {since}""",
                float(seconds),
                row["topic"],
                row["key"],
            )
        total += int(status.split()[-1])
    return total


@asynccontextmanager
async def _lease(conn: Connection, namespace: str, lock_key: str) -> AsyncIterator[None]:
    """Wait for, hold and give back one ordering key's lock."""
    await conn.execute("SELECT pg_advisory_lock(hashtext($1), hashtext($2))", namespace, lock_key)
    try:
        yield
    finally:
        await conn.execute(
            "SELECT pg_advisory_unlock(hashtext($1), hashtext($2))", namespace, lock_key
        )
