"""Tasks: the versioned rows that live edits change."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import datetime
from enum import Enum
from typing import Any

import asyncpg

from protocol.errors import InvalidPayload
from protocol.models import BoardRole, Task, TaskStatus
from storage import cursors
from storage.db import Connection

_COLUMNS = ", ".join(Task.__struct_fields__)
_T_COLUMNS = ", ".join(f"t.{name}" for name in Task.__struct_fields__)

# Fields a client may set; their names are also the column names.
EDITABLE = frozenset(
    {
        "title",
        "description",
        "status",
        "priority",
        "assignee_id",
        "assigned_role",
        "tags",
        "start_date",
        "due_date",
        "recurrence",
        "epic",
        "position",
    }
)


def _task(row: asyncpg.Record) -> Task:
    return Task(**dict(row))


def _db_value(value: Any) -> Any:
    return value.value if isinstance(value, Enum) else value


async def insert(
    conn: Connection,
    board_id: uuid.UUID,
    creator_id: uuid.UUID,
    fields: dict[str, Any],
    *,
    recurrence_of: uuid.UUID | None = None,
) -> Task:
    values = {k: _db_value(v) for k, v in fields.items() if k in EDITABLE}
    if recurrence_of is not None:
        values["recurrence_of"] = recurrence_of
    if values.get("position") is None:
        values["position"] = await conn.fetchval(
            """SELECT coalesce(max(position), 0) + 1024 FROM tasks
               WHERE board_id = $1 AND status = $2 AND deleted_at IS NULL""",
            board_id,
            values.get("status", TaskStatus.TODO.value),
        )
    names = ["board_id", "creator_id", *values]
    params = [board_id, creator_id, *values.values()]
    placeholders = ", ".join(f"${i}" for i in range(1, len(params) + 1))
    completed = ", completed_at" if values.get("status") == TaskStatus.DONE.value else ""
    completed_value = ", now()" if completed else ""
    try:
        row = await conn.fetchrow(
            f"""INSERT INTO tasks ({", ".join(names)}{completed})
                VALUES ({placeholders}{completed_value}) RETURNING {_COLUMNS}""",
            *params,
        )
    except asyncpg.CheckViolationError as exc:
        raise InvalidPayload(f"task violates {exc.constraint_name}") from None
    return _task(row)


async def get(conn: Connection, task_id: uuid.UUID) -> Task | None:
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM tasks WHERE id = $1", task_id)
    return _task(row) if row else None


async def get_locked(conn: Connection, task_id: uuid.UUID) -> Task | None:
    """`get`, locking the row as an UPDATE of it would (FOR NO KEY UPDATE) until the
    transaction ends: a write that judges the task again holds it while it does."""
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM tasks WHERE id = $1 FOR NO KEY UPDATE", task_id
    )
    return _task(row) if row else None


async def get_many(conn: Connection, task_ids: Collection[uuid.UUID]) -> dict[uuid.UUID, Task]:
    """The stored tasks among `task_ids` (deleted ones too), in one round trip."""
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM tasks WHERE id = ANY($1::uuid[])", list(set(task_ids))
    )
    return {row["id"]: _task(row) for row in rows}


async def get_with_role(
    conn: Connection, task_id: uuid.UUID, user_id: uuid.UUID
) -> tuple[Task, BoardRole | None] | None:
    """A task and the role `user_id` holds on its board, in one round trip: what a
    write reads, without a lock, before it changes the task."""
    row = await conn.fetchrow(
        f"""SELECT {_T_COLUMNS}, m.role AS member_role FROM tasks t
            LEFT JOIN board_members m ON m.board_id = t.board_id AND m.user_id = $2
            WHERE t.id = $1""",
        task_id,
        user_id,
    )
    if row is None:
        return None
    values = dict(row)
    role = values.pop("member_role")
    return Task(**values), BoardRole(role) if role else None


async def update_if_version(
    conn: Connection,
    task_id: uuid.UUID,
    version: int,
    changes: dict[str, Any],
    *,
    is_delayed: bool | None = None,
) -> Task | None:
    """One conditional UPDATE; None when the stored version is no longer `version`.

    `is_delayed` is not a client field; the write path sets it when an edit
    decides it (a due date moved to the future clears it).
    """
    sets: list[str] = []
    params: list[Any] = [task_id, version]
    if is_delayed is not None:
        params.append(is_delayed)
        sets.append(f"is_delayed = ${len(params)}")
    for name, value in changes.items():
        if name not in EDITABLE:
            raise ValueError(f"{name} is not editable")
        params.append(_db_value(value))
        sets.append(f"{name} = ${len(params)}")
        if name == "status":
            # completed_at is set exactly while the status is done (a CHECK holds it)
            sets.append(
                f"completed_at = CASE WHEN ${len(params)} = 'done'"
                " THEN coalesce(completed_at, now()) END"
            )
    try:
        row = await conn.fetchrow(
            f"""UPDATE tasks SET {", ".join(sets)}, version = version + 1, updated_at = now()
                WHERE id = $1 AND version = $2 AND deleted_at IS NULL RETURNING {_COLUMNS}""",
            *params,
        )
    except asyncpg.CheckViolationError as exc:
        message, field = _CHECK_MESSAGES.get(
            exc.constraint_name or "", (f"the edit violates {exc.constraint_name}", None)
        )
        raise InvalidPayload(message, details={"field": field} if field else None) from None
    return _task(row) if row else None


# What a refused edit means to the person who made it: the CHECKs of the tasks
# table whose two fields can come from different edits (one stored, one new).
_CHECK_MESSAGES: dict[str, tuple[str, str | None]] = {
    "tasks_due_after_start": ("due_date must not be before start_date", "due_date"),
}


async def occurrence_exists(conn: Connection, task_id: uuid.UUID) -> bool:
    """Whether completing `task_id` already made its next occurrence (it is made once)."""
    return bool(
        await conn.fetchval("SELECT EXISTS (SELECT 1 FROM tasks WHERE recurrence_of = $1)", task_id)
    )


async def overdue_undelayed(conn: Connection, limit: int) -> list[uuid.UUID]:
    """Live tasks past their due date, not finished, not yet marked."""
    rows = await conn.fetch(
        """SELECT id FROM tasks
           WHERE NOT is_delayed AND due_date < now() AND status NOT IN ('done', 'cancelled')
             AND deleted_at IS NULL
           ORDER BY due_date, id LIMIT $1""",
        limit,
    )
    return [r["id"] for r in rows]


async def mark_delayed(conn: Connection, task_id: uuid.UUID) -> Task | None:
    """Mark a task delayed if it still is overdue and unmarked; None otherwise.

    The conditions are checked again in the UPDATE itself, so a concurrent edit
    (done, a new due date) or a second scheduler makes this a no-op, never a
    second `task.delayed`.
    """
    row = await conn.fetchrow(
        f"""UPDATE tasks SET is_delayed = true, version = version + 1, updated_at = now()
            WHERE id = $1 AND NOT is_delayed AND due_date < now()
              AND status NOT IN ('done', 'cancelled') AND deleted_at IS NULL
            RETURNING {_COLUMNS}""",
        task_id,
    )
    return _task(row) if row else None


async def soft_delete_if_version(conn: Connection, task_id: uuid.UUID, version: int) -> Task | None:
    row = await conn.fetchrow(
        f"""UPDATE tasks SET deleted_at = now(), version = version + 1, updated_at = now()
            WHERE id = $1 AND version = $2 AND deleted_at IS NULL RETURNING {_COLUMNS}""",
        task_id,
        version,
    )
    return _task(row) if row else None


async def live_on_board(conn: Connection, board_id: uuid.UUID) -> list[Task]:
    rows = await conn.fetch(
        f"""SELECT {_COLUMNS} FROM tasks WHERE board_id = $1 AND deleted_at IS NULL
            ORDER BY status, position, id""",
        board_id,
    )
    return [_task(r) for r in rows]


def encode_cursor(task: Task) -> str:
    return cursors.encode([task.created_at.isoformat(), task.id])


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    created, task_id = cursors.decode(cursor, [cursors.aware_datetime, uuid.UUID], "after")
    return created, task_id


async def page(
    conn: Connection,
    board_id: uuid.UUID,
    *,
    status: TaskStatus | None,
    assignee_id: uuid.UUID | None,
    overdue: bool | None,
    limit: int,
    after: str | None,
) -> tuple[list[Task], str | None]:
    """Live tasks oldest first, keyset-paginated on (created_at, id)."""
    where = ["board_id = $1", "deleted_at IS NULL"]
    params: list[Any] = [board_id]
    if status is not None:
        params.append(status.value)
        where.append(f"status = ${len(params)}")
    if assignee_id is not None:
        params.append(assignee_id)
        where.append(f"assignee_id = ${len(params)}")
    if overdue is not None:
        test = "due_date < now() AND status NOT IN ('done', 'cancelled')"
        where.append(f"({test})" if overdue else f"NOT coalesce({test}, false)")
    if after:
        created, task_id = decode_cursor(after)
        params += [created, task_id]
        where.append(f"(created_at, id) > (${len(params) - 1}, ${len(params)})")
    params.append(limit + 1)
    rows = await conn.fetch(
        f"""SELECT {_COLUMNS} FROM tasks WHERE {" AND ".join(where)}
            ORDER BY created_at, id LIMIT ${len(params)}""",
        *params,
    )
    tasks = [_task(r) for r in rows[:limit]]
    cursor = encode_cursor(tasks[-1]) if len(rows) > limit and tasks else None
    return tasks, cursor
