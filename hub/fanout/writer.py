"""Whole frames written straight to one connection's transport, with a bound on what
its client has not read yet."""

from __future__ import annotations

import asyncio
import logging

from hub.fanout.frames import CLOSE_NORMAL

log = logging.getLogger(__name__)


class FrameWriter:
    """Writes are synchronous, so frames leave in the order they were written, whoever
    wrote them (an ack, a ping, a broadcast), and a broadcast never yields mid-loop.

    The transport buffers what the client has not read. Past `limit` bytes the
    client is taken to have stopped reading: the connection is aborted (the
    reader sees it closed and the socket disconnects with `transport error`),
    instead of letting one slow reader hold the hub's memory.
    """

    __slots__ = ("_closed", "_limit", "_transport", "overflowed", "sid")

    def __init__(self, transport: asyncio.Transport, limit: int, sid: str) -> None:
        self._transport = transport
        self._limit = limit
        self._closed = False
        self.overflowed = False
        self.sid = sid

    def write(self, frame: bytes) -> None:
        transport = self._transport
        if self._closed or transport.is_closing():
            # going away; the reader loop will see it and disconnect the socket
            return
        transport.write(frame)
        if transport.get_write_buffer_size() > self._limit:
            self.overflowed = True
            self._closed = True
            log.warning(
                "client stopped reading; dropping it",
                extra={"sid": self.sid, "unsent_bytes": transport.get_write_buffer_size()},
            )
            transport.abort()

    def end(self, close_frame: bytes = CLOSE_NORMAL) -> None:
        """Close the websocket from this side: a close frame (normal closure unless
        told otherwise), then the connection once what is buffered went out (a dead
        client's is dropped by the kernel)."""
        if self._closed:
            return
        self._closed = True
        if not self._transport.is_closing():
            self._transport.write(close_frame)
            self._transport.close()

    def close(self) -> None:
        """No data frame may follow the websocket close frame."""
        self._closed = True
