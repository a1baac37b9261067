"""Kafka records: the envelope every Taskhub topic carries, and its encoding.

Value: one JSON object. Key: the entity whose events must stay in order
(task_id on `task_events`, channel_id on `chat_messages`, ...). Headers repeat
`event_id`, `type`, `correlation_id` and `source` so a consumer can route or
dedupe without decoding the value. Delivery is at least once: consumers dedupe
by `event_id`.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from protocol.models import MessageType, Task

Text = Annotated[str, Meta(max_length=200)]


class Envelope(msgspec.Struct, kw_only=True, forbid_unknown_fields=False):
    """What every record has (DESIGN.md "Kafka topics")."""

    event_id: uuid.UUID
    type: Annotated[str, Meta(min_length=1, max_length=100)]
    occurred_at: Annotated[datetime, Meta(tz=True)]
    source: Text = "taskhub"
    correlation_id: Text | None = None
    trace_id: Text | None = None


class TaskEventRecord(Envelope, kw_only=True):
    """A record of topic `task_events`; `seq` is absent for events made outside the hub."""

    board_id: uuid.UUID
    task_id: uuid.UUID
    actor_id: uuid.UUID | None = None
    seq: Annotated[int, Meta(ge=1)] | None = None
    task: Task | None = None
    changes: dict[str, Any] = msgspec.field(default_factory=dict)
    # the client the write came from (`ip`, `user_agent`), when a person made it
    metadata: dict[str, str] = msgspec.field(default_factory=dict)


class ChatMessageBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=False):
    """The message a `chat_messages` record carries (the hub adds every field of
    protocol.models.ChatMessage; another service needs only these)."""

    id: uuid.UUID
    channel_id: uuid.UUID
    body: Annotated[str, Meta(max_length=10_000)]  # empty once deleted
    sender_id: uuid.UUID | None = None
    message_type: MessageType = MessageType.TEXT
    # members the message names (`@name`), whom the notifier tells
    mentions: Annotated[list[uuid.UUID], Meta(max_length=100)] = msgspec.field(default_factory=list)


class ChatRecord(Envelope, kw_only=True):
    """A record of topic `chat_messages`: type `chat.message`, `chat.edited` or
    `chat.deleted`, key = channel_id, the message under `payload`."""

    payload: ChatMessageBody


class OutboxRecord(Envelope, kw_only=True):
    """A record of the general outbox topics (reminders, audit_events, ...)."""

    payload: dict[str, Any] = msgspec.field(default_factory=dict)


_encoder = msgspec.json.Encoder()


def encode(record: msgspec.Struct) -> bytes:
    return _encoder.encode(record)


def decode_task_event(value: bytes) -> TaskEventRecord:
    """Raise msgspec.ValidationError / DecodeError for a malformed record."""
    return msgspec.json.decode(value, type=TaskEventRecord)


def decode_chat(value: bytes) -> ChatRecord:
    return msgspec.json.decode(value, type=ChatRecord)


def decode_outbox(value: bytes) -> OutboxRecord:
    return msgspec.json.decode(value, type=OutboxRecord)


def headers(record: Envelope) -> list[tuple[str, bytes]]:
    pairs = [("event_id", str(record.event_id)), ("type", record.type), ("source", record.source)]
    if record.correlation_id:
        pairs.append(("correlation_id", record.correlation_id))
    if record.trace_id:
        pairs.append(("trace_id", record.trace_id))
    return [(name, value.encode()) for name, value in pairs]
