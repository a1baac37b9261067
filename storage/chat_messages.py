"""Chat messages: stored once, ordered by a per-channel seq, edited and soft-deleted."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import asyncpg

from protocol.events import ChatEventType
from protocol.models import ChatMessage, MessageType, to_wire
from storage import outbox
from storage.db import Connection

_FIELDS = (
    "id, channel_id, seq, sender_id, body, message_type, client_msg_id, mentions, source, "
    "edited_at, deleted_at, created_at"
)
# the message row `m` with its sender's name
_SELECT = f"""SELECT {", ".join(f"m.{f}" for f in _FIELDS.split(", "))}, u.name AS sender_name
    FROM m LEFT JOIN users u ON u.id = m.sender_id"""


def _message(row: asyncpg.Record) -> ChatMessage:
    values = dict(row)
    values["message_type"] = MessageType(values["message_type"])
    return ChatMessage(**values)


async def insert(
    conn: Connection,
    *,
    channel_id: uuid.UUID,
    seq: int,
    sender_id: uuid.UUID | None,
    body: str,
    message_type: MessageType = MessageType.TEXT,
    client_msg_id: uuid.UUID | None = None,
    mentions: Sequence[uuid.UUID] = (),
    source: str = "taskhub",
    correlation_id: str | None = None,
    message_id: uuid.UUID | None = None,
) -> ChatMessage:
    """Store a message with the seq the caller took under the channel's lock.

    `message_id` is given for messages other services produced (their id keeps
    them stored once); the sender is kept only if such a user exists.
    """
    row = await conn.fetchrow(
        f"""WITH m AS (
                INSERT INTO chat_messages (id, channel_id, seq, sender_id, body, message_type,
                    client_msg_id, mentions, source, correlation_id)
                VALUES (coalesce($1, gen_random_uuid()), $2, $3,
                    (SELECT id FROM users WHERE id = $4), $5, $6, $7, $8, $9, $10)
                RETURNING *)
            {_SELECT}""",
        message_id,
        channel_id,
        seq,
        sender_id,
        body,
        message_type.value,
        client_msg_id,
        list(mentions),
        source,
        correlation_id,
    )
    return _message(row)


async def get(conn: Connection, message_id: uuid.UUID) -> ChatMessage | None:
    row = await conn.fetchrow(
        f"WITH m AS (SELECT * FROM chat_messages WHERE id = $1) {_SELECT}", message_id
    )
    return _message(row) if row else None


async def by_client_msg_id(
    conn: Connection, sender_id: uuid.UUID, client_msg_id: uuid.UUID
) -> ChatMessage | None:
    row = await conn.fetchrow(
        f"""WITH m AS (SELECT * FROM chat_messages WHERE sender_id = $1 AND client_msg_id = $2)
            {_SELECT}""",
        sender_id,
        client_msg_id,
    )
    return _message(row) if row else None


async def edit(conn: Connection, message_id: uuid.UUID, body: str) -> ChatMessage | None:
    """New text for a live message; None if it is gone or deleted."""
    row = await conn.fetchrow(
        f"""WITH m AS (
                UPDATE chat_messages SET body = $2, edited_at = now()
                WHERE id = $1 AND deleted_at IS NULL RETURNING *)
            {_SELECT}""",
        message_id,
        body,
    )
    return _message(row) if row else None


async def soft_delete(conn: Connection, message_id: uuid.UUID) -> ChatMessage | None:
    """Drop the text but keep the place in the channel (its seq); None if already gone."""
    row = await conn.fetchrow(
        f"""WITH m AS (
                UPDATE chat_messages SET body = '', mentions = '{{}}', deleted_at = now()
                WHERE id = $1 AND deleted_at IS NULL RETURNING *)
            {_SELECT}""",
        message_id,
    )
    return _message(row) if row else None


async def history(
    conn: Connection, channel_id: uuid.UUID, before: int | None, limit: int
) -> list[ChatMessage]:
    """Newest first, up to `limit` messages with a seq below `before` (keyset paging)."""
    rows = await conn.fetch(
        f"""WITH m AS (
                SELECT * FROM chat_messages
                WHERE channel_id = $1 AND ($2::bigint IS NULL OR seq < $2)
                ORDER BY seq DESC LIMIT $3)
            {_SELECT} ORDER BY m.seq DESC""",
        channel_id,
        before,
        limit,
    )
    return [_message(r) for r in rows]


async def publish(
    conn: Connection, type: ChatEventType, message: ChatMessage, correlation_id: str | None
) -> uuid.UUID:
    """Put the message on topic `chat_messages` (key = channel) through the outbox, in
    the writing transaction; returns the record's event_id."""
    return await outbox.enqueue(
        conn,
        topic="chat_messages",
        key=str(message.channel_id),
        type=type.value,
        payload=to_wire(message),
        correlation_id=correlation_id,
    )
