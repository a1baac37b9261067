"""The aiohttp websocket driver for Engine.IO, with a `FrameWriter` on the transport.

Replaces engineio's aiohttp driver class only to reach the transport and to say
no to permessage-deflate: a compressed connection would need its own compressed
copy of every broadcast, the very per-recipient work the fast path removes, and
inflating what clients send is a memory-bomb risk. Node's socket.io server
refuses it by default as well; messages are small JSON or msgpack.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from aiohttp import WSMessage, web
from engineio.async_drivers import aiohttp as engineio_aiohttp

from hub.fanout.writer import FrameWriter

# What engineio's WSGI-style environ holds that nothing reads once the handshake is
# done: the WSGI plumbing and the handshake's own headers. The application's connect
# handler (the Socket.IO CONNECT comes later) reads the rest: the client's address,
# user agent, origin, proxy headers, query string; "aiohttp.request" stays for the rest.
_HANDSHAKE_ONLY = frozenset(
    {
        "wsgi.input",
        "wsgi.errors",
        "wsgi.version",
        "wsgi.async",
        "wsgi.multithread",
        "wsgi.multiprocess",
        "wsgi.run_once",
        "SERVER_SOFTWARE",
        "HTTP_CONNECTION",
        "HTTP_UPGRADE",
        "HTTP_SEC_WEBSOCKET_KEY",
        "HTTP_SEC_WEBSOCKET_VERSION",
        "HTTP_SEC_WEBSOCKET_EXTENSIONS",
        "HTTP_ACCEPT_ENCODING",
        "HTTP_CACHE_CONTROL",
        "HTTP_PRAGMA",
    }
)


def translate_request(request: web.Request) -> dict[str, Any]:
    """engineio's WSGI-style environ of a request, with the TCP peer as REMOTE_ADDR
    (engineio's says 127.0.0.1 for everyone): a websocket connect lets its request
    go once the handshake is done, and the Socket.IO connect that comes later needs
    the client's address. None for a peer with no address (a Unix socket)."""
    environ: dict[str, Any] = engineio_aiohttp.translate_request(request)
    environ["REMOTE_ADDR"] = request.remote
    return environ


def shrink_environ(environ: dict[str, Any]) -> None:
    """Drop the handshake-only keys from `environ`, in place: python-socketio keeps
    this very dict for the connection's lifetime (and engineio's frames hold it), and
    a dict never gives back its table when keys are deleted, only when cleared."""
    kept = {key: value for key, value in environ.items() if key not in _HANDSHAKE_ONLY}
    environ.clear()
    environ.update(kept)


class DirectWebSocket:
    """The interface engineio's socket expects from a driver (`send`, `wait`, `close`)
    plus `transport`, for the `FrameWriter` the socket puts in `frames` once the
    connection is a websocket. Only connections upgraded from long-polling use it: a
    direct websocket connect is handed over to `connection.WebSocketConnection`
    (`HubEngineServer.handle_request`). Slotted: one lives as long as its connection."""

    __slots__ = ("_sock", "environ", "frames", "handler", "server", "transport")

    def __init__(self, handler: Callable[[DirectWebSocket], Awaitable[None]], server: Any) -> None:
        self.handler = handler
        self.server = server
        self._sock = web.WebSocketResponse(max_msg_size=server.max_http_buffer_size, compress=False)
        self.transport: asyncio.Transport | None = None
        self.frames: FrameWriter | None = None
        self.environ: dict[str, Any] = {}

    async def __call__(self, environ: dict[str, Any]) -> web.WebSocketResponse:
        """engineio's driver call: the handshake, then the socket's handler until the
        connection ends (the upgrade from long-polling comes this way)."""
        if await self.accept(environ):
            await self.handler(self)
        return self._sock

    async def accept(self, environ: dict[str, Any]) -> bool:
        """aiohttp's websocket handshake; False when the client left during it."""
        request: web.Request = environ["aiohttp.request"]
        await self._sock.prepare(request)
        # a stream transport: write, write buffer size, abort
        self.transport = request.transport  # type: ignore[assignment]
        if self.transport is None:
            return False
        # engineio has read what it needs from the handshake (upgrade headers)
        shrink_environ(environ)
        self.environ = environ
        return True

    @property
    def response(self) -> web.WebSocketResponse:
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

    def receive(self) -> Coroutine[Any, Any, WSMessage]:
        """aiohttp's `receive` itself, for the reader loop: one coroutine frame fewer
        per idle connection than `wait` (the loop checks `msg.data` instead)."""
        return self._sock.receive()
