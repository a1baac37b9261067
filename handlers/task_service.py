"""Task writes inside one transaction: authorize, apply, record with the board's seq.

Each function returns the event the write produced; the caller commits, then
emits. A raised HubError rolls everything back, the seq included.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from handlers import recurrence
from protocol.errors import Forbidden, InvalidPayload, NotFound, VersionConflict
from protocol.events import TaskEventType
from protocol.models import BoardRole, Task, TaskEvent, TaskStatus, to_wire
from protocol.payloads import TaskChanges, TaskCreate
from storage import boards, task_events, tasks
from storage.db import Connection
from storage.task_events import Origin

log = logging.getLogger(__name__)

WRITERS = frozenset({BoardRole.OWNER, BoardRole.EDITOR})


@dataclass(frozen=True)
class Written:
    """A write's own event (what its ack carries) and the events it caused, in seq order
    (the next occurrence of a completed recurring task); the caller emits them all."""

    event: TaskEvent
    caused: tuple[TaskEvent, ...] = ()


async def require_role(
    conn: Connection, board_id: uuid.UUID, user_id: uuid.UUID, *, write: bool
) -> BoardRole:
    role = await boards.role_of(conn, board_id, user_id)
    if role is None:
        if not await boards.exists(conn, board_id):
            raise NotFound("board not found")
        raise Forbidden("you are not a member of this board")
    if write and role not in WRITERS:
        raise Forbidden("viewers cannot change the board")
    return role


async def _locked_live_task(conn: Connection, task_id: uuid.UUID) -> Task:
    """The task as it stands, its row locked until the transaction ends: what a write
    judges again when the task changed after it was first read."""
    task = await tasks.get_locked(conn, task_id)
    if task is None or task.deleted_at is not None:
        raise NotFound("task not found")
    return task


async def _check_assignee(conn: Connection, board_id: uuid.UUID, assignee: Any) -> None:
    if isinstance(assignee, uuid.UUID) and await boards.role_of(conn, board_id, assignee) is None:
        raise InvalidPayload("the assignee must be a member of the board", {"field": "assignee_id"})


def _classify(changes: dict[str, Any]) -> TaskEventType:
    if "status" in changes:
        done = changes["status"]["after"] == TaskStatus.DONE.value
        return TaskEventType.COMPLETED if done else TaskEventType.STATUS_CHANGED
    if "assignee_id" in changes:
        return TaskEventType.ASSIGNED
    return TaskEventType.UPDATED


async def create(
    conn: Connection, actor_id: uuid.UUID, payload: TaskCreate, origin: Origin
) -> TaskEvent:
    await require_role(conn, payload.board_id, actor_id, write=True)
    await _check_assignee(conn, payload.board_id, payload.assignee_id)
    recurrence.check(payload.recurrence)
    fields = {name: getattr(payload, name) for name in tasks.EDITABLE}
    return await _insert(conn, payload.board_id, actor_id, fields, actor_id, origin)


async def _insert(
    conn: Connection,
    board_id: uuid.UUID,
    creator_id: uuid.UUID,
    fields: dict[str, Any],
    actor_id: uuid.UUID,
    origin: Origin,
    recurrence_of: uuid.UUID | None = None,
) -> TaskEvent:
    """A new task and its `task.created` event, with the board's next seq."""
    task = await tasks.insert(conn, board_id, creator_id, fields, recurrence_of=recurrence_of)
    return await task_events.append(
        conn,
        type=TaskEventType.CREATED,
        task=task,
        actor_id=actor_id,
        changes={},
        origin=origin,
    )


async def update(
    conn: Connection,
    actor_id: uuid.UUID,
    task_id: uuid.UUID,
    base_version: int,
    changes: TaskChanges,
    origin: Origin,
) -> Written:
    """Apply `changes` made against `base_version`, merging by field when it is stale.

    The task is read (with the caller's role) without a lock. The conditional
    UPDATE proves that read still is the stored row (every change bumps the
    version) and locks it; if it is not, the task is read again, locked, and the
    edit judged again. The board's seq comes last, with the event's INSERT
    (task_events.append), so the board's writers wait on each other only from
    there to the commit. Completing a recurring task creates its next occurrence
    in the same transaction, under that lock.
    """
    current = await _writable_task(conn, task_id, actor_id)
    board_id = current.board_id  # a task never changes board
    fields = changes.fields()
    if "assignee_id" in fields:
        await _check_assignee(conn, board_id, fields["assignee_id"])
    if "recurrence" in fields:
        recurrence.check(fields["recurrence"])
    updated = await _apply_update(conn, current, base_version, fields)
    if updated is None:  # changed since the read: judge it again, locked
        current = await _locked_live_task(conn, task_id)
        updated = await _apply_update(conn, current, base_version, fields)
    if updated is None:  # impossible while the row is locked; never write blindly
        raise VersionConflict("the task changed concurrently", {"task": to_wire(current)})
    task, undelay = updated
    diff = {
        name: {"before": to_wire(getattr(current, name)), "after": to_wire(getattr(task, name))}
        for name in fields
    }
    if undelay:
        diff["is_delayed"] = {"before": True, "after": False}
    event = await task_events.append(
        conn,
        type=_classify(diff),
        task=task,
        actor_id=actor_id,
        changes=diff,
        origin=origin,
    )
    return Written(event, await _next_occurrence(conn, actor_id, current, task, origin))


async def _writable_task(conn: Connection, task_id: uuid.UUID, actor_id: uuid.UUID) -> Task:
    """The live task, if `actor_id` may change its board: one read for both."""
    found = await tasks.get_with_role(conn, task_id, actor_id)
    if found is None or found[0].deleted_at is not None:
        raise NotFound("task not found")
    task, role = found
    if role is None:  # the task's board exists: its row is the task's foreign key
        raise Forbidden("you are not a member of this board")
    if role not in WRITERS:
        raise Forbidden("viewers cannot change the board")
    return task


async def _apply_update(
    conn: Connection, current: Task, base_version: int, fields: dict[str, Any]
) -> tuple[Task, bool] | None:
    """The version-checked UPDATE of `current` with `fields`, after the field merge
    when `base_version` is stale; (the task, whether the edit ended its delay), or
    None when the stored task is no longer `current`."""
    task_id = current.id
    if base_version > current.version:
        raise InvalidPayload(
            f"base_version {base_version} is newer than the task (version {current.version})",
            {"field": "base_version"},
        )
    if base_version < current.version:
        overlap = (
            await task_events.fields_changed_since(conn, task_id, base_version) & fields.keys()
        )
        if overlap:
            raise VersionConflict(
                "fields you edited were changed since base_version",
                {"task": to_wire(current), "conflicting_fields": sorted(overlap)},
            )
    # a due date moved out of the past ends the delay the scheduler marked
    due = fields.get("due_date", current.due_date)
    undelay = current.is_delayed and "due_date" in fields and (due is None or due > _now())
    try:
        updated = await tasks.update_if_version(
            conn, task_id, current.version, fields, is_delayed=False if undelay else None
        )
    except InvalidPayload as exc:
        if base_version == current.version:
            raise
        # Valid on its own, invalid merged with what changed since (a start date
        # after the new due date): the client must rebase, not fix its input.
        raise VersionConflict(
            f"merged with the changes since base_version, {exc.message}",
            {"task": to_wire(current), "conflicting_fields": sorted(fields)},
        ) from None
    return None if updated is None else (updated, undelay)


def _now() -> datetime:
    return datetime.now(UTC)


async def _next_occurrence(
    conn: Connection, actor_id: uuid.UUID, before: Task, after: Task, origin: Origin
) -> tuple[TaskEvent, ...]:
    """The `task.created` of a completed recurring task's next occurrence, if this edit
    completed one; made at most once per task (reopening and completing again makes
    none, which the unique index on `recurrence_of` also holds)."""
    rule = after.recurrence
    if rule is None or after.status != TaskStatus.DONE or before.status == TaskStatus.DONE:
        return ()
    if await tasks.occurrence_exists(conn, after.id):
        return ()
    try:
        start, due = recurrence.next_dates(
            rule, after.start_date, after.due_date, after.completed_at or _now()
        )
    except ValueError as exc:  # a rule stored before it was checked; never block completion
        log.warning(
            "recurrence not scheduled",
            extra={"task_id": str(after.id), "recurrence": rule, "error": str(exc)},
        )
        return ()
    assignee = after.assignee_id
    if assignee is not None and await boards.role_of(conn, after.board_id, assignee) is None:
        assignee = None  # left the board since
    fields = {
        "title": after.title,
        "description": after.description,
        "status": TaskStatus.TODO,
        "priority": after.priority,
        "assignee_id": assignee,
        "assigned_role": after.assigned_role,
        "tags": after.tags,
        "start_date": start,
        "due_date": due,
        "recurrence": rule,
        "epic": after.epic,
    }
    # the board's seq row is locked by this transaction already: the next number follows
    created = await _insert(
        conn, after.board_id, after.creator_id, fields, actor_id, origin, after.id
    )
    return (created,)


async def delete(
    conn: Connection,
    actor_id: uuid.UUID,
    task_id: uuid.UUID,
    base_version: int | None,
    origin: Origin,
) -> TaskEvent:
    current = await _writable_task(conn, task_id, actor_id)
    deleted = await _delete_if_current(conn, current, base_version)
    if deleted is None:  # changed since the read: judge it again, locked
        deleted = await _delete_if_current(
            conn, await _locked_live_task(conn, task_id), base_version
        )
    if deleted is None:  # impossible while the row is locked; never delete blindly
        raise VersionConflict("the task changed concurrently", {"task": to_wire(current)})
    return await task_events.append(
        conn,
        type=TaskEventType.DELETED,
        task=deleted,
        actor_id=actor_id,
        changes={"deleted_at": {"before": None, "after": to_wire(deleted.deleted_at)}},
        origin=origin,
    )


async def _delete_if_current(
    conn: Connection, current: Task, base_version: int | None
) -> Task | None:
    """The version-checked soft delete of `current`, refused when the client saw an
    older version; None when the stored task is no longer `current`."""
    if base_version is not None and base_version != current.version:
        raise VersionConflict(
            "the task changed since base_version; review it before deleting",
            {"task": to_wire(current), "conflicting_fields": []},
        )
    return await tasks.soft_delete_if_version(conn, current.id, current.version)
