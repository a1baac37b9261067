"""The hub's own websocket protocol (hub/fanout/connection.py), spoken frame by frame
over a raw TCP connection to a live hub.

A websocket connect is handed over from aiohttp to it after the handshake
(hub/fanout/upgrade.py): these tests hold it to RFC 6455 where a browser or a
hostile client could take it — fragments, control frames between them, bytes sent
with the handshake, a client that sends faster than the hub handles, and every
broken frame closed with its status code — and prove aiohttp let go of the
connection, so that an aiohttp release that changes what the hand-over relies on
fails here.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import random
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Final
from urllib.parse import urlsplit

import pytest

from hub.app import SOCKETIO_SERVERS
from tests.support import Hub, websocket_handshake
from tests.support import client_frame as frame

WAIT: Final = 5.0
TEXT, BINARY, CLOSE, PING, PONG = 0x1, 0x2, 0x8, 0x9, 0xA


class RawWebSocket:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, url: str, first: bytes = b"") -> RawWebSocket:
        """The handshake, with `first` in the same write (a client that does not wait
        for the 101); the Engine.IO OPEN packet is read."""
        parts = urlsplit(url)
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(websocket_handshake(parts.netloc, key) + first)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)
        lines = head.decode().split("\r\n")
        assert lines[0].startswith("HTTP/1.1 101"), head
        headers = dict(line.split(": ", 1) for line in lines[1:] if line)
        expected = base64.b64encode(
            hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()
        ).decode()
        assert headers["Sec-WebSocket-Accept"] == expected, headers
        assert "Sec-WebSocket-Extensions" not in headers  # no permessage-deflate
        ws = cls(reader, writer)
        opcode, opened = await ws.frame()
        assert opcode == TEXT and opened.startswith(b"0{"), opened
        return ws

    def send(self, *frames: bytes) -> None:
        self.writer.write(b"".join(frames))

    async def frame(self) -> tuple[int, bytes]:
        """The hub's next frame, whole (servers do not fragment theirs)."""
        first, second = await asyncio.wait_for(self.reader.readexactly(2), WAIT)
        assert not second & 0x80, "a server frame must not be masked"
        length = second & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", await self.reader.readexactly(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", await self.reader.readexactly(8))
        return first & 0x0F, await asyncio.wait_for(self.reader.readexactly(length), WAIT)

    async def message(self) -> str:
        """The next Socket.IO packet's text, Engine.IO pings answered."""
        while True:
            opcode, payload = await self.frame()
            assert opcode == TEXT, (opcode, payload)
            if payload == b"2":
                self.send(frame(b"3"))
            elif payload.startswith(b"4"):
                return payload[1:].decode()

    async def closed_with(self) -> int:
        """The status of the hub's close frame, once the connection is also ended."""
        while True:
            opcode, payload = await self.frame()
            if opcode == CLOSE:
                break
        assert await asyncio.wait_for(self.reader.read(), WAIT) == b""
        (status,) = struct.unpack("!H", payload[:2])
        return int(status)

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


def connect_packet(token: str) -> bytes:
    return frame(b"40" + json.dumps({"token": token}).encode())


def event(name: str, payload: object, ack_id: int) -> bytes:
    return f"42{ack_id}{json.dumps([name, payload])}".encode()


@asynccontextmanager
async def connected(hub: Hub, *, eager: bool = False) -> AsyncIterator[RawWebSocket]:
    """A raw websocket with a Socket.IO connect done; `eager` sends the connect in
    the handshake's own write."""
    account = await hub.register("Raw")
    connect = connect_packet(account.access_token)
    ws = await RawWebSocket.open(hub.url, connect if eager else b"")
    try:
        if not eager:
            ws.send(connect)
        assert (await ws.message()).startswith("0{"), "no Socket.IO connect"
        yield ws
    finally:
        await ws.close()


async def _ack(ws: RawWebSocket, ack_id: int) -> object:
    while True:
        text = await ws.message()
        if text.startswith(f"3{ack_id}["):
            return json.loads(text[len(f"3{ack_id}") :])[0]


async def test_aiohttp_lets_go_of_a_websocket_connection(hub: Hub) -> None:
    """Once connected, the websocket is no connection of aiohttp's any more (its
    request, tasks and reader are gone), and it works: events are answered."""
    assert hub.server.runner is not None and hub.server.runner.server is not None
    web_server = hub.server.runner.server
    async with connected(hub) as first, connected(hub) as second:
        for _ in range(50):
            if not web_server.connections:  # the REST calls' connections end too
                break
            await asyncio.sleep(0.05)
        assert web_server.connections == []
        for ack_id, ws in enumerate((first, second), 1):
            ws.send(frame(event("presence:list", {}, ack_id)))
            assert isinstance(await _ack(ws, ack_id), dict)


async def test_a_node_that_said_goodbye_takes_over_no_new_websocket(hub: Hub) -> None:
    """Once a stopping node ended its websockets (`end_websockets`), a connect that was
    still being authenticated is refused, not taken over after the goodbye."""
    for server in hub.app[SOCKETIO_SERVERS].values():
        server.end_websockets()  # type: ignore[attr-defined]
    parts = urlsplit(hub.url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(websocket_handshake(parts.netloc, key))
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)
        assert head.startswith(b"HTTP/1.1 503"), head
    finally:
        writer.close()


async def test_bytes_sent_with_the_handshake_are_read(hub: Hub) -> None:
    async with connected(hub, eager=True) as ws:
        ws.send(frame(event("presence:list", {}, 1)))
        assert isinstance(await _ack(ws, 1), dict)


async def test_fragments_and_control_frames_between_them(hub: Hub) -> None:
    async with connected(hub) as ws:
        ws.send(frame(b"ping me", PING))
        assert await ws.frame() == (PONG, b"ping me")
        message = event("presence:list", {}, 1)
        ws.send(
            frame(message[:3], final=False),
            frame(message[3:9], 0x0, final=False),
            frame(b"", PING),
            frame(message[9:], 0x0),
        )
        assert await ws.frame() == (PONG, b"")
        assert isinstance(await _ack(ws, 1), dict)
        ws.send(frame(b"unsolicited", PONG))  # allowed, and ignored
        ws.send(frame(event("presence:list", {}, 2)))
        assert isinstance(await _ack(ws, 2), dict)


async def test_a_client_sending_faster_than_it_is_handled_loses_nothing(hub: Hub) -> None:
    """Past what waits to be handled the hub stops reading (the client waits in TCP)
    and reads on once it caught up: every message is handled, in order."""
    async with connected(hub) as ws:
        noop = frame(b"6" + b"x" * 1000)  # an Engine.IO NOOP, ignored by the hub
        ws.send(*[noop] * 300, *(frame(event("presence:list", {}, i)) for i in range(1, 6)))
        for ack_id in range(1, 6):
            assert isinstance(await _ack(ws, ack_id), dict)


async def test_frames_cut_anywhere_by_tcp_are_read_whole(hub: Hub) -> None:
    """Frames of every header size (7-bit and 16-bit lengths), a fragmented message
    and a ping, sent a few bytes at a time: the hub reads each message whole, in
    order, wherever the reads cut them."""
    rng = random.Random(5)
    async with connected(hub) as ws:
        stream = b"".join(
            [
                frame(event("presence:list", {}, 1)),
                frame(event("presence:list", {"pad": "x" * 300}, 2)),  # 16-bit length
                frame(b"ping", PING),
                frame(event("presence:list", {}, 3)[:5], final=False),
                frame(event("presence:list", {}, 3)[5:], 0x0),
                frame(event("presence:list", {"pad": "y" * 70_000}, 4)),  # 64-bit length
            ]
        )
        at = 0
        while at < len(stream):
            step = rng.randint(1, 7) if at < 2000 else rng.randint(500, 5000)
            ws.send(stream[at : at + step])
            await ws.writer.drain()
            await asyncio.sleep(0)
            at += step
        pongs: list[bytes] = []
        acks: list[tuple[int, Any]] = []
        while len(acks) < 4:
            opcode, payload = await ws.frame()
            if opcode == PONG:
                pongs.append(payload)
            elif payload.startswith(b"43"):
                ack_id = int(payload[2:].split(b"[", 1)[0])
                acks.append((ack_id, json.loads(payload[2 + len(str(ack_id)) :])[0]))
        assert pongs == [b"ping"]
        assert [ack_id for ack_id, _ in acks] == [1, 2, 3, 4]
        # the 70 KB message was read whole: refused for its size, not as garbage
        assert acks[3][1]["error"]["code"] == "payload_too_large", acks[3]


BROKEN: Final = {
    "unmasked": (frame(b"40", masked=False), 1002),
    "reserved-bit": (frame(b"40", rsv=0x40), 1002),
    "unknown-opcode": (frame(b"40", 0x3), 1002),
    "continuation-without-a-start": (frame(b"40", 0x0), 1002),
    "data-frame-inside-a-fragmented-message": (
        frame(b"4", final=False) + frame(b"0", TEXT),
        1002,
    ),
    "fragmented-control-frame": (frame(b"x", PING, final=False), 1002),
    "control-frame-over-125-bytes": (frame(b"x" * 126, PING), 1002),
    "close-with-one-byte": (frame(b"\x03", CLOSE), 1002),
    "text-not-utf8": (frame(b"4\xff\xfe"), 1007),
    # only the header: the hub refuses before the body would arrive
    "message-over-the-limit": (frame(b"x" * (2**20 + 1))[:14], 1009),
    "fragments-over-the-limit": (
        frame(b"x" * 2**19, final=False) + frame(b"x" * (2**19 + 1), 0x0)[:14],
        1009,
    ),
    "message-in-over-1024-frames": (
        frame(b"4", final=False) + frame(b"", 0x0, final=False) * 1023,
        1009,
    ),
    "close-frame": (frame(struct.pack("!H", 1001), CLOSE), 1000),
}


@pytest.mark.parametrize("case", list(BROKEN))
async def test_a_broken_frame_closes_the_connection_with_its_status(hub: Hub, case: str) -> None:
    data, status = BROKEN[case]
    assert hub.settings.max_payload_bytes * 16 == 2**20  # the limits the cases use
    async with connected(hub) as ws:
        ws.send(data)
        assert await ws.closed_with() == status
