"""The notifier: turns task events from Kafka into notifications for people.

Who hears of what:
- a new, non-null assignee (a `task.assigned` event, any event whose changes
  set `assignee_id`, or a task created already assigned): the assignee;
- `task.status_changed` / `task.completed`: the task's creator and assignee;
- `task.delayed`: the assignee and the board's owners;
- a chat message (topic `chat_messages`) that mentions members: each of them.
Never the actor (people know what they did themselves), and only users who are
board members when the event is handled (someone removed since learns nothing
more about the board).

Each notification is written first and pushed after the commit, to the
user's room on every hub node and on Redis `pubsub:notifications`. Rows are
unique by (event_id, user_id), and only rows this call created are pushed, so a
redelivered event creates and pushes nothing. A push that fails is logged, not
retried: the row is kept and shows in `notifications:list` and the unread
count, and retrying the batch would not push it anyway.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from typing import Any

import msgspec
from aiokafka import ConsumerRecord

from protocol.errors import NotFound
from protocol.events import ChatEventType, ServerEvent, TaskEventType, room_user
from protocol.models import (
    BoardRole,
    Notification,
    NotificationLevel,
    NotificationType,
    Task,
    to_wire,
)
from protocol.records import ChatRecord, TaskEventRecord, decode_chat, decode_task_event
from storage import boards, channels, notifications, tasks, users
from storage.db import Connection, transaction
from workers.deps import WorkerDeps
from workers.kafka import consume, skip_malformed

log = logging.getLogger(__name__)

NAME = "notifier"
TOPIC = "task_events"
CHAT_TOPIC = "chat_messages"
# records from other producers may carry long text; a notification stays short
TITLE_MAX = 300
MESSAGE_MAX = 1000

_STATUS_EVENTS = frozenset({TaskEventType.STATUS_CHANGED, TaskEventType.COMPLETED})


async def run(deps: WorkerDeps, stop: asyncio.Event) -> None:
    """Consume `task_events` in group `notifier` until `stop`."""

    async def handle(records: Sequence[ConsumerRecord]) -> None:
        await handle_records(deps, records)

    await consume(deps, stop, name=NAME, topics=[TOPIC, CHAT_TOPIC], handle=handle)


async def handle_records(deps: WorkerDeps, records: Sequence[ConsumerRecord]) -> None:
    """Notify for each record in turn; a malformed record is logged and skipped.

    A database failure raises, so the consume loop retries the batch; what was
    already created is then skipped by the (event_id, user_id) key.
    """
    chat_topic = deps.topic(CHAT_TOPIC)
    for record in records:
        try:
            if record.topic == chat_topic:
                chat = decode_chat(record.value)
                event_id = chat.event_id
            else:
                event = decode_task_event(record.value)
                event_id = event.event_id
        except (msgspec.DecodeError, msgspec.ValidationError, TypeError) as exc:
            skip_malformed(record, exc, NAME)
            continue
        if record.topic == chat_topic:
            await notify_mentions(deps, chat)
        else:
            await notify(deps, event)
        # also pushes what an earlier delivery of this event stored but failed to push
        await push_pending(deps, event_ids=[event_id])


async def notify(deps: WorkerDeps, event: TaskEventRecord) -> list[Notification]:
    """Create the notifications `event` calls for; returns only those created now."""
    async with transaction(deps.pool) as conn:
        stored = await tasks.get(conn, event.task_id)
        if stored is None or stored.board_id != event.board_id:
            log.info(
                "task event for an unknown task; nobody to notify",
                extra={"event_id": str(event.event_id), "task_id": str(event.task_id)},
            )
            return []
        task = event.task or stored
        members = {m.user_id: m.role for m in await boards.members(conn, event.board_id)}
        owners = [user_id for user_id, role in members.items() if role == BoardRole.OWNER]
        wanted = recipients(event, task, owners)
        wanted = {
            user_id: kind
            for user_id, kind in wanted.items()
            if user_id != event.actor_id and user_id in members
        }
        if not wanted:
            return []
        actor = await _actor_name(conn, event.actor_id)
        drafts = [_draft(event, task, user_id, kind, actor) for user_id, kind in wanted.items()]
        created = await notifications.create(conn, drafts)
        if len(created) < len(drafts):
            # a redelivery: the worker died, or a commit failed, after an earlier run
            log.info(
                "event already notified; redelivered",
                extra={"event_id": str(event.event_id), "skipped": len(drafts) - len(created)},
            )
        return created


async def notify_mentions(deps: WorkerDeps, record: ChatRecord) -> list[Notification]:
    """A `mention` for each member a new message names (not its sender)."""
    message = record.payload
    if record.type != ChatEventType.MESSAGE or not message.mentions:
        return []
    async with transaction(deps.pool) as conn:
        try:
            channel = await channels.get(conn, message.channel_id)
        except NotFound:
            return []
        members = set(await channels.member_ids(conn, channel.id))
        wanted = [
            user_id
            for user_id in dict.fromkeys(message.mentions)
            if user_id in members and user_id != message.sender_id
        ]
        if not wanted:
            return []
        who = await _actor_name(conn, message.sender_id) or "Someone"
        where = f"#{channel.name}" if channel.name else "a direct message"
        drafts = [
            notifications.Draft(
                user_id=user_id,
                type=NotificationType.MENTION,
                title=f"{who} mentioned you in {where}"[:TITLE_MAX],
                message=message.body[:MESSAGE_MAX],
                board_id=channel.board_id,
                event_id=record.event_id,
            )
            for user_id in wanted
        ]
        return await notifications.create(conn, drafts)


def new_assignee(event: TaskEventRecord, task: Task) -> uuid.UUID | None:
    """The user this event made the assignee, if it made one."""
    change = event.changes.get("assignee_id")
    if change is not None:
        if not isinstance(change, dict):
            return None
        after, before = change.get("after"), change.get("before")
        if after is None or after == before:
            return None
        try:
            return uuid.UUID(str(after))
        except ValueError:
            return None
    if event.type in (TaskEventType.ASSIGNED, TaskEventType.CREATED):
        # records from other producers may carry the task without a diff
        return task.assignee_id
    return None


def recipients(
    event: TaskEventRecord, task: Task, owners: Sequence[uuid.UUID]
) -> dict[uuid.UUID, NotificationType]:
    """Who should hear of `event`, and as what; one notification per person.

    A person named by two rules gets the first one: a new assignee hears that
    the task is now theirs, which says more than its new status.
    """
    wanted: dict[uuid.UUID, NotificationType] = {}
    assignee = new_assignee(event, task)
    if assignee is not None:
        wanted[assignee] = NotificationType.TASK_ASSIGNED
    if event.type in _STATUS_EVENTS:
        kind = (
            NotificationType.TASK_COMPLETED
            if event.type == TaskEventType.COMPLETED
            else NotificationType.TASK_STATUS_CHANGED
        )
        for user_id in (task.creator_id, task.assignee_id):
            if user_id is not None:
                wanted.setdefault(user_id, kind)
    elif event.type == TaskEventType.DELAYED:
        for user_id in (task.assignee_id, *owners):
            if user_id is not None:
                wanted.setdefault(user_id, NotificationType.TASK_DELAYED)
    return wanted


async def _actor_name(conn: Connection, actor_id: uuid.UUID | None) -> str | None:
    if actor_id is None:
        return None
    found = await users.public(conn, [actor_id])
    return found[0].name if found else None


def _status_of(event: TaskEventRecord, task: Task) -> tuple[Any, Any]:
    change = event.changes.get("status")
    if isinstance(change, dict):
        return change.get("before"), change.get("after", task.status.value)
    return None, task.status.value


def _draft(
    event: TaskEventRecord,
    task: Task,
    user_id: uuid.UUID,
    kind: NotificationType,
    actor: str | None,
) -> notifications.Draft:
    who = actor or "Someone"
    name = task.title
    level = NotificationLevel.INFO
    if kind == NotificationType.TASK_ASSIGNED:
        title = f"Assigned to you: {name}"
        message = f"{who} assigned this task to you." if actor else "This task is now yours."
    elif kind == NotificationType.TASK_COMPLETED:
        title = f"Completed: {name}"
        message = f"{who} marked this task done."
    elif kind == NotificationType.TASK_STATUS_CHANGED:
        before, after = _status_of(event, task)
        title = f"{name}: now {after}"
        moved = f"from {before} to {after}" if before else f"to {after}"
        message = f"{who} moved this task {moved}."
    else:
        level = NotificationLevel.WARNING
        title = f"Overdue: {name}"
        due = task.due_date.strftime("%Y-%m-%d %H:%M UTC") if task.due_date else "earlier"
        message = f"This task was due {due} and is not done yet."
    return notifications.Draft(
        user_id=user_id,
        type=kind,
        level=level,
        title=title[:TITLE_MAX],
        message=message[:MESSAGE_MAX],
        task_id=event.task_id,
        board_id=event.board_id,
        event_id=event.event_id,
    )


async def push_pending(
    deps: WorkerDeps,
    *,
    event_ids: Sequence[uuid.UUID] | None = None,
    older_than_seconds: float | None = None,
) -> int:
    """Push stored, unpushed notifications to their users' tabs and bots, all at once,
    and mark those that went out; returns how many did.

    At least once: a crash between the push and the mark pushes again, and
    clients drop a notification id they already show.
    """
    async with deps.pool.acquire() as conn:
        pending = await notifications.unpushed(
            conn, event_ids=event_ids, older_than_seconds=older_than_seconds
        )
    if not pending:
        return 0
    results = await asyncio.gather(*(_push_one(deps, n) for n in pending), return_exceptions=True)
    pushed = []
    for notification, result in zip(pending, results, strict=True):
        if isinstance(result, BaseException):
            log.error(
                "pushing a notification failed; pushed again later",
                extra={"notification_id": str(notification.id), "error": repr(result)},
            )
        else:
            pushed.append(notification.id)
    async with deps.pool.acquire() as conn:
        await notifications.mark_pushed(conn, pushed)
    return len(pushed)


async def _push_one(deps: WorkerDeps, notification: Notification) -> None:
    await asyncio.gather(
        deps.emitter.emit(
            ServerEvent.NOTIFICATION, to_wire(notification), room_user(notification.user_id)
        ),
        notifications.publish(deps.redis, deps.keys, notification),
    )
