"""The websocket handshake of a direct connect, and the hand-over of its TCP connection
from aiohttp to the hub's own websocket protocol (`hub/fanout/connection.py`).

aiohttp has no public way to let a connection go: a websocket lives inside its
request handler for as long as it is open, which keeps the parsed request, the
handler's tasks and coroutines and the WebSocketResponse with its reader, queue and
writer alive. `release` is the one place that touches aiohttp's `RequestHandler`
internals to give the connection up; `tests/hub/test_websocket_frames.py` fails
if an aiohttp release changes what it relies on, and `setup.cfg` caps aiohttp
below its next minor version until that test has passed on it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
from typing import Final

from aiohttp import web

# RFC 6455, 1.3: the GUID appended to the client's key
_ACCEPT_GUID: Final = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
# the versions aiohttp's own handshake accepts
_VERSIONS: Final = frozenset({"13", "8", "7"})


def handshake_response(request: web.Request) -> bytes | None:
    """The 101 response to a websocket handshake (the caller checked the method and the
    Upgrade and Connection headers); None when the key or version is not one a
    websocket client sends, for aiohttp's handshake to refuse as it always has.

    No Sec-WebSocket-Extensions: permessage-deflate is refused (see
    `hub/fanout/websocket.py`); no subprotocol either, as aiohttp's response with no
    protocols configured names none.
    """
    if request.headers.get("Sec-WebSocket-Version", "") not in _VERSIONS:
        return None
    key = request.headers.get("Sec-WebSocket-Key", "")
    try:
        if len(base64.b64decode(key, validate=True)) != 16:
            return None
    except (binascii.Error, ValueError):
        return None
    accept = base64.b64encode(hashlib.sha1(key.encode() + _ACCEPT_GUID).digest())
    return (
        b"HTTP/1.1 101 Switching Protocols\r\n"
        b"Upgrade: websocket\r\n"
        b"Connection: upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n"
    )


def release(request: web.Request, protocol: asyncio.Protocol) -> tuple[asyncio.Transport, bytes]:
    """Take the request's TCP connection from aiohttp and give it to `protocol`.
    Returns the transport and the bytes aiohttp read past the handshake (a client
    may send its first frame without waiting for the 101).

    aiohttp is then told the connection is gone, with nothing to close: its handler
    drops the connection from the server's table, its timers and parser; the
    response the request handler returns next finds no transport and is dropped, so
    the handler's task ends and frees the request.
    """
    handler = request.protocol  # aiohttp's RequestHandler
    transport = handler.transport
    if transport is None or transport.is_closing():
        raise ConnectionResetError("the client left during the handshake")
    tail: bytes = handler._message_tail  # see the module docstring
    handler._message_tail = b""
    transport.set_protocol(protocol)
    handler.transport = None  # aiohttp writes and closes nothing more on it
    # nor cancels the handler's task when told the connection is lost (its test
    # server's handler_cancellation): the request handler returns by itself
    handler._task_handler = None
    handler.connection_lost(None)
    if not transport.is_reading():
        # aiohttp pauses a connection whose bytes past an upgrade pile up
        transport.resume_reading()
    return transport, tail  # type: ignore[return-value]  # a stream transport
