"""The Socket.IO namespace: authenticate on connect, dispatch events, always ack.

python-socketio sends no ack when a handler raises, and the client would only
time out; so every event goes through `dispatch`, which turns any outcome into
the envelope of protocol/envelope.py.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import socketio
from aiohttp import web

from handlers import accounts, presence
from handlers.deps import Deps
from protocol import correlation, envelope
from protocol.errors import HubError, Internal, InvalidPayload, PayloadTooLarge, Unauthorized
from protocol.events import RESERVED_EVENTS, room_board, room_user, server_event_for
from protocol.models import TaskEvent, to_wire
from protocol.payloads import Payload, encoded_size, parse
from storage import emits

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Caller:
    """Who sent an event, as established at connect."""

    sid: str
    user_id: uuid.UUID
    name: str
    ip: str | None = None
    user_agent: str | None = None


EventHandler = Callable[["HubNamespace", Caller, Any], Awaitable[Any]]


def refusal(error: HubError) -> socketio.exceptions.ConnectionRefusedError:
    """A refused connect whose reason the client can read in `connect_error`.

    Given a dict, ConnectionRefusedError would send only its str() as the
    message; so the reason is set whole: its fields at the top (what
    python-socketio hands the handler) and again under `data` (what the
    JavaScript client exposes as `err.data`).
    """
    refused = socketio.exceptions.ConnectionRefusedError(error.message)
    reason = error.to_dict()
    refused.error_args = {**reason, "data": reason}
    return refused


@dataclass(frozen=True)
class Route:
    payload: type[Payload]
    handler: EventHandler


class HubNamespace(socketio.AsyncNamespace):
    def __init__(self, deps: Deps, routes: dict[str, Route], namespace: str = "/") -> None:
        super().__init__(namespace)
        self.deps = deps
        self.routes = routes
        self.local_sids: set[str] = set()
        self._board_locks: weakref.WeakValueDictionary[uuid.UUID, asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )

    # -- lifecycle -----------------------------------------------------------

    async def on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        token = auth.get("token") if isinstance(auth, dict) else None
        if not isinstance(token, str) or not token:
            raise refusal(Unauthorized("connect with auth={'token': <access token>}"))
        try:
            user = await accounts.authenticate(self.deps, token)
        except HubError as exc:
            raise refusal(exc) from None
        caller = Caller(
            sid=sid,
            user_id=user.id,
            name=user.name,
            ip=environ.get("REMOTE_ADDR"),
            user_agent=(environ.get("HTTP_USER_AGENT") or "")[:500] or None,
        )
        await self.save_session(sid, {"caller": caller})
        await self.enter_room(sid, room_user(user.id))
        await self.deps.presence.add_connection(sid, user.id, self.deps.node_id)
        self.local_sids.add(sid)
        self.deps.metrics.connections(+1)
        log.info("socket connected", extra={"sid": sid, "user_id": str(user.id)})

    async def on_disconnect(self, sid: str, reason: str) -> None:
        if sid not in self.local_sids:
            return  # the connect was refused
        self.local_sids.discard(sid)
        self.deps.metrics.connections(-1)
        try:
            await presence.connection_closed(self, sid, self.deps.node_id)
        except Exception:
            log.exception("presence cleanup failed", extra={"sid": sid})
        log.info("socket disconnected", extra={"sid": sid, "reason": str(reason)})

    # -- events --------------------------------------------------------------

    async def trigger_event(self, event: str, *args: Any) -> Any:
        sid, *data = args
        # A client can send an event *named* connect or disconnect; only the
        # server's own lifecycle calls (while the sid is still connecting, or
        # already leaving) may reach on_connect / on_disconnect. This relies on
        # the server's default always_connect=False.
        manager = self.server.manager
        if event == "connect" and manager.is_pre_connected(sid, self.namespace):
            return await super().trigger_event(event, *args)
        if event == "disconnect" and not manager.is_connected(sid, self.namespace):
            return await super().trigger_event(event, *args)
        return await self.dispatch(sid, event, data)

    async def dispatch(self, sid: str, event: str, data: list[Any]) -> dict[str, Any]:
        correlation.new_correlation_id()
        started = time.perf_counter()
        self.deps.metrics.event_in(event if event in self.routes else "unknown")
        code: str | None = None
        try:
            result = envelope.ok(await self._handle(sid, event, data))
        except HubError as exc:
            code = exc.code.value
            result = envelope.error(exc)
        except Exception:
            code = "internal"
            cid = correlation.current()
            log.exception("handler failed", extra={"event": event, "sid": sid})
            result = envelope.error(Internal(f"internal error (correlation id {cid})"))
        self.deps.metrics.acked(
            event if event in self.routes else "unknown", time.perf_counter() - started, code
        )
        return result

    async def _handle(self, sid: str, event: str, data: list[Any]) -> Any:
        route = self.routes.get(event)
        if route is None or event in RESERVED_EVENTS:
            raise InvalidPayload(f"unknown event {event[:64]!r}", {"events": sorted(self.routes)})
        if len(data) != 1:
            raise InvalidPayload(f"{event} takes exactly one payload object")
        if encoded_size(data[0]) > self.deps.limits.max_payload_bytes:
            raise PayloadTooLarge(
                f"payload exceeds {self.deps.limits.max_payload_bytes} bytes",
                {"limit": self.deps.limits.max_payload_bytes},
            )
        caller = await self.caller(sid)
        payload = parse(route.payload, data[0])
        if payload.request_id is not None:
            correlation.correlation_id.set(payload.request_id)
        return await route.handler(self, caller, payload)

    async def caller(self, sid: str) -> Caller:
        session = await self.get_session(sid)
        caller = session.get("caller") if session else None
        if caller is None:
            raise Unauthorized("not connected")
        return caller  # type: ignore[no-any-return]

    # -- helpers for event handlers ------------------------------------------

    async def emit_to(self, event: str, data: Any, room: str, skip_sid: str | None = None) -> None:
        """Emit after the fact; never fails the action that caused it.

        What is emitted here was already committed: if Redis refuses the publish,
        the write still succeeded and must be acked as such (a retry would apply it
        twice). Clients that missed the event catch up by seq.
        """
        self.deps.metrics.event_out(event)
        try:
            await self.emit(event, data, room=room, skip_sid=skip_sid)
        except Exception:
            log.exception("emit failed after commit", extra={"event": event, "room": room})

    async def emit_task_event(self, event: TaskEvent) -> None:
        """Emit a committed task event to its board, once (the bridge skips it then).

        If the emit fails, the claim is given back and the bridge delivers the
        event from Kafka instead; the write itself succeeded either way.
        """
        name = server_event_for(event.type)
        data = to_wire(event)

        async def emit() -> None:
            self.deps.metrics.event_out(name)
            await self.emit(name, data, room=room_board(event.board_id))

        try:
            await emits.emit_once(self.deps.redis, self.deps.keys, event.event_id, emit)
        except Exception:
            log.exception("emit failed after commit; the bridge will deliver it")

    @asynccontextmanager
    async def board_lock(self, board_id: uuid.UUID) -> AsyncIterator[None]:
        """Hold while writing and emitting, so this node emits a board's events in seq order."""
        lock = self._board_locks.get(board_id)
        if lock is None:
            lock = asyncio.Lock()
            self._board_locks[board_id] = lock
        async with lock:
            yield


HUB_NAMESPACE = web.AppKey("hub_namespace", HubNamespace)
