"""Triage items (seed 004): reported problems waiting to become tasks, or not."""

from __future__ import annotations

import uuid

from protocol.models import TriageItem, TriagePriority
from storage.db import Connection

_COLUMNS = ", ".join(TriageItem.__struct_fields__)


async def create(
    conn: Connection,
    *,
    board_id: uuid.UUID,
    reporter_id: uuid.UUID,
    title: str,
    description: str,
    priority: TriagePriority,
    category: str,
) -> TriageItem:
    row = await conn.fetchrow(
        f"""INSERT INTO triage_items (board_id, reporter_id, title, description, priority,
                                      category)
            VALUES ($1, $2, $3, $4, $5, $6) RETURNING {_COLUMNS}""",
        board_id,
        reporter_id,
        title,
        description,
        priority.value,
        category,
    )
    return TriageItem(**dict(row))
