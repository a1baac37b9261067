"""Emitting into Socket.IO rooms from a worker, once per event."""

from __future__ import annotations

from protocol.events import room_board, server_event_for
from protocol.models import TaskEvent, to_wire
from storage import emits
from workers.deps import WorkerDeps


async def emit_task_event(deps: WorkerDeps, event: TaskEvent) -> None:
    """Emit a committed task event to its board unless the hub or the bridge did."""

    async def emit() -> None:
        await deps.emitter.emit(
            server_event_for(event.type), to_wire(event), room_board(event.board_id)
        )

    await emits.emit_once(deps.redis, deps.keys, event.event_id, emit)
