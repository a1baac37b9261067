"""A board's ordered history, which is also the outbox the relay publishes."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import msgspec

from protocol.models import Task, TaskEvent, to_wire
from protocol.records import TaskEventRecord
from storage.db import Connection

_COLUMNS = (
    "event_id, board_id, seq, type, task_id, actor_id, payload, correlation_id, source, created_at"
)


def _event(row: asyncpg.Record) -> TaskEvent:
    payload = row["payload"]
    return TaskEvent(
        event_id=row["event_id"],
        board_id=row["board_id"],
        seq=row["seq"],
        type=row["type"],
        task_id=row["task_id"],
        actor_id=row["actor_id"],
        task=msgspec.convert(payload["task"], Task, strict=False),
        changes=payload["changes"],
        correlation_id=row["correlation_id"],
        source=row["source"],
        occurred_at=row["created_at"],
    )


@dataclass(frozen=True)
class Origin:
    """Where a write came from: the correlation id, and for a person their client
    (what the audit trail records as metadata)."""

    correlation_id: str | None = None
    ip: str | None = None
    user_agent: str | None = None

    def metadata(self) -> dict[str, str]:
        found = {"ip": self.ip, "user_agent": self.user_agent}
        return {k: v for k, v in found.items() if v}


async def append(
    conn: Connection,
    *,
    type: str,
    task: Task,
    actor_id: uuid.UUID | None,
    changes: dict[str, Any],
    origin: Origin,
) -> TaskEvent:
    """Insert the event of a write, in the writing transaction, as its board's next seq.

    The seq is taken in the same statement. Its row lock serialises the board's
    writers until commit, so it is taken last: a write changes its task first
    (locking only that row) and then holds the board from here to its commit
    (through a completed recurring task's next occurrence, when there is one).
    Every task write locks in that order, the task and then its board, so two
    writes never wait on each other crosswise (boards.lock says what that asks of
    the board's other lockers); and a rollback gives the seq back (gap-free).

    The payload keeps the changed fields (before and after), the version the
    write produced (what the field merge reads) and the task as it then was
    (what catch-up after a reconnect replays).
    """
    payload = {"version": task.version, "changes": changes, "task": to_wire(task)}
    row = await conn.fetchrow(
        f"""WITH next AS (
                UPDATE boards SET last_seq = last_seq + 1 WHERE id = $1 RETURNING last_seq
            )
            INSERT INTO task_events
                (board_id, seq, task_id, type, actor_id, payload, correlation_id, metadata)
            SELECT $1::uuid, next.last_seq, $2::uuid, $3::text, $4::uuid, $5::jsonb, $6::text,
                   $7::jsonb
            FROM next
            RETURNING {_COLUMNS}""",
        task.board_id,
        task.id,
        type,
        actor_id,
        payload,
        origin.correlation_id,
        origin.metadata(),
    )
    if row is None:  # the task's board is its foreign key; it cannot be missing
        raise LookupError(f"board {task.board_id} not found")
    return _event(row)


async def append_relayed(
    conn: Connection, relayed: Sequence[tuple[TaskEventRecord, Task]]
) -> dict[uuid.UUID, TaskEvent]:
    """Insert events other services produced on Kafka, each as its board's next entry.

    One statement for the whole batch, so a fetch of many records costs one round
    trip: it skips every event_id stored already (a redelivery another member of
    the group kept first; only the first of repeats within `relayed` counts), moves
    each board's seq on by the number it keeps, and numbers the kept events in
    `relayed` order. The caller holds the boards' locks (boards.lock_many), which
    makes the skip and the seqs hold until commit.

    Each is stored already published (it came from Kafka), with the stored task as
    its snapshot. Its version is 0, so the field merge never counts its changes:
    the event tells of a change, it did not make one through the hub's lock. The
    actor is kept only if such a user exists. Returns what was inserted, by event_id.
    """
    first: dict[uuid.UUID, tuple[TaskEventRecord, Task]] = {}
    for record, task in relayed:
        first.setdefault(record.event_id, (record, task))
    rows = list(first.values())
    if not rows:
        return {}
    found = await conn.fetch(
        f"""WITH new AS MATERIALIZED (
                SELECT n.* FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[],
                                       $5::uuid[], $6::text[], $7::text[], $8::text[],
                                       $9::text[], $10::text[])
                    WITH ORDINALITY AS n(event_id, board_id, task_id, type, actor_id, payload,
                                         correlation_id, trace_id, source, metadata, ord)
                WHERE NOT EXISTS (SELECT 1 FROM task_events e WHERE e.event_id = n.event_id)
            ), bumped AS (
                UPDATE boards b SET last_seq = b.last_seq + c.n
                FROM (SELECT board_id, count(*) AS n FROM new GROUP BY board_id) c
                WHERE b.id = c.board_id
                RETURNING b.id, b.last_seq - c.n AS base
            )
            INSERT INTO task_events
                (event_id, board_id, seq, task_id, type, actor_id, payload, correlation_id,
                 trace_id, source, metadata, published_at)
            SELECT new.event_id, new.board_id,
                   bumped.base + row_number() OVER (PARTITION BY new.board_id ORDER BY new.ord),
                   new.task_id, new.type, u.id, new.payload::jsonb, new.correlation_id,
                   new.trace_id, new.source, new.metadata::jsonb, now()
            FROM new JOIN bumped ON bumped.id = new.board_id
            LEFT JOIN users u ON u.id = new.actor_id
            RETURNING {_COLUMNS}""",
        [record.event_id for record, _ in rows],
        [task.board_id for _, task in rows],
        [task.id for _, task in rows],
        [record.type for record, _ in rows],
        [record.actor_id for record, _ in rows],
        [
            json.dumps({"version": 0, "changes": record.changes, "task": to_wire(task)})
            for record, task in rows
        ],
        [record.correlation_id for record, _ in rows],
        [record.trace_id for record, _ in rows],
        [record.source for record, _ in rows],
        [json.dumps(record.metadata) for record, _ in rows],
    )
    return {row["event_id"]: _event(row) for row in found}


async def by_event_id(
    conn: Connection, event_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, TaskEvent]:
    """The stored events among `event_ids`: the hub's own, and relayed ones already kept."""
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM task_events WHERE event_id = ANY($1::uuid[])", list(event_ids)
    )
    return {r["event_id"]: _event(r) for r in rows}


async def fields_changed_since(conn: Connection, task_id: uuid.UUID, version: int) -> set[str]:
    """Names of the fields that writes after `version` changed."""
    rows = await conn.fetch(
        """SELECT DISTINCT jsonb_object_keys(payload -> 'changes') AS field FROM task_events
           WHERE task_id = $1 AND (payload ->> 'version')::int > $2""",
        task_id,
        version,
    )
    return {r["field"] for r in rows}


async def since(conn: Connection, board_id: uuid.UUID, seq: int, limit: int) -> list[TaskEvent]:
    rows = await conn.fetch(
        f"""SELECT {_COLUMNS} FROM task_events WHERE board_id = $1 AND seq > $2
            ORDER BY seq LIMIT $3""",
        board_id,
        seq,
        limit,
    )
    return [_event(r) for r in rows]


async def newest(conn: Connection, board_ids: Sequence[uuid.UUID]) -> list[TaskEvent]:
    """The last event of each of these boards (none for a board without events)."""
    rows = await conn.fetch(
        f"""SELECT {_COLUMNS} FROM task_events WHERE (board_id, seq) IN
                (SELECT id, last_seq FROM boards WHERE id = ANY($1::uuid[]))""",
        list(board_ids),
    )
    return [_event(r) for r in rows]
