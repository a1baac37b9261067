"""Reminders: one user's "tell me about this task at that time", and their delivery state.

The row's `status` is the truth about delivery: the scheduler claims a due row
with `FOR UPDATE SKIP LOCKED` and marks it in the same transaction that creates
what the delivery leaves behind (the notification, the outbox record), so two
schedulers, or one restarted, never deliver a reminder twice.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import msgspec

from protocol.models import Reminder, ReminderMethod, to_wire
from storage import outbox
from storage.db import Connection

_COLUMNS = (
    "id, task_id, user_id, remind_at, method, status, attempts, last_error, sent_at, created_at"
)
_R_COLUMNS = ", ".join(f"r.{name}" for name in _COLUMNS.split(", "))

TOPIC = "reminders"


def _reminder(row: asyncpg.Record) -> Reminder:
    # convert, not the constructor: the enum columns arrive as text
    return msgspec.convert({name: row[name] for name in Reminder.__struct_fields__}, Reminder)


@dataclass(frozen=True, slots=True)
class Due:
    """A claimed reminder with what delivering it needs to know about its task."""

    reminder: Reminder
    board_id: uuid.UUID
    task_title: str
    task_due_date: datetime | None
    task_deleted: bool
    still_member: bool


async def insert(
    conn: Connection,
    task_id: uuid.UUID,
    user_id: uuid.UUID,
    remind_at: datetime,
    method: ReminderMethod,
) -> Reminder:
    row = await conn.fetchrow(
        f"""INSERT INTO reminders (task_id, user_id, remind_at, method)
            VALUES ($1, $2, $3, $4) RETURNING {_COLUMNS}""",
        task_id,
        user_id,
        remind_at,
        method.value,
    )
    return _reminder(row)


async def get(conn: Connection, reminder_id: uuid.UUID) -> Reminder | None:
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM reminders WHERE id = $1", reminder_id)
    return _reminder(row) if row else None


async def for_task(conn: Connection, task_id: uuid.UUID, user_id: uuid.UUID) -> list[Reminder]:
    """One user's reminders on a task, soonest first; other users' reminders stay private."""
    rows = await conn.fetch(
        f"""SELECT {_COLUMNS} FROM reminders WHERE task_id = $1 AND user_id = $2
            ORDER BY remind_at, id""",
        task_id,
        user_id,
    )
    return [_reminder(r) for r in rows]


async def dismiss(conn: Connection, reminder_id: uuid.UUID, user_id: uuid.UUID) -> Reminder | None:
    """Dismiss the user's reminder unless it was sent (or dismissed already); None when
    nothing changed.

    The conditional UPDATE waits for a scheduler that holds the row, and then
    sees its verdict: a reminder being delivered right now is either dismissed
    before or found sent after, never both.
    """
    row = await conn.fetchrow(
        f"""UPDATE reminders SET status = 'dismissed'
            WHERE id = $1 AND user_id = $2 AND status NOT IN ('sent', 'dismissed')
            RETURNING {_COLUMNS}""",
        reminder_id,
        user_id,
    )
    return _reminder(row) if row else None


async def claim_due(conn: Connection, retry_base_seconds: float) -> Due | None:
    """Lock the next due reminder no other scheduler holds, or None when none is due.

    A reminder whose earlier attempts failed waits `retry_base_seconds * (2^attempts - 1)`
    past its time before it is tried again. Only the reminder row is locked, so the
    task stays writable while the reminder is delivered.
    """
    row = await conn.fetchrow(
        f"""SELECT {_R_COLUMNS}, t.board_id, t.title AS task_title, t.due_date AS task_due_date,
                   t.deleted_at IS NOT NULL AS task_deleted,
                   EXISTS (SELECT 1 FROM board_members m
                           WHERE m.board_id = t.board_id AND m.user_id = r.user_id) AS still_member
            FROM reminders r JOIN tasks t ON t.id = r.task_id
            WHERE r.status = 'scheduled' AND r.remind_at <= now()
              AND r.remind_at + make_interval(secs => $1 * (power(2, r.attempts) - 1)) <= now()
              AND (r.lease_until IS NULL OR r.lease_until <= now())
            ORDER BY r.remind_at, r.id
            LIMIT 1
            FOR UPDATE OF r SKIP LOCKED""",
        float(retry_base_seconds),
    )
    if row is None:
        return None
    return Due(
        reminder=_reminder(row),
        board_id=row["board_id"],
        task_title=row["task_title"],
        task_due_date=row["task_due_date"],
        task_deleted=row["task_deleted"],
        still_member=row["still_member"],
    )


async def lease(conn: Connection, reminder_id: uuid.UUID, seconds: float) -> None:
    """Park a claimed reminder while it is sent outside the transaction."""
    await conn.execute(
        "UPDATE reminders SET lease_until = now() + make_interval(secs => $2) WHERE id = $1",
        reminder_id,
        float(seconds),
    )


async def lock_leased(conn: Connection, reminder_id: uuid.UUID) -> Reminder | None:
    """The reminder again after its send, locked; None if it is no longer scheduled
    (dismissed meanwhile, or settled by another scheduler after the lease ran out)."""
    row = await conn.fetchrow(
        f"""SELECT {_COLUMNS} FROM reminders WHERE id = $1 AND status = 'scheduled'
            FOR UPDATE""",
        reminder_id,
    )
    return _reminder(row) if row else None


async def mark_sent(conn: Connection, reminder_id: uuid.UUID) -> Reminder:
    row = await conn.fetchrow(
        f"""UPDATE reminders SET status = 'sent', sent_at = now(), attempts = attempts + 1,
                   last_error = NULL, lease_until = NULL
            WHERE id = $1 RETURNING {_COLUMNS}""",
        reminder_id,
    )
    return _reminder(row)


async def mark_attempt_failed(
    conn: Connection, reminder_id: uuid.UUID, error: str, *, max_attempts: int
) -> Reminder:
    """Count a failed attempt; the reminder becomes `failed` when it was the last allowed.

    `max_attempts=1` makes a failure final at once (the task is gone, the user left).
    """
    row = await conn.fetchrow(
        f"""UPDATE reminders SET attempts = attempts + 1, last_error = left($2, 1000),
                   status = CASE WHEN attempts + 1 >= $3 THEN 'failed' ELSE 'scheduled' END,
                   lease_until = NULL
            WHERE id = $1 RETURNING {_COLUMNS}""",
        reminder_id,
        error,
        max_attempts,
    )
    return _reminder(row)


async def record(
    conn: Connection,
    reminder: Reminder,
    board_id: uuid.UUID,
    *,
    correlation_id: str | None = None,
) -> uuid.UUID:
    """Write `reminder.scheduled` / `.sent` / `.failed` / `.dismissed` to the outbox in
    the transaction that changed the reminder, so the relay publishes it exactly
    when that change committed.

    Keyed by task_id, so one task's reminder records stay in order on the topic.
    """
    payload: dict[str, Any] = {
        "reminder_id": str(reminder.id),
        "task_id": str(reminder.task_id),
        "board_id": str(board_id),
        "user_id": str(reminder.user_id),
        "method": reminder.method.value,
        "remind_at": to_wire(reminder.remind_at),
        "status": reminder.status.value,
        "attempts": reminder.attempts,
        "sent_at": to_wire(reminder.sent_at),
        "last_error": reminder.last_error,
    }
    return await outbox.enqueue(
        conn,
        topic=TOPIC,
        key=str(reminder.task_id),
        type=f"reminder.{reminder.status.value}",
        payload=payload,
        correlation_id=correlation_id,
    )
