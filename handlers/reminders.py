"""Socket events on reminders: a user's own "remind me about this task at that time".

A reminder belongs to whoever set it: any board member who may read the task
can set one for themselves, and only its owner lists or dismisses it. Someone
else's reminder id answers `not_found`, so ids reveal nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from handlers import idempotency, task_service
from handlers.socket_hub import Caller, HubNamespace
from protocol import correlation
from protocol.errors import InvalidPayload, NotFound
from protocol.events import ClientEvent
from protocol.models import Reminder, ReminderStatus, Task, to_wire
from protocol.payloads import ReminderCreate, ReminderDismiss, ReminderList
from storage import reminders, tasks
from storage.db import Connection


async def _readable_task(conn: Connection, task_id: uuid.UUID, user_id: uuid.UUID) -> Task:
    """The live task, if the user may read its board (any member role may)."""
    task = await tasks.get(conn, task_id)
    if task is None or task.deleted_at is not None:
        raise NotFound("task not found")
    await task_service.require_role(conn, task.board_id, user_id, write=False)
    return task


async def _once(
    ns: HubNamespace,
    caller: Caller,
    event: ClientEvent,
    payload: ReminderCreate | ReminderDismiss,
    apply: Callable[[Connection], Awaitable[Any]],
) -> Any:
    """Apply a reminder write in one transaction; a repeated op_id gets the first ack."""

    async def write(conn: Connection) -> tuple[Any, None]:
        return await apply(conn), None

    ack, _ = await idempotency.apply_once(
        ns.deps.pool, caller.user_id, payload.op_id, event, payload, write
    )
    return ack


async def reminders_create(ns: HubNamespace, caller: Caller, payload: ReminderCreate) -> Any:
    async def apply(conn: Connection) -> Any:
        task = await _readable_task(conn, payload.task_id, caller.user_id)
        made = await reminders.insert(
            conn, task.id, caller.user_id, payload.remind_at, payload.method
        )
        await reminders.record(conn, made, task.board_id, correlation_id=correlation.current())
        return to_wire(made)

    return await _once(ns, caller, ClientEvent.REMINDERS_CREATE, payload, apply)


async def reminders_list(ns: HubNamespace, caller: Caller, payload: ReminderList) -> Any:
    async with ns.deps.pool.acquire() as conn:
        task = await _readable_task(conn, payload.task_id, caller.user_id)
        found = await reminders.for_task(conn, task.id, caller.user_id)
    return {"task_id": str(task.id), "reminders": to_wire(found)}


async def reminders_dismiss(ns: HubNamespace, caller: Caller, payload: ReminderDismiss) -> Any:
    async def apply(conn: Connection) -> Any:
        dismissed: Reminder | None = await reminders.dismiss(
            conn, payload.reminder_id, caller.user_id
        )
        if dismissed is not None:
            task = await tasks.get(conn, dismissed.task_id)
            assert task is not None  # reminders go with their task (ON DELETE CASCADE)
            await reminders.record(
                conn, dismissed, task.board_id, correlation_id=correlation.current()
            )
            return to_wire(dismissed)
        existing = await reminders.get(conn, payload.reminder_id)
        if existing is None or existing.user_id != caller.user_id:
            raise NotFound("reminder not found")
        if existing.status == ReminderStatus.DISMISSED:
            return to_wire(existing)  # dismissing twice changes nothing
        if existing.status == ReminderStatus.SENT:
            raise InvalidPayload(
                "this reminder was already sent", {"field": "reminder_id", "status": "sent"}
            )
        raise NotFound("reminder not found")  # deleted in between

    return await _once(ns, caller, ClientEvent.REMINDERS_DISMISS, payload, apply)
