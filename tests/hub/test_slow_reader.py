"""A client that stops reading neither holds back the others nor holds the hub's memory.

The slow reader is a raw websocket client with a tiny receive buffer that, once
it has joined the board, never reads again. Everything it is sent piles up in
the hub's transport buffer; past OUTBOUND_BUFFER_BYTES the hub drops it, and the
room hears it leave, while a normal member got every message meanwhile.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import struct
from typing import Any
from urllib.parse import urlsplit

from tests.support import Account, Hub

BUFFER_BOUND = 64 * 1024
MESSAGES = 600
BODY = "x" * 9_990  # near the largest chat message: 600 of them (6 MB) are more than the
# kernel buffers of a loopback connection (up to 4 MiB) can absorb for the slow reader


class RawSocketIO:
    """Just enough of Engine.IO and Socket.IO over a raw TCP websocket to connect, join
    a board, and then stop reading — which no real client library lets one do."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, url: str, token: str) -> RawSocketIO:
        parts = urlsplit(url)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # a small receive window, so the kernel does not absorb what the hub sends
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (parts.hostname, parts.port))
        reader, writer = await asyncio.open_connection(sock=sock, limit=4096)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            (
                "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\n"
                f"Host: {parts.netloc}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head
        client = cls(reader, writer)
        assert (await client.receive()).startswith("0")  # Engine.IO OPEN
        client.send("40" + json.dumps({"token": token}))
        assert (await client.receive()).startswith("40")  # Socket.IO CONNECT
        return client

    def send(self, text: str) -> None:
        """A masked text frame, as RFC 6455 requires of clients."""
        payload = text.encode()
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        if len(payload) < 126:
            header = struct.pack("!BB", 0x81, 0x80 | len(payload))
        else:
            header = struct.pack("!BBH", 0x81, 0x80 | 126, len(payload))
        self.writer.write(header + mask + masked)

    async def receive(self) -> str:
        first, second = await self.reader.readexactly(2)
        length = second & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", await self.reader.readexactly(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", await self.reader.readexactly(8))
        data = (await self.reader.readexactly(length)).decode()
        if first & 0x0F == 0x9:  # a websocket ping from aiohttp: not ours to see
            return await self.receive()
        return data

    async def call(self, event: str, payload: dict[str, Any], ack_id: int) -> Any:
        self.send(f"42{ack_id}" + json.dumps([event, payload]))
        while True:
            packet = await self.receive()
            if packet == "2":  # Engine.IO ping
                self.send("3")
            elif packet.startswith(f"43{ack_id}"):
                return json.loads(packet[len(f"43{ack_id}") :])[0]

    async def closed_by_server(self) -> bool:
        """Drain what was buffered; True once the hub has closed the connection."""
        try:
            while await self.reader.read(65536):
                pass
        except ConnectionError:
            return True
        return True

    def close(self) -> None:
        self.writer.close()


async def _board(hub: Hub) -> tuple[Account, Account, Account, str]:
    alice, bob, carol = [await hub.register(n) for n in ("Alice", "Bob", "Carol")]
    board_id = await hub.create_board(alice)
    await hub.add_member(alice, board_id, bob, "editor")
    await hub.add_member(alice, board_id, carol, "editor")
    return alice, bob, carol, board_id


async def test_a_client_that_stops_reading_is_dropped_and_holds_no_one_back(
    start_hub: Any,
) -> None:
    hub: Hub = await start_hub(OUTBOUND_BUFFER_BYTES=str(BUFFER_BOUND))
    alice, bob, carol, board_id = await _board(hub)
    sender, listener = await hub.peer(alice), await hub.peer(bob)
    slow = await RawSocketIO.connect(hub.url, carol.access_token)
    try:
        joined = await sender.call("board:join", {"board_id": board_id})
        channel_id = joined["data"]["channel_id"]
        await listener.call("board:join", {"board_id": board_id})
        assert (await slow.call("board:join", {"board_id": board_id}, ack_id=1))["ok"]
        # from here on the slow reader reads nothing

        for n in range(MESSAGES):
            sent = await sender.call("chat:send", {"channel_id": channel_id, "body": f"{n}{BODY}"})
            assert sent["ok"], sent
        got = await listener.wait_for("chat:message", MESSAGES, timeout=30)
        assert [int(m["body"][: -len(BODY)]) for m in got] == list(range(MESSAGES))

        # dropped, so it left the board for everyone else
        left = {"board_id": board_id, "user": {"id": carol.id, "name": "Carol"}, "state": "left"}
        for _ in range(100):
            if left in listener.events("presence"):
                break
            await asyncio.sleep(0.1)
        assert left in listener.events("presence")
        listed = await listener.call("presence:list", {"board_id": board_id})
        assert carol.id not in {u["id"] for u in listed["data"]["users"]}
        assert await asyncio.wait_for(slow.closed_by_server(), 10)
    finally:
        slow.close()
        await sender.close()
        await listener.close()


async def test_a_client_that_reads_slowly_but_keeps_up_stays(start_hub: Any) -> None:
    """The bound is on what is unread, not on how much is sent: a reader behind by
    less than the bound is never dropped, however much passes through it."""
    hub: Hub = await start_hub(OUTBOUND_BUFFER_BYTES=str(BUFFER_BOUND * 4))
    alice, _, carol, board_id = await _board(hub)
    sender = await hub.peer(alice)
    reader = await RawSocketIO.connect(hub.url, carol.access_token)
    try:
        channel_id = (await sender.call("board:join", {"board_id": board_id}))["data"]["channel_id"]
        assert (await reader.call("board:join", {"board_id": board_id}, ack_id=1))["ok"]
        seen = 0
        for n in range(40):  # 400 KB in all, more than the bound, never far behind
            await sender.call("chat:send", {"channel_id": channel_id, "body": f"{n}{BODY}"})
            while seen <= n:
                packet = await asyncio.wait_for(reader.receive(), 10)
                if packet.startswith('42["chat:message"'):
                    seen += 1
        assert seen == 40
        listed = await sender.call("presence:list", {"board_id": board_id})
        assert carol.id in {u["id"] for u in listed["data"]["users"]}
    finally:
        reader.close()
        await sender.close()
