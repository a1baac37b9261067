"""`triage:create`: report a problem on a board (seed 004's triage items)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from handlers.task_service import require_role
from protocol.models import to_wire
from protocol.payloads import TriageCreate
from storage import triage
from storage.db import transaction

if TYPE_CHECKING:
    from handlers.socket_hub import Caller, HubNamespace


async def triage_create(ns: HubNamespace, caller: Caller, payload: TriageCreate) -> dict[str, Any]:
    async with transaction(ns.deps.pool) as conn:
        await require_role(conn, payload.board_id, caller.user_id, write=True)
        item = await triage.create(
            conn,
            board_id=payload.board_id,
            reporter_id=caller.user_id,
            title=payload.title,
            description=payload.description,
            priority=payload.priority,
            category=payload.category,
        )
    return {"item": to_wire(item)}
