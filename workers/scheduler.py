"""The scheduler: delivers due reminders and marks overdue tasks delayed.

Every `scheduler_interval` it:

- claims due reminders one at a time with `FOR UPDATE SKIP LOCKED` and, in
  that same transaction delivers it in-app (a `notification` row) or parks
  it for the `ReminderSender` (see below), marks it `sent` (or counts the failed
  attempt) and writes `reminder.sent` / `reminder.failed` to the outbox. The
  row's status is the truth, so a second scheduler skips what the first holds
  and a restarted one finds it already sent. The in-app push goes out after
  the commit.
- marks live tasks past their due date, not done or cancelled, `is_delayed`
  once: per task one transaction takes the board's next seq, updates the task
  conditionally (version + 1) and appends `task.delayed`; `task:updated` is
  emitted to the board after the commit. The conditional UPDATE makes a second
  scheduler's attempt a no-op that gives its seq back.

An email/push/SMS reminder is sent outside any transaction: its claim parks it
under a lease (`lease_until`) and commits, and a second transaction settles it.
A scheduler that dies mid-send leaves the lease to run out, and the reminder is
sent again (at least once; the reminder id is the sender's idempotency key).
In-app delivery has no such window: the notification is unique by (reminder id,
user).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Protocol

from protocol.events import TaskEventType
from protocol.models import (
    Notification,
    NotificationType,
    Reminder,
    ReminderMethod,
    ReminderStatus,
    TaskEvent,
)
from storage import notifications, reminders, task_events, tasks
from storage.db import Connection, transaction
from storage.task_events import Origin
from workers.deps import WorkerDeps
from workers.kafka import sleep_or_stop
from workers.notifier import push_pending
from workers.rooms import emit_task_event

log = logging.getLogger(__name__)

# attempts before a reminder whose sender keeps failing is given up as `failed`
MAX_ATTEMPTS = 5
# a failed attempt is retried RETRY_BASE_SECONDS * (2^attempts - 1) after remind_at
RETRY_BASE_SECONDS = 30.0
SEND_TIMEOUT = 10.0
# How long past the send timeout a parked reminder stays with its scheduler.
LEASE_MARGIN = 20.0
# work done per tick at most, so a backlog never keeps `stop` waiting for long
BATCH = 100
# A notification unpushed for this long lost its push (the notifier pushes at once).
UNPUSHED_GRACE = 10.0
TITLE_MAX = 300


class ReminderSender(Protocol):
    """Delivers a reminder by email, push or SMS; raises when it could not."""

    async def send(self, reminder: Reminder, task_title: str) -> None: ...


class LoggingSender:
    """The default sender: no mail or SMS gateway is configured, so it logs the reminder
    and reports success. A real sender is given to `serve` instead."""

    async def send(self, reminder: Reminder, task_title: str) -> None:
        log.info(
            "reminder sent",
            extra={
                "reminder_id": str(reminder.id),
                "user_id": str(reminder.user_id),
                "method": reminder.method.value,
                "task_title": task_title,
            },
        )


async def run(deps: WorkerDeps, stop: asyncio.Event) -> None:
    """`taskhub worker scheduler`: the default sender, until `stop`."""
    await serve(deps, stop, LoggingSender())


async def serve(deps: WorkerDeps, stop: asyncio.Event, sender: ReminderSender) -> None:
    """Tick until `stop`; a failing tick (the database away) is logged and retried."""
    while not stop.is_set():
        try:
            await tick(deps, sender, stop)
        except Exception:
            log.exception("scheduler tick failed; retrying")
        await sleep_or_stop(stop, deps.config.scheduler_interval)


async def tick(deps: WorkerDeps, sender: ReminderSender, stop: asyncio.Event) -> None:
    await deliver_due_reminders(deps, sender, stop)
    await mark_delayed_tasks(deps, stop)
    # any notification whose push was lost (a crash, Redis away) goes out now
    await push_pending(deps, older_than_seconds=UNPUSHED_GRACE)


# -- reminders ---------------------------------------------------------------


async def deliver_due_reminders(
    deps: WorkerDeps, sender: ReminderSender, stop: asyncio.Event
) -> int:
    """Deliver due reminders until none is left (or BATCH); returns how many were handled."""
    handled = 0
    while handled < BATCH and not stop.is_set():
        done, created = await _deliver_one(deps, sender)
        if not done:
            break
        handled += 1
        if created:
            await push_pending(deps, event_ids=[n.event_id for n in created if n.event_id])
    return handled


async def _deliver_one(deps: WorkerDeps, sender: ReminderSender) -> tuple[bool, list[Notification]]:
    """Claim and settle one due reminder; (False, []) when none is due.

    In-app delivery is a row, so it happens in the claiming transaction (in a
    savepoint: whatever goes wrong rolls back only the delivery and counts as a
    failed attempt, so one bad reminder never blocks the ones due after it).
    Email, push and SMS are network calls: the claim parks the reminder under a
    lease and commits, the sender runs outside any transaction, and a second
    transaction settles it.
    """
    async with transaction(deps.pool) as conn:
        due = await reminders.claim_due(conn, RETRY_BASE_SECONDS)
        if due is None:
            return False, []
        reminder = due.reminder
        created: list[Notification] = []
        if due.task_deleted or not due.still_member:
            # nothing left to remind of, or nobody entitled to hear of it: final
            reason = "the task was deleted" if due.task_deleted else "no longer a board member"
            settled = await reminders.mark_attempt_failed(conn, reminder.id, reason, max_attempts=1)
            await _settled(conn, due, settled)
            return True, []
        if reminder.method == ReminderMethod.IN_APP:
            try:
                async with conn.transaction():
                    created = await notifications.create(conn, [_draft(due)])
                    settled = await reminders.mark_sent(conn, reminder.id)
            except Exception as exc:
                created = []
                settled = await _failed(conn, reminder, exc)
            await _settled(conn, due, settled)
            return True, created
        await reminders.lease(conn, reminder.id, SEND_TIMEOUT + LEASE_MARGIN)
    error: Exception | None = None
    try:
        # the reminder id lets a real gateway drop a resend after a crash
        await asyncio.wait_for(sender.send(reminder, due.task_title), SEND_TIMEOUT)
    except Exception as exc:
        error = exc
    async with transaction(deps.pool) as conn:
        if await reminders.lock_leased(conn, reminder.id) is None:
            return True, []  # dismissed while it was being sent
        if error is None:
            settled = await reminders.mark_sent(conn, reminder.id)
        else:
            settled = await _failed(conn, reminder, error)
        await _settled(conn, due, settled)
    return True, []


async def _failed(conn: Connection, reminder: Reminder, exc: Exception) -> Reminder:
    log.warning(
        "reminder delivery failed", extra={"reminder_id": str(reminder.id), "error": repr(exc)}
    )
    return await reminders.mark_attempt_failed(
        conn, reminder.id, repr(exc), max_attempts=MAX_ATTEMPTS
    )


async def _settled(conn: Connection, due: reminders.Due, settled: Reminder) -> None:
    if settled.status != ReminderStatus.SCHEDULED:  # a retry is not news yet
        await reminders.record(conn, settled, due.board_id)
    log.info(
        "reminder settled",
        extra={"reminder_id": str(settled.id), "status": settled.status.value},
    )


def _draft(due: reminders.Due) -> notifications.Draft:
    reminder = due.reminder
    when = (
        f"It is due {due.task_due_date.strftime('%Y-%m-%d %H:%M UTC')}."
        if due.task_due_date is not None
        else "You asked to be reminded of this task."
    )
    return notifications.Draft(
        user_id=reminder.user_id,
        type=NotificationType.REMINDER,
        title=f"Reminder: {due.task_title}"[:TITLE_MAX],
        message=when,
        task_id=reminder.task_id,
        board_id=due.board_id,
        # one reminder can never notify twice, whatever happens around the claim
        event_id=reminder.id,
    )


# -- delayed tasks -----------------------------------------------------------


async def mark_delayed_tasks(deps: WorkerDeps, stop: asyncio.Event) -> int:
    """Mark overdue tasks delayed, one transaction each; returns how many were marked."""
    async with deps.pool.acquire() as conn:
        candidates = await tasks.overdue_undelayed(conn, BATCH)
    marked = 0
    for task_id in candidates:
        if stop.is_set():
            break
        event = await _mark_one(deps, task_id)
        if event is None:
            continue
        marked += 1
        try:
            await emit_task_event(deps, event)
        except Exception as exc:  # committed: the bridge delivers it from Kafka
            log.error(
                "emitting task.delayed failed",
                extra={"task_id": str(task_id), "error": repr(exc)},
            )
    return marked


async def _mark_one(deps: WorkerDeps, task_id: uuid.UUID) -> TaskEvent | None:
    """Mark one task delayed with its event; None when it is no longer overdue (it
    changed meanwhile), and then nothing was written."""
    async with transaction(deps.pool) as conn:
        # lock order as in every task write: the task, then its board's seq row
        task = await tasks.mark_delayed(conn, task_id)
        if task is None:
            return None
        return await task_events.append(
            conn,
            type=TaskEventType.DELAYED,
            task=task,
            actor_id=None,
            changes={"is_delayed": {"before": False, "after": True}},
            origin=Origin(),
        )
