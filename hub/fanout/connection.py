"""A websocket connection read by the hub's own protocol once its handshake is done:
frames parsed as they arrive, each message handed to its Engine.IO socket in order.

Why not aiohttp's websocket: a connection living inside aiohttp's request handler
keeps the request (its parsed headers), the handler's two tasks with their chain of
coroutines, and the WebSocketResponse with its reader, queue and writer: more than
half of what an idle connection cost. Here an idle connection is this object, its
transport and its Engine.IO socket; a task exists only while messages are handled.

What the client sends is checked as aiohttp checked it (RFC 6455): frames must be
masked, use no extension bits, control frames short and whole, text valid UTF-8, a
message no longer than the Engine.IO server's `max_http_buffer_size` nor in more
than 1024 frames. A frame that breaks a rule closes the connection with the status
code for it.
"""

from __future__ import annotations

import asyncio
import collections
from typing import TYPE_CHECKING, Final

from engineio import exceptions, packet

from hub.fanout import frames as ws
from hub.fanout.client_packets import client_packet

if TYPE_CHECKING:
    from hub.fanout.socket import DirectSocket

# RFC 6455, 7.4.1
PROTOCOL_ERROR: Final = ws.close_frame(1002)
INVALID_TEXT: Final = ws.close_frame(1007)
MESSAGE_TOO_BIG: Final = ws.close_frame(1009)

# Reading stops while this many bytes of messages wait for their socket to take them,
# and starts again once it took them all: a client that sends faster than its
# messages are handled waits in TCP, not in the hub's memory (aiohttp's reader
# queue has the same bound). Each message counts its packet object too, so a flood
# of empty messages is stopped as soon.
_PENDING_BYTES_LIMIT: Final = 64 * 1024
_MESSAGE_COST: Final = 256
# A message may come in this many frames at most: each frame is a step of the parser,
# and zero-length continuations would otherwise never reach the size limit.
_MAX_FRAMES_PER_MESSAGE: Final = 1024


def unmask(mask: bytes, payload: bytes) -> bytes:
    """A client frame's payload, unmasked: the XOR done as one big-integer operation
    in C, not a Python step per byte."""
    length = len(payload)
    key = (mask * ((length >> 2) + 1))[:length]
    masked = int.from_bytes(payload, "little") ^ int.from_bytes(key, "little")
    return masked.to_bytes(length, "little")


class WebSocketConnection(asyncio.Protocol):
    """The protocol of one websocket connection after its handshake.

    Messages are handled one after the other, as engineio's reader loop did: a task
    runs while some wait and ends when none does. The socket is closed once the
    connection is lost and every message received before was handled, whichever
    side ended it (a close frame, a broken frame, a missed ping, a client that
    stopped reading, the hub shutting down).
    """

    __slots__ = (
        "_buffer",
        "_failed",
        "_fragment_frames",
        "_fragment_opcode",
        "_fragments",
        "_handling",
        "_lost",
        "_max_size",
        "_pending",
        "_pending_bytes",
        "socket",
        "transport",
    )

    def __init__(self, socket: DirectSocket, max_size: int) -> None:
        self.socket = socket
        self.transport: asyncio.Transport | None = None
        self._max_size = max_size
        self._buffer = bytearray()
        self._failed = False
        self._fragments: bytearray | None = None
        self._fragment_frames = 0
        self._fragment_opcode: int | None = None
        # made when the first message comes: an empty deque is half a KiB
        self._pending: collections.deque[packet.Packet] | None = None
        self._pending_bytes = 0
        self._handling: asyncio.Task[None] | None = None
        self._lost = False

    def start(self, transport: asyncio.Transport, tail: bytes) -> None:
        """Begin on a transport taken over mid-connection (no `connection_made`),
        with the bytes the previous protocol had read past the handshake."""
        self.transport = transport
        self.socket.server.connections.add(self)
        if tail:
            self.data_received(tail)

    def data_received(self, data: bytes) -> None:
        if self._failed:
            return
        buffer: bytes | bytearray
        if self._buffer:
            self._buffer += data
            buffer = self._buffer
        else:
            buffer = data
        end = len(buffer)
        at = 0
        while end - at >= 2:
            first, second = buffer[at], buffer[at + 1]
            if not second & 0x80 or first & 0x70:
                # unmasked (servers mask nothing, clients everything) or an extension bit
                self._fail(PROTOCOL_ERROR)
                return
            length = second & 0x7F
            head = at + 2
            if length == 126:
                if end - at < 4:
                    break
                length = int.from_bytes(buffer[head : head + 2], "big")
                head += 2
            elif length == 127:
                if end - at < 10:
                    break
                length = int.from_bytes(buffer[head : head + 8], "big")
                head += 8
            opcode = first & 0x0F
            final = bool(first & 0x80)
            if opcode >= ws.CLOSE:
                if not final or length > 125:
                    self._fail(PROTOCOL_ERROR)
                    return
            elif length + (len(self._fragments) if self._fragments else 0) > self._max_size:
                self._fail(MESSAGE_TOO_BIG)
                return
            frame_end = head + 4 + length
            if frame_end > end:
                break
            payload = unmask(bytes(buffer[head : head + 4]), bytes(buffer[head + 4 : frame_end]))
            at = frame_end
            if not self._frame(opcode, final, payload):
                return
        if buffer is self._buffer:
            del self._buffer[:at]
        elif at < end:
            self._buffer += buffer[at:]

    def _frame(self, opcode: int, final: bool, payload: bytes) -> bool:
        """Take one whole frame; False once the connection is closing."""
        if opcode == ws.CONTINUATION:
            fragments = self._fragments
            if fragments is None or self._fragment_opcode is None:
                self._fail(PROTOCOL_ERROR)
                return False
            fragments += payload
            self._fragment_frames += 1
            if not final:
                if self._fragment_frames >= _MAX_FRAMES_PER_MESSAGE:
                    self._fail(MESSAGE_TOO_BIG)
                    return False
                return True
            opcode = self._fragment_opcode
            payload = bytes(fragments)
            self._fragments = None
            self._fragment_frames = 0
            self._fragment_opcode = None
        elif opcode in (ws.TEXT, ws.BINARY):
            if self._fragment_opcode is not None:
                self._fail(PROTOCOL_ERROR)
                return False
            if not final:
                self._fragment_opcode = opcode
                self._fragments = bytearray(payload)
                self._fragment_frames = 1
                return True
        elif opcode == ws.CLOSE:
            # the client's closing handshake: answered, then the connection ends
            self._fail(PROTOCOL_ERROR if len(payload) == 1 else ws.CLOSE_NORMAL)
            return False
        elif opcode == ws.PING:
            self._write(ws.websocket_frame(payload, ws.PONG))
            return True
        elif opcode == ws.PONG:
            return True
        else:
            self._fail(PROTOCOL_ERROR)
            return False
        return self._message(payload, opcode)

    def _message(self, payload: bytes, opcode: int) -> bool:
        message: str | bytes = payload
        if opcode == ws.TEXT:
            try:
                message = payload.decode("utf-8")
            except UnicodeDecodeError:
                self._fail(INVALID_TEXT)
                return False
        try:
            pkt = client_packet(message)
        except ValueError:
            # not an Engine.IO packet: the client is broken or hostile
            self._fail(ws.CLOSE_NORMAL)
            return False
        if self._pending is None:
            self._pending = collections.deque()
        self._pending.append(pkt)
        self._pending_bytes += len(payload) + _MESSAGE_COST
        if self._pending_bytes >= _PENDING_BYTES_LIMIT and self.transport is not None:
            self.transport.pause_reading()
        if self._handling is None:
            self._handling = asyncio.get_running_loop().create_task(self._handle())
        return True

    def _write(self, frame: bytes) -> None:
        writer = self.socket.frames
        if writer is not None:
            writer.write(frame)

    def _fail(self, close_frame: bytes) -> None:
        """Read nothing more; close with this frame once what is queued went out.
        Messages already received are still handled, then the socket is closed."""
        self._failed = True
        self._buffer.clear()
        writer = self.socket.frames
        if writer is not None:
            writer.end(close_frame)
        elif self.transport is not None:
            self.transport.close()

    async def _handle(self) -> None:
        """Hand the waiting messages to the socket, in order; then, if the connection
        was lost meanwhile, close the socket."""
        socket = self.socket
        pending = self._pending
        assert pending is not None
        try:
            while pending:
                pkt = pending.popleft()
                if not pending:
                    self._pending_bytes = 0
                    transport = self.transport
                    if transport is not None and not self._lost and not transport.is_reading():
                        transport.resume_reading()
                try:
                    await socket.receive(pkt)
                except exceptions.UnknownPacketError:
                    pass
                except exceptions.SocketIsClosedError:
                    socket.server.logger.info("Receive error -- socket is closed")
                    pending.clear()
                    self._fail(ws.CLOSE_NORMAL)
                except Exception:
                    socket.server.logger.exception("Unknown receive error")
        finally:
            self._handling = None
        if self._lost:
            await socket.close_after_reading()

    def abort(self) -> None:
        """Cut the connection now, unsent bytes and all (a stopping node that waited
        long enough for the client to read its goodbye)."""
        if self.transport is not None:
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self._failed = True
        socket = self.socket
        socket.server.connection_ended(self)
        socket.transport_gone()
        closing = self._handling
        if closing is None:
            closing = asyncio.get_running_loop().create_task(socket.close_after_reading())
        # the server waits for these at shutdown: each runs the application's disconnect
        closes = socket.server.closing
        closes.add(closing)
        closing.add_done_callback(closes.discard)
