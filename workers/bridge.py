"""Kafka into rooms (`taskhub worker bridge`): records of other services reach clients.

Consumes `task_events` and `chat_messages` in group "bridge" (offsets committed
after each handled batch, by workers.kafka.consume) and emits through the
write-only Redis manager, so every hub node delivers to its own clients.

- `task_events`: validated and emitted to `board:{board_id}` as
  `task:created`, `task:deleted` or (every other type) `task:updated`, with the
  record as its body. Events of other producers carry no board seq unless their
  producer set one, since they are not part of the board's stored history.
- `chat_messages`: provisional until chat lands (issue 4): a record needs the
  envelope and a `channel_id`, and is emitted as `chat:message` to
  `channel:{channel_id}` with the record as its body.

Every event is claimed before it is emitted (storage/emits.py), by the hub as
much as by the bridge: an event the hub emitted after its commit, and any
redelivery, is skipped; an event the hub could not emit (its node died between
commit and emit, Redis refused the publish) is emitted here. A malformed record
is logged with its topic, partition and offset and skipped; it never stops the
batch.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from typing import Annotated

import msgspec
from aiokafka import ConsumerRecord
from msgspec import Meta

from protocol.events import ServerEvent, TaskEventType, room_board, room_channel, server_event_for
from protocol.models import to_wire
from protocol.records import Envelope, TaskEventRecord, decode_task_event
from storage import emits
from workers.deps import WorkerDeps
from workers.kafka import consume, skip_malformed

log = logging.getLogger(__name__)

NAME = "bridge"
TOPICS = ("task_events", "chat_messages")

_KNOWN_TYPES = frozenset(t.value for t in TaskEventType)


class ChatMessageRecord(Envelope, kw_only=True):
    """The minimal `chat_messages` record the bridge accepts (until issue 4)."""

    channel_id: uuid.UUID
    sender_id: uuid.UUID | None = None
    message_id: uuid.UUID | None = None
    body: Annotated[str, Meta(max_length=10_000)] | None = None
    message_type: Annotated[str, Meta(max_length=20)] = "text"


class Rejected(ValueError):
    """A record that decodes but says something the bridge will not emit."""


def validate_task_event(record: TaskEventRecord) -> None:
    if record.type not in _KNOWN_TYPES:
        raise Rejected(f"unknown task event type {record.type!r}")
    task = record.task
    if task is not None and (task.id != record.task_id or task.board_id != record.board_id):
        raise Rejected("the task does not match task_id / board_id")


async def run(deps: WorkerDeps, stop: asyncio.Event) -> None:
    """Bridge until `stop`; each handled batch is committed, so a restart resumes after it."""
    bridge = Bridge(deps)
    await consume(deps, stop, name=NAME, topics=TOPICS, handle=bridge.handle)


class Bridge:
    def __init__(self, deps: WorkerDeps) -> None:
        self.deps = deps
        self.task_topic = deps.topic("task_events")
        self.chat_topic = deps.topic("chat_messages")

    async def handle(self, records: Sequence[ConsumerRecord]) -> None:
        """Emit a batch in partition order; raise only for outages (the batch is retried)."""
        tasks: list[tuple[ConsumerRecord, TaskEventRecord]] = []
        chats: list[tuple[ConsumerRecord, ChatMessageRecord]] = []
        for rec in records:
            try:
                if rec.topic == self.task_topic:
                    event = decode_task_event(rec.value or b"")
                    validate_task_event(event)
                    tasks.append((rec, event))
                elif rec.topic == self.chat_topic:
                    chats.append(
                        (rec, msgspec.json.decode(rec.value or b"", type=ChatMessageRecord))
                    )
            except (msgspec.DecodeError, msgspec.ValidationError, Rejected) as exc:
                skip_malformed(rec, exc, NAME)
        # Every event is claimed before it is emitted: one the hub already emitted
        # (or a redelivery) is skipped, one the hub could not emit is emitted now.
        for _, event in tasks:
            await self._emit_once(
                event.event_id,
                server_event_for(event.type),
                to_wire(event),
                room_board(event.board_id),
            )
        for _, chat in chats:
            await self._emit_once(
                chat.event_id,
                ServerEvent.CHAT_MESSAGE,
                to_wire(chat),
                room_channel(chat.channel_id),
            )

    async def _emit_once(self, event_id: uuid.UUID, event: str, data: object, room: str) -> None:
        async def emit() -> None:
            await self.deps.emitter.emit(event, data, room)

        await emits.emit_once(self.deps.redis, self.deps.keys, event_id, emit)
