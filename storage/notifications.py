"""Notifications: what one user should see, read or not.

Rows are made by workers (the notifier, the scheduler) and read by their
recipient. A notification caused by an event is unique by (event_id, user_id),
so an event delivered twice by Kafka notifies nobody twice.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg
import msgspec
from redis.asyncio import Redis

from protocol.models import Notification, NotificationLevel, NotificationType
from storage import cursors
from storage.db import Connection
from storage.keys import RedisKeys

_COLUMNS = (
    "id, user_id, type, level, title, message, task_id, board_id, event_id, read_at, created_at"
)

# Unread first, then newest; `id` breaks ties between rows of the same instant.
_ORDER = "(read_at IS NULL) DESC, created_at DESC, id DESC"
_SORT_KEY = "((read_at IS NULL), created_at, id)"


@dataclass(frozen=True, slots=True)
class Draft:
    """A notification about to be created (the row without its id and times)."""

    user_id: uuid.UUID
    type: NotificationType
    title: str
    message: str = ""
    level: NotificationLevel = NotificationLevel.INFO
    task_id: uuid.UUID | None = None
    board_id: uuid.UUID | None = None
    event_id: uuid.UUID | None = None


def _notification(row: asyncpg.Record) -> Notification:
    return Notification(**dict(row))


async def create(conn: Connection, drafts: Sequence[Draft]) -> list[Notification]:
    """Insert `drafts` in one statement; returns only the rows this call created.

    A draft whose (event_id, user_id) already exists is skipped, so a
    redelivered event stores nothing twice. New rows are unpushed (`pushed_at`
    null) until the caller pushed them.
    """
    if not drafts:
        return []
    rows = await conn.fetch(
        f"""INSERT INTO notifications
                (user_id, type, level, title, message, task_id, board_id, event_id)
            SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[],
                                 $6::uuid[], $7::uuid[], $8::uuid[])
            ON CONFLICT ON CONSTRAINT notifications_event_user_key DO NOTHING
            RETURNING {_COLUMNS}""",
        [d.user_id for d in drafts],
        [d.type.value for d in drafts],
        [d.level.value for d in drafts],
        [d.title for d in drafts],
        [d.message for d in drafts],
        [d.task_id for d in drafts],
        [d.board_id for d in drafts],
        [d.event_id for d in drafts],
    )
    return [_notification(r) for r in rows]


async def unpushed(
    conn: Connection,
    *,
    event_ids: Sequence[uuid.UUID] | None = None,
    older_than_seconds: float | None = None,
    limit: int = 500,
) -> list[Notification]:
    """Stored notifications not yet pushed: of given events, or older than a while."""
    if event_ids is not None:
        rows = await conn.fetch(
            f"""SELECT {_COLUMNS} FROM notifications
                WHERE pushed_at IS NULL AND event_id = ANY($1::uuid[])
                ORDER BY created_at, id LIMIT $2""",
            list(event_ids),
            limit,
        )
    else:
        rows = await conn.fetch(
            f"""SELECT {_COLUMNS} FROM notifications
                WHERE pushed_at IS NULL
                  AND created_at < now() - make_interval(secs => $1)
                ORDER BY created_at, id LIMIT $2""",
            float(older_than_seconds or 0),
            limit,
        )
    return [_notification(r) for r in rows]


async def mark_pushed(conn: Connection, ids: Sequence[uuid.UUID]) -> None:
    if ids:
        await conn.execute(
            "UPDATE notifications SET pushed_at = now() WHERE id = ANY($1::uuid[])", list(ids)
        )


def encode_cursor(notification: Notification) -> str:
    unread = "1" if notification.read_at is None else "0"
    return cursors.encode([unread, notification.created_at.isoformat(), notification.id])


def _flag(text: str) -> bool:
    if text not in ("0", "1"):
        raise ValueError(text)
    return text == "1"


def decode_cursor(cursor: str) -> tuple[bool, datetime, uuid.UUID]:
    unread, at, notification_id = cursors.decode(
        cursor, [_flag, cursors.aware_datetime, uuid.UUID], "before"
    )
    return unread, at, notification_id


async def page_for_user(
    conn: Connection, user_id: uuid.UUID, *, before: str | None, limit: int
) -> tuple[list[Notification], str | None]:
    """A user's notifications, unread first then newest, keyset-paginated.

    The cursor is the sort key of the last row returned, so pages stay stable
    while new notifications arrive. A notification read between two pages
    moves to the read section and may be listed once more there; none is skipped.
    """
    params: list[object] = [user_id]
    where = "user_id = $1"
    if before is not None:
        unread, created, notification_id = decode_cursor(before)
        params += [unread, created, notification_id]
        where += f" AND {_SORT_KEY} < ($2, $3, $4)"
    params.append(limit + 1)
    rows = await conn.fetch(
        f"""SELECT {_COLUMNS} FROM notifications WHERE {where}
            ORDER BY {_ORDER} LIMIT ${len(params)}""",
        *params,
    )
    items = [_notification(r) for r in rows[:limit]]
    following = encode_cursor(items[-1]) if len(rows) > limit else None
    return items, following


async def mark_read(conn: Connection, user_id: uuid.UUID, ids: Sequence[uuid.UUID] | None) -> int:
    """Mark the user's `ids` (or all, when None) read; returns how many changed.

    Ids of other users' notifications, unknown ids and ids already read change
    nothing: a user can only ever touch their own rows.
    """
    if ids is None:
        status = await conn.execute(
            "UPDATE notifications SET read_at = now() WHERE user_id = $1 AND read_at IS NULL",
            user_id,
        )
    else:
        status = await conn.execute(
            """UPDATE notifications SET read_at = now()
               WHERE user_id = $1 AND id = ANY($2::uuid[]) AND read_at IS NULL""",
            user_id,
            list(ids),
        )
    return int(status.rsplit(" ", 1)[-1])


async def unread_count(conn: Connection, user_id: uuid.UUID) -> int:
    return int(
        await conn.fetchval(
            "SELECT count(*) FROM notifications WHERE user_id = $1 AND read_at IS NULL", user_id
        )
    )


async def publish(redis: Redis, keys: RedisKeys, notification: Notification) -> None:
    """Announce a notification on `pubsub:notifications` for services outside the hub."""
    await redis.publish(keys.notifications_channel(), msgspec.json.encode(notification))
