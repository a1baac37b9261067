"""The aiohttp websocket driver for Engine.IO, with a `FrameWriter` on the transport.

Replaces engineio's aiohttp driver class only to reach the transport and to say
no to permessage-deflate: a compressed connection would need its own compressed
copy of every broadcast, the very per-recipient work the fast path removes, and
inflating what clients send is a memory-bomb risk. Node's socket.io server
refuses it by default as well; messages are small JSON or msgpack.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from hub.fanout.writer import FrameWriter


class DirectWebSocket:
    """The interface engineio's socket expects from a driver (`send`, `wait`, `close`)
    plus `transport`, for the `FrameWriter` the socket puts in `frames` once the
    connection is a websocket."""

    def __init__(self, handler: Callable[[DirectWebSocket], Awaitable[None]], server: Any) -> None:
        self.handler = handler
        self.server = server
        self._sock = web.WebSocketResponse(max_msg_size=server.max_http_buffer_size, compress=False)
        self.transport: asyncio.Transport | None = None
        self.frames: FrameWriter | None = None

    async def __call__(self, environ: dict[str, Any]) -> web.WebSocketResponse:
        request: web.Request = environ["aiohttp.request"]
        await self._sock.prepare(request)
        # a stream transport: write, write buffer size, abort
        self.transport = request.transport  # type: ignore[assignment]
        if self.transport is None:  # the client left during the handshake
            return self._sock
        self.environ = environ
        await self.handler(self)
        return self._sock

    async def close(self) -> None:
        if self.frames is not None:
            self.frames.close()
        await self._sock.close()

    async def send(self, message: str | bytes) -> None:
        """Only the upgrade probe's answer goes here; everything after goes to `frames`."""
        if isinstance(message, bytes):
            await self._sock.send_bytes(message)
        else:
            await self._sock.send_str(message)

    async def wait(self) -> str | bytes:
        msg = await self._sock.receive()
        if not isinstance(msg.data, bytes | str):
            raise OSError("websocket closed")
        return msg.data
