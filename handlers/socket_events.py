"""The client events of DESIGN.md's protocol, one function each."""

from __future__ import annotations

import uuid
from typing import Any

from handlers import (
    chat,
    expiry,
    idempotency,
    notifications,
    presence,
    reminders,
    task_service,
    triage,
)
from handlers.socket_hub import Caller, EventHandler, HubNamespace, Route, Turn
from protocol import correlation
from protocol.bots import Scope
from protocol.catalog import CLIENT_EVENTS
from protocol.errors import Forbidden, NotFound, Unauthorized
from protocol.events import ClientEvent, room_board, room_channel
from protocol.models import TaskEvent, to_wire
from protocol.payloads import (
    BoardJoin,
    BoardLeave,
    BoardMembers,
    PresenceList,
    TaskCreate,
    TaskDelete,
    TaskMove,
    TaskUpdate,
)
from storage import boards, channels, task_events, tasks
from storage import notifications as stored_notifications
from storage.db import Connection, transaction
from storage.presence import ConnectionGone
from storage.task_events import Origin


async def board_join(ns: HubNamespace, caller: Caller, payload: BoardJoin) -> dict[str, Any]:
    """Enter the room first, then read: an event racing the join arrives twice at
    worst (the client drops seqs it has), never not at all.

    Its round trips do not grow with the people on the board: one query for the
    membership and the board's channel, one Redis script that records the presence
    and returns who is there (no database read of their names), and the snapshot's
    transaction."""
    async with ns.deps.pool.acquire() as conn:
        access = await boards.access(conn, payload.board_id, caller.user_id)
    if access is None:
        raise NotFound("board not found")
    if access.role is None:
        raise Forbidden("you are not a member of this board")
    # the board's channel comes with the board, for those who may read chat
    channel_id = None
    if caller.allows(Scope.CHAT_READ):
        if access.channel_id is None:
            raise NotFound("board not found")
        channel_id = access.channel_id
    await ns.enter_room(caller.sid, room_board(payload.board_id))
    if channel_id is not None:
        await ns.enter_room(caller.sid, room_channel(channel_id))
    try:
        # the joiner learns the presence from its ack; the others get `joined`
        joined = await ns.deps.presence.join_board(
            caller.sid, caller.user_id, payload.board_id, name=caller.name, skip_sid=caller.sid
        )
    except ConnectionGone:
        await ns.leave_room(caller.sid, room_board(payload.board_id))
        if channel_id is not None:
            await ns.leave_room(caller.sid, room_channel(channel_id))
        raise Unauthorized("the connection closed while joining") from None
    if joined.first:
        presence.announced(ns)
    reply = await _board_snapshot(ns, caller, payload)
    if reply is None:  # removed from the board in between: undo the join
        await presence.evict_from_board(ns, caller.user_id, payload.board_id)
        raise Forbidden("you are not a member of this board")
    reply["presence"] = to_wire(joined.people)
    if channel_id is not None:
        reply["channel_id"] = str(channel_id)
    return reply


async def _board_snapshot(
    ns: HubNamespace, caller: Caller, payload: BoardJoin
) -> dict[str, Any] | None:
    """The board as one consistent picture with its seq; None for a non-member."""
    async with transaction(ns.deps.pool, isolation="repeatable_read", readonly=True) as conn:
        board = await boards.get_for_member(conn, payload.board_id, caller.user_id)
        if board is None or board.role is None:
            return None
        reply: dict[str, Any] = {"board": to_wire(board), "seq": board.seq}
        since = payload.since_seq
        # a reconnecting client gets what it missed, up to the window; past it, a snapshot
        window = ns.deps.limits.catch_up_window
        if since is not None and since <= board.seq and board.seq - since <= window:
            reply["mode"] = "events"
            reply["events"] = to_wire(await task_events.since(conn, board.id, since, window))
        else:
            reply["mode"] = "snapshot"
            reply["tasks"] = to_wire(await tasks.live_on_board(conn, board.id))
        reply["unread_notifications"] = await stored_notifications.unread_count(
            conn, caller.user_id
        )
    return reply


async def board_leave(ns: HubNamespace, caller: Caller, payload: BoardLeave) -> dict[str, Any]:
    """Leave the board's room and its channel's (which `board:join` entered)."""
    await ns.leave_room(caller.sid, room_board(payload.board_id))
    async with ns.deps.pool.acquire() as conn:
        try:
            channel = await channels.board_channel(conn, payload.board_id)
        except NotFound:
            channel = None
    if channel is not None:
        await ns.leave_room(caller.sid, room_channel(channel.id))
    if await ns.deps.presence.leave_board(
        caller.sid, caller.user_id, payload.board_id, name=caller.name
    ):
        presence.announced(ns)
    return {"board_id": str(payload.board_id)}


async def presence_list(ns: HubNamespace, caller: Caller, payload: PresenceList) -> dict[str, Any]:
    async with ns.deps.pool.acquire() as conn:
        await task_service.require_role(conn, payload.board_id, caller.user_id, write=False)
    users = await presence.users_on_board(ns, payload.board_id)
    return {"board_id": str(payload.board_id), "users": to_wire(users)}


async def board_members(ns: HubNamespace, caller: Caller, payload: BoardMembers) -> dict[str, Any]:
    async with ns.deps.pool.acquire() as conn:
        await task_service.require_role(conn, payload.board_id, caller.user_id, write=False)
        found = await boards.members(conn, payload.board_id)
    return {"board_id": str(payload.board_id), "members": to_wire(found)}


async def _board_of(ns: HubNamespace, payload: Any) -> uuid.UUID:
    board_id = getattr(payload, "board_id", None)
    if board_id is not None:
        return board_id
    board_id = ns.task_boards.get(payload.task_id)
    if board_id is not None:
        return board_id
    async with ns.deps.pool.acquire() as conn:
        task = await tasks.get(conn, payload.task_id)
    if task is None:
        raise NotFound("task not found")
    ns.task_boards.remember(task.id, task.board_id)
    return task.board_id


async def _write(
    ns: HubNamespace,
    caller: Caller,
    event: ClientEvent,
    payload: Any,
    apply: Any,
) -> Any:
    """Run one task write: replay a repeated op_id, else apply, commit, then emit.

    A write that caused further events (a recurring task's next occurrence) emits
    them after its own, in seq order. The board's writers of this node take turns
    for their transactions only; the emit turn is taken inside the transaction,
    so this node emits a board's events in seq order while the next transaction
    runs, instead of waiting for the room emit (and its Redis round trips).
    """
    board_id = await _board_of(ns, payload)
    origin = Origin(correlation.current(), caller.ip, caller.user_agent)
    turn: Turn | None = None

    async def write(conn: Connection) -> tuple[Any, task_service.Written]:
        nonlocal turn
        result: TaskEvent | task_service.Written = await apply(conn, origin)
        written = (
            result if isinstance(result, task_service.Written) else task_service.Written(result)
        )
        turn = ns.emit_turn(written.event.board_id)
        return to_wire(written.event), written

    try:
        async with ns.writing(board_id):
            ack, written = await idempotency.apply_once(
                ns.deps.pool, caller.user_id, payload.op_id, event, payload, write
            )
        if written is None:
            return ack  # a resend: applied and emitted the first time
        for emitted in (written.event, *written.caused):
            ns.task_boards.remember(emitted.task_id, emitted.board_id)
            await ns.emit_task_event(emitted, turn)
    finally:
        if turn is not None:
            turn.release()
    return ack


async def task_create(ns: HubNamespace, caller: Caller, payload: TaskCreate) -> Any:
    async def apply(conn: Connection, origin: Origin) -> TaskEvent:
        return await task_service.create(conn, caller.user_id, payload, origin)

    return await _write(ns, caller, ClientEvent.TASK_CREATE, payload, apply)


async def task_update(ns: HubNamespace, caller: Caller, payload: TaskUpdate) -> Any:
    async def apply(conn: Connection, origin: Origin) -> task_service.Written:
        return await task_service.update(
            conn, caller.user_id, payload.task_id, payload.base_version, payload.changes, origin
        )

    return await _write(ns, caller, ClientEvent.TASK_UPDATE, payload, apply)


async def task_move(ns: HubNamespace, caller: Caller, payload: TaskMove) -> Any:
    async def apply(conn: Connection, origin: Origin) -> task_service.Written:
        return await task_service.update(
            conn,
            caller.user_id,
            payload.task_id,
            payload.base_version,
            payload.as_changes(),
            origin,
        )

    return await _write(ns, caller, ClientEvent.TASK_MOVE, payload, apply)


async def task_delete(ns: HubNamespace, caller: Caller, payload: TaskDelete) -> Any:
    async def apply(conn: Connection, origin: Origin) -> TaskEvent:
        return await task_service.delete(
            conn, caller.user_id, payload.task_id, payload.base_version, origin
        )

    return await _write(ns, caller, ClientEvent.TASK_DELETE, payload, apply)


_HANDLERS: dict[ClientEvent, EventHandler] = {
    ClientEvent.AUTH_REFRESH: expiry.auth_refresh,
    ClientEvent.BOARD_JOIN: board_join,
    ClientEvent.BOARD_LEAVE: board_leave,
    ClientEvent.PRESENCE_LIST: presence_list,
    ClientEvent.BOARD_MEMBERS: board_members,
    ClientEvent.TASK_CREATE: task_create,
    ClientEvent.TASK_UPDATE: task_update,
    ClientEvent.TASK_MOVE: task_move,
    ClientEvent.TASK_DELETE: task_delete,
    ClientEvent.NOTIFICATIONS_LIST: notifications.notifications_list,
    ClientEvent.NOTIFICATIONS_READ: notifications.notifications_read,
    ClientEvent.REMINDERS_CREATE: reminders.reminders_create,
    ClientEvent.REMINDERS_LIST: reminders.reminders_list,
    ClientEvent.REMINDERS_DISMISS: reminders.reminders_dismiss,
    ClientEvent.CHAT_CHANNELS: chat.chat_channels,
    ClientEvent.CHAT_CREATE: chat.chat_create,
    ClientEvent.CHAT_JOIN: chat.chat_join,
    ClientEvent.CHAT_LEAVE: chat.chat_leave,
    ClientEvent.CHAT_SEND: chat.chat_send,
    ClientEvent.CHAT_EDIT: chat.chat_edit,
    ClientEvent.CHAT_DELETE: chat.chat_delete,
    ClientEvent.CHAT_HISTORY: chat.chat_history,
    ClientEvent.CHAT_TYPING: chat.chat_typing,
    ClientEvent.CHAT_READ: chat.chat_read,
    ClientEvent.TRIAGE_CREATE: triage.triage_create,
}
assert _HANDLERS.keys() == CLIENT_EVENTS.keys(), "every cataloged event needs a handler"

ROUTES: dict[str, Route] = {
    event.value: Route(
        CLIENT_EVENTS[event].payload,
        handler,
        CLIENT_EVENTS[event].scope,
        CLIENT_EVENTS[event].in_sent_order,
    )
    for event, handler in _HANDLERS.items()
}
