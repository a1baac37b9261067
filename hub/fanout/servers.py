"""The Engine.IO and Socket.IO servers that use the fast path."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import urllib.parse
from collections.abc import Awaitable, Callable
from typing import Any

import engineio
import socketio
from aiohttp import web
from engineio import packet as eio_packet
from socketio import packet
from socketio.async_pubsub_manager import AsyncPubSubManager

from hub.fanout.connection import WebSocketConnection
from hub.fanout.frames import message_frame
from hub.fanout.redis_channel import SocketIOChannel
from hub.fanout.socket import DirectSocket
from hub.fanout.upgrade import handshake_response, release
from hub.fanout.websocket import DirectWebSocket, shrink_environ, translate_request
from protocol.errors import Conflict, HubError, NotFound
from protocol.packets import MalformedPacket
from storage import outages

log = logging.getLogger(__name__)


class HubEngineServer(engineio.AsyncServer):
    """engineio's server whose sockets are `DirectSocket`s on the `DirectWebSocket` driver."""

    def __init__(self, *, outbound_buffer_bytes: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.outbound_buffer_bytes = outbound_buffer_bytes
        # closes of websocket connections still running (their disconnects)
        self.closing: set[asyncio.Future[None]] = set()
        # websocket connections taken from aiohttp and not yet lost: aiohttp's own
        # shutdown no longer knows them (see `wait_connections_ended`)
        self.connections: set[WebSocketConnection] = set()
        self._none_left: asyncio.Event | None = None
        # set once the node said goodbye to its websockets: none is taken over after
        self.ending = False
        # engineio's driver table is module-wide; this server gets its own copy
        self._async = {  # type: ignore[has-type]
            **self._async,  # type: ignore[has-type]
            "websocket": DirectWebSocket,
            "translate_request": translate_request,
        }

    async def handle_request(self, request: web.Request) -> web.StreamResponse:
        """engineio's request handler, except for a websocket connect (the usual one),
        which skips engineio's five nested coroutines (`handle_request`,
        `_handle_connect`, `handle_get_request`, `_upgrade_websocket`, the driver's
        call): the connection lives inside its request handler, so each of them, with
        its locals (the parsed query, the OPEN packet), would stay in memory for as
        long as it is connected. What engineio's `_handle_connect` does for the
        websocket transport is done here, inline for the same reason. Once the
        handshake is answered, the connection itself leaves aiohttp for a
        `WebSocketConnection` (`hub/fanout/upgrade.py`) and this handler returns:
        nothing of the request stays. Anything else, malformed or refused requests
        included, takes engineio's path."""
        if not self._is_websocket_connect(request):
            return await super().handle_request(request)  # type: ignore[no-any-return]
        environ: dict[str, Any] = self._async["translate_request"](request)
        origin = environ.get("HTTP_ORIGIN")
        if origin and self.cors_allowed_origins != []:
            allowed = self._cors_allowed_origins(environ)
            if allowed is not None and origin not in allowed:
                return await super().handle_request(request)  # type: ignore[no-any-return]

        handshake = handshake_response(request)
        if handshake is None:
            # aiohttp's handshake refuses it, with its usual answer
            return await super().handle_request(request)  # type: ignore[no-any-return]

        if self.start_service_task:  # type: ignore[has-type]  # engineio is untyped
            self.start_service_task = False
            self.service_task_handle = self.start_background_task(self._service_task)
        sid = self.generate_id()
        socket = DirectSocket(self, sid)
        self.sockets[sid] = socket
        await socket.send(
            eio_packet.Packet(
                eio_packet.OPEN,
                {
                    "sid": sid,
                    "upgrades": self._upgrades(sid, "websocket"),
                    "pingTimeout": int(self.ping_timeout * 1000),
                    "pingInterval": int(self.ping_interval + self.ping_interval_grace_period)
                    * 1000,
                    "maxPayload": self.max_http_buffer_size,
                },
            )
        )
        accepted = await self._trigger_event("connect", sid, environ, run_async=False)
        if accepted is not None and accepted is not True:
            del self.sockets[sid]
            self.logger.warning("Application rejected connection")
            return await self._make_response(  # type: ignore[no-any-return]
                self._unauthorized(accepted or None), environ
            )
        if self.ending:
            # authenticated while the node was saying goodbye: the client goes elsewhere
            await self._drop(socket)
            raise web.HTTPServiceUnavailable(reason="shutting down")
        socket.schedule_ping()
        connection = WebSocketConnection(socket, self.max_http_buffer_size)
        try:
            transport, tail = release(request, connection)
        except ConnectionResetError:
            # gone during the handshake; whatever is answered goes nowhere
            await self._drop(socket)
            return web.Response(status=499, reason="Client Closed Request")
        transport.write(handshake)
        # engineio has read what it needs from the handshake; the request itself is
        # let go, with aiohttp's connection (`release`)
        shrink_environ(environ)
        del environ["aiohttp.request"]
        socket.run_on(connection, transport, tail)
        # aiohttp finds its connection gone and drops this response
        return web.Response(status=101)

    async def _drop(self, socket: DirectSocket) -> None:
        """Close a socket that never got its websocket."""
        await socket.close(wait=False, abort=True, reason=self.reason.TRANSPORT_CLOSE)
        if self.sockets.get(socket.sid) is socket:
            del self.sockets[socket.sid]

    async def wait_connections_ended(self, timeout: float) -> None:
        """Wait up to `timeout` seconds for the websocket connections taken from aiohttp
        to end (their clients read what was written last, the close frame among it),
        then cut those still open. aiohttp's shutdown waited for them as its requests;
        it no longer knows them."""
        if self.connections:
            self._none_left = asyncio.Event()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._none_left.wait()
        for connection in list(self.connections):
            connection.abort()
        await asyncio.sleep(0)  # an aborted transport reports its loss on the next pass

    def connection_ended(self, connection: WebSocketConnection) -> None:
        self.connections.discard(connection)
        if not self.connections and self._none_left is not None:
            self._none_left.set()

    def end_websockets(self) -> int:
        """Close every websocket connection from this side, after what was written to
        it: a close frame, then the connection. Returns how many.

        For a node that stops, once it has said goodbye: aiohttp reads nothing more
        from any connection once it is shutting down, so a client's own close
        handshake would go unanswered and the client wait for its timeout
        (python-engineio's: 5 s) before it reconnects. No Engine.IO CLOSE packet
        first: python-socketio's client takes one for "do not come back", and would
        see it before the `connection:closing` that says otherwise.
        """
        self.ending = True
        ended = 0
        for socket in list(self.sockets.values()):
            frames = socket.frames if isinstance(socket, DirectSocket) else None
            if frames is not None:
                frames.end()
                ended += 1
        return ended

    def _is_websocket_connect(self, request: web.Request) -> bool:
        """A valid Engine.IO 4 websocket connect, as engineio would judge it. Parsed
        here, not kept: `request.query` would be cached on the request."""
        if request.method != "GET" or "websocket" not in self.transports:
            return False
        query = urllib.parse.parse_qs(request.query_string)
        if "sid" in query or "j" in query or query.get("EIO") != ["4"]:
            return False
        if query.get("transport", ["polling"])[0] != "websocket":
            return False
        if request.headers.get("Upgrade", "").lower() != "websocket":
            return False
        connection = request.headers.get("Connection", "").lower().split(",")
        return "upgrade" in (token.strip() for token in connection)

    async def _trigger_event(self, event: str, *args: Any, **kwargs: Any) -> Any:
        if event == "connect":
            # engineio builds a plain AsyncSocket; its connect event is the first
            # moment it is ours, before any transport handler has run
            socket = self.sockets.get(args[0])
            if socket is not None and type(socket) is engineio.async_socket.AsyncSocket:
                socket.__class__ = DirectSocket
        return await super()._trigger_event(event, *args, **kwargs)


class HubSocketServer(socketio.AsyncServer):
    """python-socketio's server on `HubEngineServer`; extra keyword arguments
    (`outbound_buffer_bytes`) reach the Engine.IO server.

    An Engine.IO connection that has not connected to a Socket.IO namespace
    `connect_timeout` seconds after it opened is closed, as Node's socket.io does:
    otherwise an open handshake, never followed by a CONNECT, holds a socket (and
    a slot of the file descriptor limit) until the ping timeout, or forever for a
    client that answers pings.
    """

    def __init__(self, *args: Any, connect_timeout: float = 45.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.connect_timeout = connect_timeout
        self._closing_unconnected: set[asyncio.Future[None]] = set()

    def _engineio_server_class(self) -> type[engineio.AsyncServer]:
        return HubEngineServer

    async def _handle_eio_connect(self, eio_sid: str, environ: dict[str, Any]) -> Any:
        # one timer per handshake, gone once it fired: no task per connection
        asyncio.get_running_loop().call_later(self.connect_timeout, self._connect_deadline, eio_sid)
        return await super()._handle_eio_connect(eio_sid, environ)

    def _connect_deadline(self, eio_sid: str) -> None:
        if eio_sid not in self.eio.sockets:
            return  # gone already
        manager = self.manager
        if any(manager.sid_from_eio_sid(eio_sid, ns) for ns in list(manager.get_namespaces())):
            return
        self.logger.info(
            "%s: no Socket.IO connect within %ss, closing", eio_sid, self.connect_timeout
        )
        closing = asyncio.ensure_future(self.eio.disconnect(eio_sid))
        self._closing_unconnected.add(closing)
        closing.add_done_callback(self._closing_unconnected.discard)

    async def _handle_eio_message(self, eio_sid: str, data: str | bytes) -> None:
        """python-socketio's dispatch of a client's packet, with a packet that breaks the
        protocol closing the connection, as Node's socket.io does.

        python-socketio raises out of here for a packet it cannot take (engineio logs
        the traceback and the connection carries on, after a broken binary packet
        taking every later packet for an attachment), and drops events and acks for a
        namespace the client never connected to, whose acks then never come. Here
        such a packet, or one the strict packet classes refuse (protocol/packets.py),
        ends the connection, and nothing of it reaches a handler.
        """
        try:
            pkt = self._client_packet(eio_sid, data)
        except MalformedPacket as exc:
            self._binary_packet.pop(eio_sid, None)
            log.info(
                "closing a connection that broke the Socket.IO protocol",
                extra={"eio_sid": eio_sid, "reason": str(exc)},
            )
            await self.eio.disconnect(eio_sid)
            return
        if pkt is None:
            return
        kind = pkt.packet_type
        if kind == packet.CONNECT and (refusal := self._connect_refusal(eio_sid, pkt.namespace)):
            await self._send_packet(
                eio_sid,
                self.packet_class(
                    packet.CONNECT_ERROR, data=refusal.to_dict(), namespace=pkt.namespace
                ),
            )
        elif kind == packet.CONNECT:
            await self._handle_connect(eio_sid, pkt.namespace, pkt.data)
        elif kind == packet.DISCONNECT:
            await self._handle_disconnect(eio_sid, pkt.namespace, self.reason.CLIENT_DISCONNECT)
        elif kind in (packet.EVENT, packet.BINARY_EVENT):
            await self._handle_event(eio_sid, pkt.namespace, pkt.id, pkt.data)
        else:
            await self._handle_ack(eio_sid, pkt.namespace, pkt.id, pkt.data)

    def _client_packet(self, eio_sid: str, data: str | bytes) -> packet.Packet | None:
        """The whole packet `data` completes; None while a binary packet waits for
        its attachments."""
        pending = self._binary_packet.get(eio_sid)
        if pending is not None:
            if not pending.add_attachment(data):
                return None
            del self._binary_packet[eio_sid]
            return pending  # type: ignore[no-any-return]
        pkt = self.packet_class(encoded_packet=data)
        namespace = pkt.namespace or "/"
        if pkt.packet_type not in (packet.CONNECT, packet.DISCONNECT) and (
            self.manager.sid_from_eio_sid(eio_sid, namespace) is None
        ):
            raise MalformedPacket(f"a packet for {namespace[:64]!r}, not connected to")
        if pkt.attachment_count:
            self._binary_packet[eio_sid] = pkt
            return None
        return pkt

    def _connect_refusal(self, eio_sid: str, namespace: str | None) -> HubError | None:
        """Why a CONNECT is refused before any handler sees it: a namespace the hub does
        not serve, or one this connection is already in. python-socketio answers both
        with a bare "Unable to connect"; these have the shape (`{code, message,
        details}`) of every other refusal."""
        name = namespace or "/"
        served = (
            name in self.handlers
            or name in self.namespace_handlers
            or self.namespaces == "*"
            or name in self.namespaces
        )  # python-socketio's own test, in its _handle_connect
        if not served:
            return NotFound(f"no namespace {name[:64]!r} here; connect to '/'")
        if self.manager.sid_from_eio_sid(eio_sid, name) is not None:
            return Conflict(f"already connected to {name!r} on this connection")
        return None

    def end_websockets(self) -> int:
        """See `HubEngineServer.end_websockets`."""
        engine: HubEngineServer = self.eio
        return engine.end_websockets()

    async def shutdown(self, timeout: float = 5.0) -> None:
        """Close every connection, and return once their disconnects have run; a
        client that has not read its goodbye within `timeout` seconds is cut."""
        await super().shutdown()
        engine: HubEngineServer = self.eio
        await engine.wait_connections_ended(timeout)
        closing = list(engine.closing)
        if closing:
            await asyncio.gather(*closing, return_exceptions=True)


class BroadcastManager(socketio.AsyncManager):
    """The local delivery of an emit: one encode, frames built once, one write per
    websocket recipient.

    Placed under the pub/sub manager (see `HubRedisManager`), so it serves the
    node's own emits and those arriving from other nodes alike. An emit that wants
    client acks needs a packet per recipient and keeps the stock path.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # (namespace, sid) -> the rooms it is in (its own, None's, and the named ones):
        # python-socketio finds a client's rooms by looking through every room of the
        # namespace, and each connection has at least two (its sid's and its user's),
        # so a storm of disconnects cost time quadratic in the connections
        self._rooms_of: dict[tuple[str, str], set[Any]] = {}

    def basic_enter_room(self, sid: str, namespace: str, room: Any, eio_sid: Any = None) -> None:
        super().basic_enter_room(sid, namespace, room, eio_sid=eio_sid)
        self._rooms_of.setdefault((namespace, sid), set()).add(room)

    def basic_leave_room(self, sid: str, namespace: str, room: Any) -> None:
        super().basic_leave_room(sid, namespace, room)
        rooms = self._rooms_of.get((namespace, sid))
        if rooms is not None:
            rooms.discard(room)
            if not rooms:
                del self._rooms_of[(namespace, sid)]

    def basic_disconnect(self, sid: str, namespace: str, **kwargs: Any) -> None:
        """python-socketio's, with the client's rooms taken from the index."""
        if namespace not in self.rooms:
            return
        for room in list(self._rooms_of.get((namespace, sid), ())):
            self.basic_leave_room(sid, namespace, room)
        self.callbacks.pop(sid, None)
        for pending in (self.pending_connect, self.pending_disconnect):
            waiting = pending.get(namespace)
            if waiting is not None and sid in waiting:
                waiting.remove(sid)
                if not waiting:
                    del pending[namespace]

    def get_rooms(self, sid: str, namespace: str) -> list[Any]:
        return [room for room in self._rooms_of.get((namespace, sid), ()) if room is not None]

    async def emit(
        self,
        event: str,
        data: Any,
        namespace: str,
        room: Any = None,
        skip_sid: Any = None,
        callback: Any = None,
        to: Any = None,
        **kwargs: Any,
    ) -> None:
        room = to or room
        if callback is not None or namespace not in self.rooms:
            return await super().emit(
                event, data, namespace, room=room, skip_sid=skip_sid, callback=callback, **kwargs
            )
        if isinstance(data, tuple):
            args = list(data)
        else:
            args = [] if data is None else [data]
        encoded = self.server.packet_class(
            packet.EVENT, namespace=namespace, data=[event, *args]
        ).encode()
        # a JSON packet with binary attachments is several Engine.IO packets
        parts: list[str | bytes] = encoded if isinstance(encoded, list) else [encoded]
        frames = [message_frame(part) for part in parts]
        skip = skip_sid if isinstance(skip_sid, list) else [skip_sid]
        sockets = self.server.eio.sockets
        queued = []
        for sid, eio_sid in self.get_participants(namespace, room):
            if sid in skip:
                continue
            socket = sockets.get(eio_sid)
            if socket is not None and not socket.write_now(frames):
                queued.append(self._send_queued(eio_sid, parts))
        if queued:
            # like the stock path, a recipient that closed meanwhile is nobody's error
            await asyncio.gather(*queued, return_exceptions=True)
        return None

    async def _send_queued(self, eio_sid: str, parts: list[str | bytes]) -> None:
        """Polling (or upgrading) recipients get packets of their own: engineio caches
        a packet's encoding, and a poll encodes binary packets differently (base64)."""
        for part in parts:
            await self.server._send_eio_packet(eio_sid, eio_packet.Packet(eio_packet.MESSAGE, part))


class HubRedisManager(AsyncPubSubManager, BroadcastManager):
    """python-socketio's pub/sub manager on the process's `SocketIOChannel`, whose
    local deliveries are `BroadcastManager`'s: the method order puts it between the
    pub/sub layer and `AsyncManager`.

    python-socketio's emit delivers here, then `_publish`es for everyone else: the
    channel hands the message to the sibling server's manager in the process and
    publishes it once for the other nodes. The channel's one subscription hands
    this manager what the other nodes publish (`receive`).

    When the channel was lost, its listener subscribes again within RETRY_MAX of
    Redis's return and runs `after_gap` (the app sets it): what other nodes
    published meanwhile never reached this node, and the hook makes its clients
    catch up. An emit meanwhile reaches this node's clients only.
    """

    def __init__(self, channel: SocketIOChannel) -> None:
        super().__init__(channel=channel.name)
        self.bus = channel  # python-socketio's `channel` is the channel's name
        self._closed = False
        # run as a task of its own once the channel is subscribed again after a loss
        self.after_gap: Callable[[], Awaitable[object]] | None = None
        self._after_gap_runs: set[asyncio.Task[None]] = set()
        channel.join(self)

    def initialize(self) -> None:
        """`AsyncManager`'s start, and the channel's subscription instead of a listener
        task of this manager's own."""
        super(AsyncPubSubManager, self).initialize()
        self.bus.listen()

    async def _publish(self, data: Any) -> None:
        if self._closed:
            # the app is stopping: its clients are gone, and what the emit carried
            # is stored (the board's events are caught up by seq on reconnect)
            log.warning("emit after the Socket.IO manager closed, not published")
            return
        await self.bus.send(self, data)

    async def receive(self, message: dict[str, Any]) -> None:
        """python-socketio's listener body for one message (`_thread`)."""
        method = message["method"]
        if method == "callback":
            await self._handle_callback(message)
        elif message.get("host_id") == self.host_id:
            return
        elif method == "emit":
            await self._handle_emit(message)
        elif method == "disconnect":
            await self._handle_disconnect(message)
        elif method == "enter_room":
            await self._handle_enter_room(message)
        elif method == "leave_room":
            await self._handle_leave_room(message)
        elif method == "close_room":
            await self._handle_close_room(message)

    def channel_regained(self) -> None:
        if self.after_gap is None or self._closed:
            return
        run = asyncio.create_task(self._after_gap(self.after_gap), name="socketio-after-gap")
        self._after_gap_runs.add(run)
        run.add_done_callback(self._after_gap_runs.discard)

    async def _after_gap(self, hook: Callable[[], Awaitable[object]]) -> None:
        try:
            await hook()
        except Exception as exc:
            if not outages.is_outage(exc):
                log.exception("catching clients up after the Redis channel was lost failed")
                return
            log.warning(
                "could not catch clients up after the Redis channel was lost",
                extra={"error": outages.describe(exc)},
            )

    async def close(self) -> None:
        """Stop publishing and catching up (the channel closes its members)."""
        self._closed = True
        for run in self._after_gap_runs:
            run.cancel()
        await asyncio.gather(*self._after_gap_runs, return_exceptions=True)
