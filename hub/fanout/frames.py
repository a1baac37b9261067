"""Server-to-client websocket frames (RFC 6455), built once and written many times."""

from __future__ import annotations

import struct
from typing import Final

from engineio import packet as eio_packet

CONTINUATION: Final = 0x0
TEXT: Final = 0x1
BINARY: Final = 0x2
CLOSE: Final = 0x8
PING: Final = 0x9
PONG: Final = 0xA
_FIN: Final = 0x80
_HEADER_SHORT = struct.Struct("!BB")
_HEADER_MEDIUM = struct.Struct("!BBH")
_HEADER_LONG = struct.Struct("!BBQ")


def websocket_frame(payload: bytes, opcode: int) -> bytes:
    """One final, unmasked, uncompressed frame: what a server sends (servers never mask)."""
    length = len(payload)
    first = _FIN | opcode
    if length < 126:
        header = _HEADER_SHORT.pack(first, length)
    elif length < 65536:
        header = _HEADER_MEDIUM.pack(first, 126, length)
    else:
        header = _HEADER_LONG.pack(first, 127, length)
    return header + payload


def close_frame(status: int) -> bytes:
    """A close frame with this status code (RFC 6455, 7.4) and no reason text."""
    return websocket_frame(struct.pack("!H", status), CLOSE)


# A close frame with status 1000 (normal closure): what aiohttp sends when the server
# closes a websocket, as the stock path does when a client misses its ping.
CLOSE_NORMAL: Final = close_frame(1000)


def message_frame(socketio_packet: str | bytes) -> bytes:
    """The frame of the Engine.IO MESSAGE packet carrying this encoded Socket.IO packet,
    made without an `eio_packet.Packet`: engineio caches a packet's encoding, and a
    shared packet encoded for websocket would hand raw bytes to a polling recipient
    that needs base64."""
    if isinstance(socketio_packet, bytes):
        return websocket_frame(socketio_packet, BINARY)
    return websocket_frame(f"{eio_packet.MESSAGE}{socketio_packet}".encode(), TEXT)


def engineio_frame(pkt: eio_packet.Packet) -> bytes:
    """The frame the stock aiohttp driver would send for this Engine.IO packet: text
    for string packets, binary for binary ones (a msgpack Socket.IO packet is one)."""
    encoded = pkt.encode()
    if isinstance(encoded, bytes):
        return websocket_frame(encoded, BINARY)
    return websocket_frame(encoded.encode("utf-8"), TEXT)
