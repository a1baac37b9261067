"""Task writes inside one transaction: authorize, lock the board's seq, apply, record.

Each function returns the event the write produced; the caller commits, then
emits. A raised HubError rolls everything back, the seq included.
"""

from __future__ import annotations

import uuid
from typing import Any

from protocol.errors import Forbidden, InvalidPayload, NotFound, VersionConflict
from protocol.events import TaskEventType
from protocol.models import BoardRole, Task, TaskEvent, TaskStatus, to_wire
from protocol.payloads import TaskChanges, TaskCreate
from storage import boards, task_events, tasks
from storage.db import Connection

WRITERS = frozenset({BoardRole.OWNER, BoardRole.EDITOR})


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


async def _live_task(conn: Connection, task_id: uuid.UUID) -> Task:
    task = await tasks.get(conn, task_id)
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
    conn: Connection, actor_id: uuid.UUID, payload: TaskCreate, correlation_id: str | None
) -> TaskEvent:
    await require_role(conn, payload.board_id, actor_id, write=True)
    await _check_assignee(conn, payload.board_id, payload.assignee_id)
    seq = await boards.next_seq(conn, payload.board_id)
    fields = {name: getattr(payload, name) for name in tasks.EDITABLE}
    task = await tasks.insert(conn, payload.board_id, actor_id, fields)
    return await task_events.append(
        conn,
        seq=seq,
        type=TaskEventType.CREATED,
        task=task,
        actor_id=actor_id,
        changes={},
        correlation_id=correlation_id,
    )


async def update(
    conn: Connection,
    actor_id: uuid.UUID,
    task_id: uuid.UUID,
    base_version: int,
    changes: TaskChanges,
    correlation_id: str | None,
) -> TaskEvent:
    """Apply `changes` made against `base_version`, merging by field when it is stale.

    The board's seq row is locked before the task is read again, so the version
    seen here is the one the conditional UPDATE checks.
    """
    board_id = (await _live_task(conn, task_id)).board_id  # a task never changes board
    await require_role(conn, board_id, actor_id, write=True)
    fields = changes.fields()
    if "assignee_id" in fields:
        await _check_assignee(conn, board_id, fields["assignee_id"])
    seq = await boards.next_seq(conn, board_id)
    current = await _live_task(conn, task_id)
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
    updated = await tasks.update_if_version(conn, task_id, current.version, fields)
    if updated is None:  # impossible while the seq row is locked; never write blindly
        raise VersionConflict("the task changed concurrently", {"task": to_wire(current)})
    diff = {
        name: {"before": to_wire(getattr(current, name)), "after": to_wire(getattr(updated, name))}
        for name in fields
    }
    return await task_events.append(
        conn,
        seq=seq,
        type=_classify(diff),
        task=updated,
        actor_id=actor_id,
        changes=diff,
        correlation_id=correlation_id,
    )


async def delete(
    conn: Connection,
    actor_id: uuid.UUID,
    task_id: uuid.UUID,
    base_version: int | None,
    correlation_id: str | None,
) -> TaskEvent:
    board_id = (await _live_task(conn, task_id)).board_id
    await require_role(conn, board_id, actor_id, write=True)
    seq = await boards.next_seq(conn, board_id)
    current = await _live_task(conn, task_id)
    if base_version is not None and base_version != current.version:
        raise VersionConflict(
            "the task changed since base_version; review it before deleting",
            {"task": to_wire(current), "conflicting_fields": []},
        )
    deleted = await tasks.soft_delete_if_version(conn, task_id, current.version)
    if deleted is None:
        raise VersionConflict("the task changed concurrently", {"task": to_wire(current)})
    return await task_events.append(
        conn,
        seq=seq,
        type=TaskEventType.DELETED,
        task=deleted,
        actor_id=actor_id,
        changes={"deleted_at": {"before": None, "after": to_wire(deleted.deleted_at)}},
        correlation_id=correlation_id,
    )
