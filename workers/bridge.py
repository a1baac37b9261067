"""Kafka into rooms (`taskhub worker bridge`): records of other services reach clients.

Consumes `task_events` and `chat_messages` in group "bridge" (offsets committed
after each handled batch, by workers.kafka.consume) and emits through the
write-only Redis manager, so every hub node delivers to its own clients.

- `task_events`: an event the hub wrote itself (its event_id is in the
  `task_events` table) was already emitted by the hub right after its commit,
  so the relay's copy is not emitted again. Any other event is validated and
  emitted to `board:{board_id}` as `task:created`, `task:deleted` or (every
  other type) `task:updated`, with the record as its body; such events carry
  no board seq unless their producer set one, since they are not part of the
  board's stored history.
- `chat_messages`: provisional until chat lands (issue 4): a record needs the
  envelope and a `channel_id`, and is emitted as `chat:message` to
  `channel:{channel_id}` with the record as its body.

Redeliveries of foreign records (a batch handled again after a crash, or a
producer's retry) are emitted once: the bridge claims each event_id with Redis
SET NX before emitting, for `SEEN_TTL` seconds. A malformed record is logged
with its topic, partition and offset and skipped; it never stops the batch.
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

from protocol.events import ServerEvent, TaskEventType, room_board
from protocol.models import to_wire
from protocol.records import Envelope, TaskEventRecord, decode_task_event
from storage import outbox
from storage.topics import ensure_topics
from workers.deps import WorkerDeps
from workers.kafka import consume

log = logging.getLogger(__name__)

NAME = "bridge"
TOPICS = ("task_events", "chat_messages")
# Long enough to cover any redelivery of a committed-late batch.
SEEN_TTL = 24 * 3600
TOPICS_TIMEOUT = 10.0

# Issue 4 defines chat; until then the event name lives here, and only here.
CHAT_MESSAGE = "chat:message"

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


def room_channel(channel_id: object) -> str:
    return f"channel:{channel_id}"


def server_event(event_type: str) -> ServerEvent:
    if event_type == TaskEventType.CREATED:
        return ServerEvent.TASK_CREATED
    if event_type == TaskEventType.DELETED:
        return ServerEvent.TASK_DELETED
    return ServerEvent.TASK_UPDATED


def validate_task_event(record: TaskEventRecord) -> None:
    if record.type not in _KNOWN_TYPES:
        raise Rejected(f"unknown task event type {record.type!r}")
    task = record.task
    if task is not None and (task.id != record.task_id or task.board_id != record.board_id):
        raise Rejected("the task does not match task_id / board_id")


async def run(deps: WorkerDeps, stop: asyncio.Event) -> None:
    """Bridge until `stop`; each handled batch is committed, so a restart resumes after it."""
    try:
        await asyncio.wait_for(
            ensure_topics(deps.config.kafka_bootstrap_servers, deps.config.topic_prefix),
            TOPICS_TIMEOUT,
        )
    except Exception as exc:  # the consumer waits for the broker by itself
        log.warning("could not ensure kafka topics", extra={"error": repr(exc)})
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
                log.warning(
                    "malformed record skipped",
                    extra={
                        "topic": rec.topic,
                        "partition": rec.partition,
                        "offset": rec.offset,
                        "error": str(exc),
                    },
                )
        if tasks:
            async with self.deps.pool.acquire() as conn:
                ours = await outbox.written_here(conn, [event.event_id for _, event in tasks])
            for _, event in tasks:
                if event.event_id in ours:
                    continue  # the hub emitted it right after its commit
                await self._emit_once(
                    event.event_id,
                    server_event(event.type),
                    to_wire(event),
                    room_board(event.board_id),
                )
        for _, chat in chats:
            await self._emit_once(
                chat.event_id, CHAT_MESSAGE, to_wire(chat), room_channel(chat.channel_id)
            )

    async def _emit_once(self, event_id: uuid.UUID, event: str, data: object, room: str) -> None:
        """Claim the event_id, then emit; a failed emit gives the claim back for the retry."""
        key = self.deps.keys.bridge_seen(event_id)
        if not await self.deps.redis.set(key, "1", nx=True, ex=SEEN_TTL):
            return  # a redelivery: emitted before
        try:
            await self.deps.emitter.emit(event, data, room)
        except BaseException:
            await self.deps.redis.delete(key)
            raise
