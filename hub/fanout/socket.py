"""An Engine.IO socket that, once on websocket, writes every packet straight out."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from engineio import exceptions, packet, payload
from engineio.async_socket import AsyncSocket

from hub.fanout.client_packets import PACKET_TYPES, client_packet
from hub.fanout.connection import WebSocketConnection
from hub.fanout.frames import engineio_frame
from hub.fanout.websocket import DirectWebSocket
from hub.fanout.writer import FrameWriter

# Every ping is the same bytes: the Engine.IO PING packet ("2") in a text frame.
_PING_FRAME = engineio_frame(packet.Packet(packet.PING))


class DirectSocket(AsyncSocket):
    """engineio's socket with the websocket writer task and queue replaced by a
    `FrameWriter`. Long-polling (and a connection mid-upgrade) keeps the queue.

    An idle connection is mostly memory, so a websocket one holds no more than it
    needs: no queue once it writes to its transport (an `asyncio.Queue` is four
    deques, about 3.5 KiB), and one timer instead of engineio's ping task and its
    reader's `wait_for` task: the timer sends the next ping and, once sent, waits
    `ping_timeout` for the answer (as Node's engine.io does); a client that misses
    it is dropped, which is what ends the reader of a half-open connection.
    """

    frames: FrameWriter | None = None
    last_ping: float | None  # engineio's: when the last ping went out, None once answered
    ping_missed = False
    _timer: asyncio.TimerHandle | None = None

    @property
    def queue(self) -> asyncio.Queue[packet.Packet | None]:
        """engineio's outgoing queue, made again on demand once a websocket-only
        socket has let it go (`close(wait=True)` joins it: an empty one at once)."""
        queue: asyncio.Queue[packet.Packet | None] | None = self.__dict__.get("queue")
        if queue is None:
            queue = self.__dict__["queue"] = self.server.create_queue()
        return queue

    @queue.setter
    def queue(self, queue: asyncio.Queue[packet.Packet | None]) -> None:
        self.__dict__["queue"] = queue

    def _set_timer(self, delay: float, callback: Callable[[], None]) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_later(delay, callback)

    def schedule_ping(self) -> None:
        """Called at connect and on each PONG. engineio starts a task that sleeps
        `ping_interval` here: a task, a coroutine and a future per connection."""
        # as engineio: only once the client answered the previous ping
        if self.last_ping:
            self.last_ping = None
            self._set_timer(self.server.ping_interval, self._ping)

    def _ping(self) -> None:
        """engineio's `_send_ping` after its sleep: what `send` does with a PING, whose
        ping-timeout check cannot fail (`last_ping` was just set)."""
        self._timer = None
        if self.closing or self.closed:
            return
        self.last_ping = time.time()
        frames = self.frames
        if frames is None:
            # long-polling: the poll request's own timeout notices a client gone
            self.queue.put_nowait(packet.Packet(packet.PING))
        else:
            frames.write(_PING_FRAME)
            self._set_timer(self.server.ping_timeout, self._pong_missed)

    def _pong_missed(self) -> None:
        """No PONG within `ping_timeout`: the websocket is closed, as the stock path
        does; the reader loop sees it end and closes the socket (`ping timeout`)."""
        self._timer = None
        if self.frames is not None and not self.closed:
            self.ping_missed = True
            self.frames.end()

    def _stop_timer(self) -> None:
        """A closed socket needs no ping; the timer would keep it alive until then."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    async def close(self, wait: bool = True, abort: bool = False, reason: Any = None) -> None:
        """engineio's close, then the websocket itself. Stock engineio's writer task
        ends the websocket after the CLOSE packet; without one, a client that
        ignores that packet would keep its connection open for good (a closed
        socket is pinged no more)."""
        await super().close(wait=wait, abort=abort, reason=reason)
        frames = self.frames
        if frames is not None:
            frames.end()

    async def handle_post_request(self, environ: dict[str, Any]) -> None:
        """A long-polling POST: engineio's, except for a body that is no Engine.IO
        payload (not UTF-8, an empty packet, a packet type past the last, bad base64).

        engineio raises a plain ValueError there, which its server logs as "post
        request handler error" with a traceback and answers 200: the garbage is
        dropped without a word, and anyone may fill the log with tracebacks. As an
        EngineIOError it gets what a broken websocket frame gets: the session is
        closed, with a 400.
        """
        length = int(environ.get("CONTENT_LENGTH", "0"))
        if length > self.server.max_http_buffer_size:
            raise exceptions.ContentTooLongError()
        body = await environ["wsgi.input"].read(length)
        try:
            packets = payload.Payload(encoded_payload=body.decode("utf-8")).packets
            for pkt in packets:
                if pkt.packet_type not in PACKET_TYPES.values():
                    raise ValueError(f"no Engine.IO packet type {pkt.packet_type!r}")
        except ValueError as exc:  # UnicodeDecodeError is one too
            self.server.logger.info(
                "%s: closing a polling session that sent no Engine.IO payload: %s",
                self.sid,
                str(exc)[:200],
            )
            raise exceptions.EngineIOError(str(exc)) from None
        for pkt in packets:
            await self.receive(pkt)

    async def send(self, pkt: packet.Packet) -> None:
        frames = self.frames
        if frames is None:
            await super().send(pkt)
        elif await self.check_ping_timeout():
            frames.write(engineio_frame(pkt))

    def write_now(self, frames: list[bytes]) -> bool:
        """Write a broadcast's shared frames (one, or a packet and its binary
        attachments); False when they must go through `send` instead (not a
        websocket yet, or the ping check has to close it)."""
        writer = self.frames
        if writer is None or self.closed:
            return False
        last_ping = self.last_ping
        if last_ping and time.time() - last_ping > self.server.ping_timeout:
            return False
        for frame in frames:
            writer.write(frame)
        return True

    def run_on(
        self, connection: WebSocketConnection, transport: asyncio.Transport, tail: bytes
    ) -> None:
        """A websocket connect's socket, from its first frame on: written to through
        a `FrameWriter`, read by `connection` (which now owns the transport, and has
        `tail`, what was read past the handshake)."""
        self.connected = True
        self.upgraded = True
        self._start_writing(transport, release_queue=True)
        self.server.logger.info("%s: Upgrade to websocket successful", self.sid)
        connection.start(transport, tail)

    def _start_writing(self, transport: asyncio.Transport, *, release_queue: bool) -> FrameWriter:
        """From here on packets go to the transport; what was queued before (the OPEN
        packet, or what arrived during an upgrade) goes first, in order.

        A socket that was never polled lets the emptied queue go: nothing waits on it.
        One upgraded from polling keeps it, in case a poll request still holds it.
        """
        frames = FrameWriter(transport, self.server.outbound_buffer_bytes, self.sid)
        queue = self.queue
        while True:
            try:
                pkt = queue.get_nowait()
            except asyncio.QueueEmpty:
                break
            queue.task_done()
            if pkt is not None:
                frames.write(engineio_frame(pkt))
        self.frames = frames
        if release_queue:
            del self.__dict__["queue"]
        last_ping = self.last_ping
        if last_ping:
            # a ping sent while polling is unanswered: its deadline still applies
            remaining = last_ping + self.server.ping_timeout - time.time()
            self._set_timer(max(remaining, 0.0), self._pong_missed)
        return frames

    def transport_gone(self) -> None:
        """The connection ended: no more pings, and nothing written after it."""
        self._stop_timer()
        if self.frames is not None:
            self.frames.close()

    async def _upgrade_read(self, ws: DirectWebSocket) -> packet.Packet:
        """A packet of the upgrade handshake, bounded and checked like every other one
        (ValueError). A method, not engineio's closure: the handler's frame lives as
        long as the connection."""
        data = await ws.wait()
        if data and len(data) > self.server.max_http_buffer_size:
            raise ValueError("packet is too large")
        return client_packet(data)

    async def _websocket_handler(self, ws: Any) -> None:
        """engineio's handler (upgrade handshake, reader loop) without its writer task."""
        server = self.server
        polled = bool(self.connected)  # type: ignore[has-type]  # engineio is untyped
        if polled:
            # an upgrade from long-polling: probe, then the UPGRADE packet
            self.upgrading = True
            try:
                decoded = await self._upgrade_read(ws)
            except (OSError, ValueError):
                return
            if decoded.packet_type != packet.PING or decoded.data != "probe":
                server.logger.info("%s: Failed websocket upgrade, no PING packet", self.sid)
                self.upgrading = False
                return
            await ws.send(packet.Packet(packet.PONG, data="probe").encode())
            await self.queue.put(packet.Packet(packet.NOOP))  # ends the pending poll
            try:
                decoded = await self._upgrade_read(ws)
            except (OSError, ValueError):
                self.upgrading = False
                return
            if decoded.packet_type != packet.UPGRADE:
                self.upgraded = False
                server.logger.info(
                    "%s: Failed websocket upgrade, expected UPGRADE packet, received %s instead.",
                    self.sid,
                    decoded.data,
                )
                self.upgrading = False
                return
            self.upgraded = True
            self.upgrading = False
        else:
            self.connected = True
            self.upgraded = True

        assert ws.transport is not None
        ws.frames = self._start_writing(ws.transport, release_queue=not polled)
        server.logger.info("%s: Upgrade to websocket successful", self.sid)

        # no read timeout (engineio's wait_for is a task per read): a silent client
        # misses its ping's deadline, and `_pong_missed` closes the websocket
        while True:
            try:
                received = (await ws.receive()).data  # not `wait`: a frame fewer
                if not isinstance(received, bytes | str):
                    break  # closed
                if received and len(received) > server.max_http_buffer_size:
                    raise ValueError("packet is too large")
                # not an Engine.IO packet: the client is broken or hostile, and closed
                pkt = client_packet(received)
            except (asyncio.CancelledError, Exception):
                # as engineio does: a cancelled handler (shutdown) still closes the
                # socket below, so the application sees the disconnect
                break
            try:
                await self.receive(pkt)
            except exceptions.UnknownPacketError:
                pass
            except exceptions.SocketIsClosedError:
                server.logger.info("Receive error -- socket is closed")
                break
            except Exception:
                server.logger.exception("Unknown receive error")

        self._stop_timer()
        # The close runs the application's disconnect (presence, rooms) and must end
        # even when this handler is cancelled meanwhile: aiohttp cancels it when the
        # peer drops the TCP connection if handler_cancellation is on (its test
        # server's default), and at shutdown. Cut halfway, it left the person on
        # the board. The server keeps the task until it ends (`closing`).
        closing = asyncio.ensure_future(self._close_after_reading(ws))
        server.closing.add(closing)
        closing.add_done_callback(server.closing.discard)
        await asyncio.shield(closing)

    async def _close_after_reading(self, ws: DirectWebSocket) -> None:
        await ws.close()
        await self.close_after_reading()

    async def close_after_reading(self) -> None:
        """Close the socket once its connection ended and what it sent was handled,
        with the reason the connection ended for; the application's disconnect runs
        here."""
        server = self.server
        if self.frames is not None and self.frames.overflowed:
            reason = server.reason.TRANSPORT_ERROR
        elif self.ping_missed:
            reason = server.reason.PING_TIMEOUT
        else:
            reason = server.reason.TRANSPORT_CLOSE
        await self.close(wait=False, abort=True, reason=reason)
        if server.sockets.get(self.sid) is self:
            del server.sockets[self.sid]
