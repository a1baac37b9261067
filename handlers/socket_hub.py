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
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import socketio
from aiohttp import web

from handlers import accounts, bot_auth, presence, rate_limits
from handlers.client_address import IPNetwork, client_address
from handlers.deps import Deps
from handlers.expiry import Expiries
from handlers.rest import unexpected
from handlers.task_boards import TaskBoards
from protocol import correlation, envelope
from protocol.bots import Scope, is_api_token
from protocol.catalog import WHOLE_CONNECTION, Limit
from protocol.errors import (
    Forbidden,
    HubError,
    InvalidPayload,
    PayloadTooLarge,
    Unauthorized,
)
from protocol.events import (
    RESERVED_EVENTS,
    ServerEvent,
    board_of_room,
    room_board,
    room_user,
    room_user_chat,
    server_event_for,
)
from protocol.models import TaskEvent, to_wire
from protocol.payloads import Payload, encoded_size, parse
from protocol.serializers import Serializer
from storage import emits, outages
from storage.users import LiveLogin

log = logging.getLogger(__name__)


def _client_ip(environ: dict[str, Any], trusted: Sequence[IPNetwork]) -> str | None:
    """The client's address, as `rest.client_ip` has it for a request: the Engine.IO
    environ outlives its handshake request, and holds the TCP peer as REMOTE_ADDR
    and the X-Forwarded-For headers joined in one."""
    forwarded = environ.get("HTTP_X_FORWARDED_FOR")
    return client_address(environ.get("REMOTE_ADDR"), (forwarded,) if forwarded else (), trusted)


def from_a_browser(environ: dict[str, Any]) -> bool:
    """Whether the handshake shows a browser's marks: an Origin, which browsers send
    on every websocket handshake and cross-site request, or Sec-Fetch-Site, which
    current browsers send on every request to an https or localhost URL (a
    same-origin polling GET carries no Origin; over plain http elsewhere it carries
    neither, so such a page connects over websocket, as the hub's own does).

    Any other client can send both, so this is a policy for the well-behaved, not a
    barrier: a script that follows it connects with a bot token, whose scopes,
    expiry and audit trail say what it may do and who did it (SECURITY.md).
    """
    return bool(environ.get("HTTP_ORIGIN") or environ.get("HTTP_SEC_FETCH_SITE"))


def bot_token_required() -> Forbidden:
    return Forbidden(
        "a client that is not a browser connects with a bot token",
        details={"reason": "bot_token_required"},
    )


@dataclass(frozen=True, slots=True)
class Caller:
    """Who sent an event, as established at connect. One per connection, kept in its
    session for as long as it lives: slots, not a __dict__ (idle memory, issue 5)."""

    sid: str
    user_id: uuid.UUID
    name: str
    ip: str | None = None
    user_agent: str | None = None
    # A bot's API token: its scopes and id. None for a person (JWT), who has every scope.
    scopes: frozenset[str] | None = None
    token_id: uuid.UUID | None = None

    def allows(self, scope: str | None) -> bool:
        return scope is None or self.scopes is None or scope in self.scopes


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
    scope: str | None = None  # what a bot token needs to send the event
    # the payload field whose room keeps the connection's order (HubNamespace.in_sent_order)
    in_sent_order: str | None = None


class Turn:
    """One write's place in its board's (or channel's) emit order on this node.

    Taken inside the writing transaction, after its seq and before its commit:
    a later write of the same board gets its seq only once this one committed
    (the seq row lock), so it takes its turn after this one, and turns follow seq
    order. Only the emit waits for the turn; the transaction, the Redis claim and
    the other writers' transactions do not.
    """

    __slots__ = ("_before", "_done", "_order")

    def __init__(self, order: EmitOrder, before: asyncio.Future[None] | None) -> None:
        self._order = order  # keeps the order alive (it is weakly held) while a turn is out
        self._before = before
        self._done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def wait(self) -> None:
        """Until every earlier turn has emitted (or given up)."""
        if self._before is not None and not self._before.done():
            # shielded: a cancelled waiter must not cancel the turn before it
            await asyncio.shield(self._before)

    def release(self) -> None:
        """Let the next turn go: at once if the ones before it are done, else after them
        (this one ended early: rolled back, failed or cancelled)."""
        if self._done.done():
            return
        before = self._before
        if before is None or before.done():
            self._done.set_result(None)
        else:
            before.add_done_callback(self._finish)

    def _finish(self, _: asyncio.Future[None]) -> None:
        if not self._done.done():
            self._done.set_result(None)


class EmitOrder:
    """One board's (or channel's) writes on this node: the lock that lets in one write
    transaction at a time (see `HubNamespace.writing`), and the chain of emit turns."""

    __slots__ = ("__weakref__", "_tail", "lock")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self._tail: asyncio.Future[None] | None = None

    def turn(self) -> Turn:
        taken = Turn(self, self._tail)
        self._tail = taken._done
        return taken


# One emit order per board or channel; the namespaces of one node share them (see emit_turn).
OrderLocks = weakref.WeakValueDictionary[uuid.UUID, EmitOrder]


class HubNamespace(socketio.AsyncNamespace):
    def __init__(
        self,
        deps: Deps,
        routes: dict[str, Route],
        namespace: str = "/",
        order_locks: OrderLocks | None = None,
        task_boards: TaskBoards | None = None,
    ) -> None:
        super().__init__(namespace)
        self.deps = deps
        self.routes = routes
        self.local_sids: set[str] = set()
        # what each local connection was let in on, checked again by the sweep
        # (handlers/revocation.py)
        self.logins: dict[str, LiveLogin] = {}
        self.expiries = Expiries()  # when each local connection's token runs out
        self._order_locks: OrderLocks = (
            order_locks if order_locks is not None else weakref.WeakValueDictionary()
        )
        # for task writes' turns (writing); one per node, like the order locks
        self.task_boards = task_boards if task_boards is not None else TaskBoards()
        # the tasks handling events now: a shutdown lets them end before Redis and
        # PostgreSQL close under them (finish_handling)
        self._handling: set[asyncio.Task[Any]] = set()
        # a lock per connection and room while one of its in-order events runs
        self._sent_order: weakref.WeakValueDictionary[tuple[str, str | None], asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )

    # -- lifecycle -----------------------------------------------------------

    async def on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        """Let a connection in, or refuse it with a reason the client can read.

        A failure is a refusal too: raised into python-socketio, it would be logged
        as a receive error and the client left waiting for its connect timeout. A
        dependency that is down refuses with `unavailable`, and the client's
        reconnection tries again.
        """
        correlation.new_correlation_id()
        try:
            await self._admit(sid, environ, auth)
        except socketio.exceptions.ConnectionRefusedError:
            raise
        except Exception as exc:
            raise refusal(unexpected(exc, log, "connect", sid=sid)) from None

    async def _admit(self, sid: str, environ: dict[str, Any], auth: Any) -> None:
        token = auth.get("token") if isinstance(auth, dict) else None
        if not isinstance(token, str) or not token:
            raise refusal(Unauthorized("connect with auth={'token': <access token>}"))
        scopes: frozenset[str] | None = None
        token_id: uuid.UUID | None = None
        login_id: uuid.UUID | None = None
        ip = _client_ip(environ, self.deps.trusted_proxies)
        try:
            if is_api_token(token):
                # a bot's user is known once its token is looked up: the address pays
                # first (guessing tokens costs too), the user after
                await rate_limits.charge(self.deps, Limit.CONNECT, None, ip)
                bot = await bot_auth.authenticate(self.deps, token)
                user, scopes, token_id = bot.user, bot.scopes, bot.token_id
                expires_at = bot.expires_at.timestamp()
                await rate_limits.charge(self.deps, Limit.CONNECT, user.id, None)
            else:
                # An access token names its user once its signature is checked, with no
                # round trip: the address and then the user pay, in one script. A token
                # that fails the check, or comes from a client that is not a browser,
                # costs the address alone.
                try:
                    if not (self.deps.limits.user_tokens_without_origin or from_a_browser(environ)):
                        raise bot_token_required()
                    claims = self.deps.tokens.verify(token)
                except HubError:
                    await rate_limits.charge(self.deps, Limit.CONNECT, None, ip)
                    raise
                await rate_limits.charge(self.deps, Limit.CONNECT, claims.user_id, ip, in_turn=True)
                async with self.deps.pool.acquire() as conn:
                    user = await accounts.active_user(conn, claims)
                expires_at = float(claims.expires_at)
                login_id = claims.session_id
        except HubError as exc:
            raise refusal(exc) from None
        caller = Caller(
            sid=sid,
            user_id=user.id,
            name=user.name,
            # engineio's aiohttp driver puts 127.0.0.1 in REMOTE_ADDR; the request knows
            ip=ip,
            user_agent=(environ.get("HTTP_USER_AGENT") or "")[:500] or None,
            scopes=scopes,
            token_id=token_id,
        )
        await self.save_session(sid, {"caller": caller})
        await self.enter_room(sid, room_user(user.id))
        if caller.allows(Scope.CHAT_READ):
            await self.enter_room(sid, room_user_chat(user.id))
        # counted once registered, on every node: two connects racing for the last
        # place may both be refused, never both let in
        connections = await self.deps.presence.add_connection(
            sid, user.id, self.deps.node_id, token_id
        )
        try:
            too_many = rate_limits.over_connection_cap(self.deps, connections)
            if too_many is not None:
                raise refusal(too_many)
            if token_id is not None and not await bot_auth.still_live(self.deps, token_id):
                # revoked while we connected: the revocation's sweep may have missed us
                raise refusal(bot_auth.token_revoked())
        except Exception:
            # refused, or a dependency failed: nothing of this connection stays registered
            await self._unregister_refused(sid, user.name)
            raise
        self.local_sids.add(sid)
        self.logins[sid] = LiveLogin(sid, user.id, login_id, token_id)
        # already past (it expired while we connected)? the next sweep closes it
        self.expiries.track(sid, expires_at)
        self.deps.metrics.connections(+1)
        log.info(
            "socket connected",
            extra={
                "sid": sid,
                "user_id": str(user.id),
                "token_id": str(token_id) if token_id else None,
            },
        )

    async def _unregister_refused(self, sid: str, name: str) -> None:
        """Undo `add_connection` for a connect that is refused after it.

        If Redis is what failed, this may fail too: the refusal still goes out, and
        the record is left as that of any connection that ended while Redis was
        down (its hash expires, no heartbeat refreshes it).
        """
        try:
            await self.deps.presence.remove_connection(sid, self.deps.node_id, name=name)
        except Exception as exc:
            if not outages.is_outage(exc):
                raise
            log.warning(
                "could not unregister a refused connection",
                extra={"sid": sid, "error": outages.describe(exc)},
            )

    async def on_disconnect(self, sid: str, reason: str) -> None:
        if sid not in self.local_sids:
            return  # the connect was refused
        self.local_sids.discard(sid)
        self.logins.pop(sid, None)
        self.expiries.forget(sid)
        self.deps.metrics.connections(-1)
        try:
            await presence.connection_closed(self, sid, self.deps.node_id)
        except Exception:
            log.exception("presence cleanup failed", extra={"sid": sid})
        log.info("socket disconnected", extra={"sid": sid, "reason": str(reason)})

    def joined_boards(self) -> dict[uuid.UUID, list[str]]:
        """The boards this namespace's connections on this node have joined, each with
        those connections: one pass over the board rooms, already grouped by board
        (what a sweep over every board needs). For one connection's boards,
        `presence.joined_boards` asks the manager's per-connection room index."""
        joined: dict[uuid.UUID, list[str]] = {}
        manager = self.server.manager
        for room in list(manager.rooms.get(self.namespace, {})):
            board_id = board_of_room(room)
            if board_id is not None:
                sids = [sid for sid, _ in manager.get_participants(self.namespace, room)]
                joined[board_id] = [sid for sid in sids if sid in self.local_sids]
        return joined

    async def close(self, sid: str, error: HubError) -> None:
        """Close a connection on purpose, on whichever node holds it, saying why.

        Socket.IO's DISCONNECT packet carries no reason, so `connection:closing`
        (the body of a refused connect) goes just before it. Both take the same
        road, straight to a local client or in order through the manager's Redis
        channel, so the client hears why before it is disconnected.
        """
        self.deps.metrics.event_out(ServerEvent.CONNECTION_CLOSING)
        await self.emit(ServerEvent.CONNECTION_CLOSING, error.to_dict(), to=sid)
        await self.disconnect(sid)

    async def close_local(self, error: HubError) -> int:
        """Close every connection this namespace holds on this node, saying why (the
        node is stopping); returns how many.

        As `close`, but the farewell goes straight to each client and not also through
        Redis to every other node: they are all here. All at once: a node that stops
        must not take a round trip per client while its clients wait to move on.
        """
        sids = sorted(self.local_sids)
        body = error.to_dict()

        async def close_one(sid: str) -> None:
            self.deps.metrics.event_out(ServerEvent.CONNECTION_CLOSING)
            await self.emit(ServerEvent.CONNECTION_CLOSING, body, to=sid, ignore_queue=True)
            await self.disconnect(sid)

        results = await asyncio.gather(*(close_one(sid) for sid in sids), return_exceptions=True)
        for sid, result in zip(sids, results, strict=True):
            if isinstance(result, Exception):
                log.error("closing a connection failed", exc_info=result, extra={"sid": sid})
        return len(sids)

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
        task = asyncio.current_task()
        if task is not None:
            self._handling.add(task)
        try:
            result = envelope.ok(await self._handle(sid, event, data))
        except HubError as exc:
            code = exc.code.value
            result = envelope.error(exc)
        except Exception as exc:
            error = unexpected(exc, log, f"event {event[:64]}", event=event[:64], sid=sid)
            code = error.code.value
            result = envelope.error(error)
        finally:
            if task is not None:
                self._handling.discard(task)
        self.deps.metrics.acked(
            event if event in self.routes else "unknown", time.perf_counter() - started, code
        )
        return result

    async def finish_handling(self, timeout: float) -> int:
        """On shutdown, once the connections are gone: wait up to `timeout` seconds for
        the events still being handled (one that began before its connection closed,
        or waited for its turn), then cancel the rest and give them as long again to
        unwind; returns how many were cut.

        Otherwise such a handler could touch Redis after the node closed its client,
        and redis-py would open a new connection that nobody closes.
        """
        pending = set(self._handling)
        if not pending:
            return 0
        _done, late = await asyncio.wait(pending, timeout=timeout)
        for task in late:
            task.cancel()
        if late:
            # as long again for them to unwind: a handler that swallowed its
            # cancellation must not hold the node's stop for good
            _done, stuck = await asyncio.wait(late, timeout=timeout)
            log.warning(
                "events still handled at shutdown were cut",
                extra={"events": len(late), "still_running": len(stuck)},
            )
        return len(late)

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
        if route.in_sent_order is None:
            return await self._call(route, sid, event, data[0])
        # Taken before the first await, while the events' tasks still run in the order
        # python-socketio started them: the order the connection sent them in. No
        # await may come before it here or in dispatch. The room is the raw field's
        # value (parse comes later): an invalid one only orders events as invalid.
        # WHOLE_CONNECTION is no room's id.
        field = route.in_sent_order
        if field == WHOLE_CONNECTION:
            room: object = WHOLE_CONNECTION
        else:
            room = data[0].get(field) if isinstance(data[0], dict) else None
        async with self.in_sent_order(sid, room if isinstance(room, str) else None):
            return await self._call(route, sid, event, data[0])

    async def _call(self, route: Route, sid: str, event: str, data: Any) -> Any:
        caller = await self.caller(sid)
        await rate_limits.charge_event(self.deps, event, caller.user_id, caller.ip)
        if not caller.allows(route.scope):
            raise Forbidden(
                f"this token lacks the {route.scope} scope", {"scope": str(route.scope)}
            )
        payload = parse(route.payload, data)
        if payload.request_id is not None:
            correlation.correlation_id.set(payload.request_id)
        return await route.handler(self, caller, payload)

    async def caller(self, sid: str) -> Caller:
        try:
            session = await self.get_session(sid)
        except KeyError:  # closed while the event waited for its turn (in_sent_order)
            raise Unauthorized("not connected") from None
        caller = session.get("caller") if session else None
        if caller is None:
            raise Unauthorized("not connected")
        return caller  # type: ignore[no-any-return]

    # -- helpers for event handlers ------------------------------------------

    async def emit_to(
        self, event: str, data: Any, room: str | list[str], skip_sid: str | None = None
    ) -> None:
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

    async def emit_task_event(self, event: TaskEvent, turn: Turn | None = None) -> None:
        """Emit a committed task event to its board, once (the bridge skips it then)."""
        await self.emit_claimed(
            event.event_id,
            server_event_for(event.type),
            to_wire(event),
            room_board(event.board_id),
            turn,
        )

    async def emit_claimed(
        self,
        event_id: uuid.UUID,
        event: str,
        data: Any,
        room: str | list[str],
        turn: Turn | None = None,
    ) -> None:
        """Emit a committed event once across the hub and the bridge.

        If the emit fails, the claim is given back and the bridge delivers the
        event from Kafka instead; the write itself succeeded either way. With
        Redis down it goes out unclaimed, to this node's clients (storage/emits.py).
        With a `turn`, only the emit waits for it: the claim is made while earlier
        events of the room are still going out.
        """

        async def emit() -> None:
            if turn is not None:
                await turn.wait()
            self.deps.metrics.event_out(event)
            await self.emit(event, data, room=room)

        try:
            await emits.emit_once(
                self.deps.redis, self.deps.keys, event_id, emit, unclaimed_if_down=True
            )
        except Exception:
            log.exception("emit failed after commit; the bridge will deliver it")

    def _emit_order(self, key: uuid.UUID) -> EmitOrder:
        order = self._order_locks.get(key)
        if order is None:
            order = EmitOrder()
            self._order_locks[key] = order
        return order

    def emit_turn(self, key: uuid.UUID) -> Turn:
        """The next turn to emit for a board (or channel) on this node; take it inside
        the writing transaction, after the seq, and release it after emitting."""
        return self._emit_order(key).turn()

    @asynccontextmanager
    async def in_sent_order(self, sid: str, room: str | None) -> AsyncIterator[None]:
        """Hold while handling an event of `sid` about `room` (a board's or a channel's
        id, or WHOLE_CONNECTION) whose effect depends on the order the client sent it
        in.

        python-socketio runs each event in a task of its own, so two events a client
        sent without awaiting the first's ack may otherwise be handled in either
        order: a `board:leave` right after its `board:join` would find nothing to
        leave and the join then keep the connection in the room; a `chat:typing`
        false handled before its true would leave the others seeing "typing" and
        the throttle swallowing the next true; an `auth:refresh` handled after a
        later one would leave the connection with the earlier token. Events under
        this lock are handled one at a time, in the order they arrived, per room: a
        reconnect's joins of several boards and channels still run at once, and
        typing does not wait for a big board's snapshot. The entry goes when no
        event holds or awaits it.
        """
        key = (sid, room)
        lock = self._sent_order.get(key)
        if lock is None:
            lock = asyncio.Lock()
            self._sent_order[key] = lock
        async with lock:
            yield

    @asynccontextmanager
    async def writing(self, key: uuid.UUID) -> AsyncIterator[None]:
        """Hold across one write transaction of a board (not across its emit).

        PostgreSQL serialises a board's writers only from their seq, taken last
        (task_events.append), to their commit. One transaction per board and node
        in flight parks no pool connections on that row lock; letting four in,
        now that the seq comes last, measured no faster (the server's core was
        the limit, not the lock), so one it stays.
        """
        order = self._emit_order(key)  # held: the weak registry keeps it while locked
        async with order.lock:
            yield


@dataclass(frozen=True)
class HubNamespaces:
    """This node's namespaces, one per Socket.IO server (JSON and msgpack).

    The servers share one Redis channel, so an emit, a room change or a
    disconnect made through any one namespace reaches the clients of every
    server on every node (python-socketio publishes what is not local to it).
    What stays per server is which sids it holds: their sessions and rooms.
    """

    by_serializer: dict[Serializer, HubNamespace]

    @property
    def primary(self) -> HubNamespace:
        return self.by_serializer[Serializer.JSON]

    def __iter__(self) -> Iterator[HubNamespace]:
        return iter(self.by_serializer.values())

    def local_sids(self) -> set[str]:
        """Every connection this node holds, on any server."""
        return set().union(*(ns.local_sids for ns in self))

    async def close_local(self, error: HubError) -> int:
        """Close every connection this node holds, on any server, saying why; returns
        how many."""
        closed = await asyncio.gather(*(ns.close_local(error) for ns in self))
        return sum(closed)

    async def finish_handling(self, timeout: float) -> int:
        """`HubNamespace.finish_handling` on every server at once."""
        cut = await asyncio.gather(*(ns.finish_handling(timeout) for ns in self))
        return sum(cut)


# The node's JSON namespace: enough for emits, room changes and disconnects of any
# sid (they reach the msgpack server too); per-connection work uses HUB_NAMESPACES.
HUB_NAMESPACE = web.AppKey("hub_namespace", HubNamespace)
HUB_NAMESPACES = web.AppKey("hub_namespaces", HubNamespaces)
