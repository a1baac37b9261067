"""Kafka into rooms (`taskhub worker bridge`): records of other services reach clients.

Consumes `task_events` and `chat_messages` in group "bridge" (offsets committed
after each handled batch, by workers.kafka.consume) and emits through the
write-only Redis manager, so every hub node delivers to its own clients.

- `task_events`: emitted to `board:{board_id}` as `task:created`,
  `task:deleted` or (every other type) `task:updated`, with the stored event as
  its body, exactly as the hub emits it. An event the hub wrote is found by its
  event_id. An event another service produced is validated against the stored
  task (it must exist, on the board the record names, live unless the event is
  `task.deleted`, deleted if it is), then kept as the board's next entry
  (storage/task_events.append_relayed; a fetch's records in one transaction
  under their boards' locks): it gets a seq, catch-up replays it,
  and its snapshot is the stored task, never the producer's copy. A record
  about a task we do not store is skipped: the board could not show it.
- `chat_messages`: emitted to the channel's room (a DM's: its two users'
  rooms) as `chat:message`, `chat:edited` or `chat:deleted`, with the stored
  message. A message the hub stored is found by its id. A new message
  (`chat.message`) another service produced is stored once, by its id, as the
  channel's next message: the channel must exist and a sender, if named, must
  be a member; it is not put on Kafka again. Other services may only add
  messages: an edit or delete record of a message we do not store is skipped.

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

import msgspec
from aiokafka import ConsumerRecord

from protocol.errors import NotFound
from protocol.events import CHAT_SERVER_EVENTS, ChatEventType, TaskEventType, chat_rooms
from protocol.models import ChatMessage, Task, TaskEvent, to_wire
from protocol.records import ChatRecord, TaskEventRecord, decode_chat, decode_task_event
from storage import boards, channels, chat_messages, emits, task_events, tasks
from storage.db import Connection, transaction
from workers import rooms
from workers.deps import WorkerDeps
from workers.kafka import consume, skip_malformed

log = logging.getLogger(__name__)

NAME = "bridge"
TOPICS = ("task_events", "chat_messages")

_KNOWN_TYPES = frozenset(t.value for t in TaskEventType)
_CHAT_TYPES = frozenset(t.value for t in ChatEventType)


class Rejected(ValueError):
    """A record that decodes but says something the bridge will not emit."""


def validate_task_event(record: TaskEventRecord) -> None:
    if record.type not in _KNOWN_TYPES:
        raise Rejected(f"unknown task event type {record.type!r}")


def validate_chat(record: ChatRecord) -> None:
    if record.type not in _CHAT_TYPES:
        raise Rejected(f"unknown chat record type {record.type!r}")
    if not record.payload.body.strip() and record.type == ChatEventType.MESSAGE:
        raise Rejected("a message needs text")


def check_against_stored(record: TaskEventRecord, task: Task | None) -> Task:
    """The stored task a foreign record is about, if the record agrees with it."""
    if task is None:
        raise Rejected("no such task")
    if task.board_id != record.board_id:
        raise Rejected("the task is on another board")
    deleted = task.deleted_at is not None
    if deleted != (record.type == TaskEventType.DELETED):
        raise Rejected("the event contradicts the stored task (deleted or not)")
    return task


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
        task_records: list[tuple[ConsumerRecord, TaskEventRecord]] = []
        chats: list[tuple[ConsumerRecord, ChatRecord]] = []
        for rec in records:
            try:
                if rec.topic == self.task_topic:
                    event = decode_task_event(rec.value or b"")
                    validate_task_event(event)
                    task_records.append((rec, event))
                elif rec.topic == self.chat_topic:
                    chat = decode_chat(rec.value or b"")
                    validate_chat(chat)
                    chats.append((rec, chat))
            except (msgspec.DecodeError, msgspec.ValidationError, Rejected) as exc:
                skip_malformed(rec, exc, NAME)
        stored = await self._stored_events(task_records) if task_records else {}
        # Every event is claimed before it is emitted: one the hub already emitted
        # (or a redelivery) is skipped, one the hub could not emit is emitted now.
        for _, record in task_records:
            if (kept := stored.get(record.event_id)) is not None:
                await rooms.emit_task_event(self.deps, kept)
        for rec, chat in chats:
            try:
                message, targets = await self._chat_message(chat)
            except Rejected as exc:
                skip_malformed(rec, exc, NAME)
                continue
            name = CHAT_SERVER_EVENTS[ChatEventType(chat.type)]
            await self._emit_once(chat.event_id, name, to_wire(message), targets)

    async def _chat_message(self, record: ChatRecord) -> tuple[ChatMessage, list[str]]:
        """The stored message of a record (stored now if it is another service's new
        message) and the rooms its event goes to."""
        body = record.payload
        async with transaction(self.deps.pool) as conn:
            try:
                channel = await channels.get(conn, body.channel_id)
            except NotFound:
                raise Rejected("no such channel") from None
            message = await chat_messages.get(conn, body.id)
            if message is None:
                if record.type != ChatEventType.MESSAGE:
                    raise Rejected("an edit or delete of a message we do not store")
                message = await self._keep_foreign_message(conn, record)
            if message.channel_id != channel.id:
                raise Rejected("the message is in another channel")
        return message, chat_rooms(channel)

    async def _keep_foreign_message(self, conn: Connection, record: ChatRecord) -> ChatMessage:
        body = record.payload
        await channels.lock(conn, body.channel_id)
        earlier = await chat_messages.get(conn, body.id)  # kept by another member meanwhile
        if earlier is not None:
            return earlier
        if body.sender_id is not None and not await channels.is_member(
            conn, body.channel_id, body.sender_id
        ):
            raise Rejected("the sender is not a member of the channel")
        seq = await channels.next_seq(conn, body.channel_id)
        return await chat_messages.insert(
            conn,
            channel_id=body.channel_id,
            seq=seq,
            sender_id=body.sender_id,
            body=body.body,
            message_type=body.message_type,
            source=record.source,
            correlation_id=record.correlation_id,
            message_id=body.id,
        )

    async def _stored_events(
        self, records: Sequence[tuple[ConsumerRecord, TaskEventRecord]]
    ) -> dict[uuid.UUID, TaskEvent]:
        """The stored event of each record, keeping other services' events first; a
        record that is rejected is logged and has none.

        The hub's own events are found without a lock (they are most of the
        traffic and must not queue behind the board's writers); the rest of the
        batch is kept in one transaction. One connection serves both.
        """
        async with self.deps.pool.acquire() as conn:
            known = await task_events.by_event_id(conn, [r.event_id for _, r in records])
            foreign = [(rec, r) for rec, r in records if r.event_id not in known]
            if foreign:
                known |= await self._keep_foreign(conn, foreign)
        return known

    async def _keep_foreign(
        self, conn: Connection, records: Sequence[tuple[ConsumerRecord, TaskEventRecord]]
    ) -> dict[uuid.UUID, TaskEvent]:
        """Store other services' events as their boards' next entries, once per event_id.

        Five round trips for the whole batch, where one record used to cost eight:
        begin, lock the boards, read the tasks, insert (skipping event_ids kept
        already), commit. The tasks are read after the boards are locked: a task
        write's change is committed only after it took its board's seq, so what a
        record is checked against, and the snapshot stored with it, is the task as
        it stands when the seq is taken.
        """
        async with conn.transaction():
            await boards.lock_many(conn, {r.board_id for _, r in records})
            stored = await tasks.get_many(conn, {r.task_id for _, r in records})
            accepted: list[tuple[TaskEventRecord, Task]] = []
            for rec, record in records:
                try:
                    task = check_against_stored(record, stored.get(record.task_id))
                except Rejected as exc:
                    skip_malformed(rec, exc, NAME)
                    continue
                accepted.append((record, task))
            kept = await task_events.append_relayed(conn, accepted)
            earlier = [r.event_id for r, _ in accepted if r.event_id not in kept]
            if earlier:  # redeliveries that another member of the group kept first
                kept |= await task_events.by_event_id(conn, earlier)
        return kept

    async def _emit_once(
        self, event_id: uuid.UUID, event: str, data: object, room: str | list[str]
    ) -> None:
        async def emit() -> None:
            await self.deps.emitter.emit(event, data, room)

        await emits.emit_once(self.deps.redis, self.deps.keys, event_id, emit)
