"""Helpers that act as a user would: REST calls and real Socket.IO clients."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import struct
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import asyncpg
import socketio
from aiohttp import web
from aiohttp.test_utils import TestServer

from hub.config import Settings
from protocol.serializers import Serializer


@dataclass
class Hub:
    url: str
    app: web.Application
    server: TestServer
    settings: Settings

    async def request(
        self, method: str, path: str, *, token: str | None = None, json: Any = None, **kw: Any
    ) -> tuple[int, Any]:
        headers = kw.pop("headers", {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        async with (
            aiohttp.ClientSession() as session,
            session.request(method, self.url + path, json=json, headers=headers, **kw) as resp,
        ):
            body = (
                await resp.json() if resp.content_type == "application/json" else await resp.text()
            )
            return resp.status, body

    async def register(self, name: str = "User", email: str | None = None) -> Account:
        email = email or f"{name.lower().replace(' ', '.')}.{uuid.uuid4().hex[:8]}@example.com"
        status, body = await self.request(
            "POST",
            "/api/auth/register",
            json={"email": email, "name": name, "password": "s3cret-pass"},
        )
        assert status == 201, body
        return Account(
            id=body["user"]["id"],
            email=email,
            password="s3cret-pass",
            access_token=body["access_token"],
            refresh_token=body["refresh_token"],
        )

    async def create_board(self, owner: Account, name: str = "Board") -> str:
        status, body = await self.request(
            "POST", "/api/boards", token=owner.access_token, json={"name": name}
        )
        assert status == 201, body
        return str(body["id"])

    async def add_member(self, owner: Account, board_id: str, member: Account, role: str) -> None:
        status, body = await self.request(
            "POST",
            f"/api/boards/{board_id}/members",
            token=owner.access_token,
            json={"email": member.email, "role": role},
        )
        assert status == 201, body

    async def db(self) -> asyncpg.Connection:
        return await asyncpg.connect(self.settings.database_url)

    async def peer(self, account: Account, *, msgpack: bool = False, **kw: Any) -> Peer:
        """A connected client; `msgpack=True` speaks msgpack on the msgpack path."""
        peer = (
            Peer.msgpack(self.url, account.access_token)
            if msgpack
            else Peer(self.url, account.access_token)
        )
        await peer.connect(**kw)
        return peer


@dataclass
class Account:
    id: str
    email: str
    password: str
    access_token: str
    refresh_token: str


@dataclass
class Peer:
    """A Socket.IO client over a real websocket that records what it receives."""

    url: str
    token: str
    sio: socketio.AsyncClient = field(
        default_factory=lambda: socketio.AsyncClient(reconnection=False)
    )
    received: list[tuple[str, Any]] = field(default_factory=list)
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)
    socketio_path: str = Serializer.JSON.socketio_path

    @classmethod
    def msgpack(cls, url: str, token: str) -> Peer:
        return cls(
            url,
            token,
            sio=socketio.AsyncClient(reconnection=False, serializer="msgpack"),
            socketio_path=Serializer.MSGPACK.socketio_path,
        )

    async def connect(self, transports: list[str] | None = None) -> None:
        @self.sio.on("*")
        async def record(event: str, data: Any) -> None:
            self.received.append((event, data))
            self._arrived.set()

        await self.sio.connect(
            self.url,
            auth={"token": self.token},
            # as the hub's own page does: people's tokens come from browsers
            headers={"Origin": self.url},
            transports=transports or ["websocket"],
            socketio_path=self.socketio_path,
            wait_timeout=5,
        )

    async def call(self, event: str, *payload: Any, timeout: float = 10) -> Any:
        return await self.sio.call(
            event, payload[0] if len(payload) == 1 else payload, timeout=timeout
        )

    def events(self, name: str) -> list[Any]:
        return [data for event, data in self.received if event == name]

    async def wait_for(self, name: str, count: int = 1, timeout: float = 5) -> list[Any]:
        """Wait until `count` events called `name` arrived; returns all of them."""
        deadline = asyncio.get_running_loop().time() + timeout
        while len(self.events(name)) < count:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise AssertionError(
                    f"got {len(self.events(name))} of {count} {name!r} events: {self.received}"
                )
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except TimeoutError:
                pass
        return self.events(name)

    async def close(self) -> None:
        await self.sio.disconnect()


async def new_bot(hub: Hub, creator: Account, name: str = "Robot", **fields: Any) -> dict[str, Any]:
    status, body = await hub.request(
        "POST", "/api/bots", token=creator.access_token, json={"name": name, **fields}
    )
    assert status == 201, body
    return body  # type: ignore[no-any-return]


@dataclass
class Token:
    id: str
    secret: str
    body: dict[str, Any]


async def new_token(
    hub: Hub, manager: Account, bot_id: str, scopes: list[str], **fields: Any
) -> Token:
    status, body = await hub.request(
        "POST",
        f"/api/bots/{bot_id}/tokens",
        token=manager.access_token,
        json={"name": "ci", "scopes": scopes, **fields},
    )
    assert status == 201, body
    return Token(id=body["token"]["id"], secret=body["secret"], body=body)


def presence_states(peer: Peer, user: Account) -> list[str]:
    return [e["state"] for e in peer.events("presence") if e["user"]["id"] == user.id]


async def settled_states(peer: Peer, user: Account, last: str, seconds: float) -> list[str]:
    """The user's presence events as `peer` heard them, once the last one is `last` and
    stayed so for a moment. presence:list reads Redis, so it can show a change before
    the event of that change reached the peer; an event arriving after that would be
    a stale one."""
    for _ in range(int(seconds * 10)):
        if presence_states(peer, user)[-1:] == [last]:
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.5)
    return presence_states(peer, user)


def websocket_handshake(netloc: str, key: str) -> bytes:
    """The HTTP request that opens an Engine.IO websocket with this Sec-WebSocket-Key,
    from the hub's own page (a browser's Origin)."""
    return (
        "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\n"
        f"Host: {netloc}\r\nOrigin: http://{netloc}\r\n"
        "Upgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


def client_frame(
    payload: bytes, opcode: int = 0x1, *, final: bool = True, masked: bool = True, rsv: int = 0
) -> bytes:
    """A websocket frame as a client sends it (masked, RFC 6455), or breaks it."""
    length = len(payload)
    first = (0x80 if final else 0) | rsv | opcode
    mask_bit = 0x80 if masked else 0
    if length < 126:
        head = struct.pack("!BB", first, mask_bit | length)
    elif length < 65536:
        head = struct.pack("!BBH", first, mask_bit | 126, length)
    else:
        head = struct.pack("!BBQ", first, mask_bit | 127, length)
    if not masked:
        return head + payload
    mask = os.urandom(4)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


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
        writer.write(websocket_handshake(parts.netloc, base64.b64encode(os.urandom(16)).decode()))
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head
        client = cls(reader, writer)
        assert (await client.receive()).startswith("0")  # Engine.IO OPEN
        client.send("40" + json.dumps({"token": token}))
        assert (await client.receive()).startswith("40")  # Socket.IO CONNECT
        return client

    def send(self, text: str) -> None:
        """A masked text frame, as RFC 6455 requires of clients."""
        self.writer.write(client_frame(text.encode()))

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
