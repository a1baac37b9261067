"""The broadcast fast path (hub/fanout) is invisible on the wire: real clients get,
byte for byte, what stock python-socketio sends them.

The hub's own server factory and a stock `socketio.AsyncServer` with the same
options each serve the same clients and run the same emits. Each client records
the raw Engine.IO data it is handed (the raw client: whole websocket frames,
headers included), and the two recordings must be equal once the session ids,
the only thing the servers are free to choose, are masked. The decoded events
must also be what was emitted, so a fast path and a stock path that broke
the same way would not pass either.

The clients are the ones users have: python-socketio's `AsyncClient` over
websocket, over long-polling upgraded to websocket and over long-polling only
(see POLLING_ROLES for what it can be compared on); the official Node
socket.io-client (tests/hub/wire_client.js, from bench/node_modules) over
websocket and upgrading; and a raw websocket client that reads frames off the TCP
stream, to prove the frame headers as well (all three length encodings). Node
is required: without it the test fails rather than skips.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import struct
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol
from urllib.parse import urlsplit

import pytest
import socketio
from aiohttp import web
from aiohttp.test_utils import TestServer
from socketio import packet as sio_packet
from socketio.msgpack_packet import MsgPackPacket

from hub.app import socketio_channel, socketio_server
from hub.config import Settings
from hub.fanout.servers import HubRedisManager
from hub.fanout.socket import DirectSocket
from protocol.serializers import Serializer

ROOT: Final = Path(__file__).resolve().parents[2]
NODE_CLIENT: Final = Path(__file__).with_name("wire_client.js")
BENCH_MODULES: Final = ROOT / "bench" / "node_modules"

ROOM: Final = "wire"
SECOND_ROOM: Final = "second"
EMPTY_ROOM: Final = "nobody-here"

PY_WEBSOCKET: Final = "python-websocket"
PY_UPGRADE: Final = "python-upgrade"
PY_POLLING: Final = "python-polling"
NODE_WEBSOCKET: Final = "node-websocket"
NODE_UPGRADE: Final = "node-upgrade"
RAW_WEBSOCKET: Final = "raw-websocket"
ROLES: Final = (PY_WEBSOCKET, PY_UPGRADE, PY_POLLING, NODE_WEBSOCKET, NODE_UPGRADE, RAW_WEBSOCKET)
# Stock python-socketio builds one Engine.IO packet per broadcast and shares it among
# the recipients; engineio caches a packet's first encoding, so once a websocket
# recipient has encoded a binary packet (raw bytes), a long-polling recipient's
# poll answers it with the same cache where it needs base64 text, fails (HTTP 500)
# and the client is dropped. The stock reference cannot deliver binary packets to a
# polling client that shares a room with websocket clients, so there is nothing to
# compare with: the polling client skips binary broadcasts, and with msgpack (every
# packet binary) it is left out here; `test_msgpack_broadcast_to_polling_clients`
# covers a room of polling clients only, which stock serves.
POLLING_ROLES: Final = frozenset({PY_POLLING})
# the members of SECOND_ROOM, for the emit to a list of rooms
IN_SECOND_ROOM: Final = frozenset({PY_UPGRADE, NODE_WEBSOCKET, RAW_WEBSOCKET})

ASK: Final = {"question": "ça va ? 🙂", "n": 1}
END: Final = "end"
WAIT: Final = 5.0

BLOB: Final = bytes(range(256)) + b"\x00\xff\xfe"


def _packet_class(serializer: Serializer) -> type[sio_packet.Packet]:
    return MsgPackPacket if serializer is Serializer.MSGPACK else sio_packet.Packet


def _message_bytes(serializer: Serializer, event: str, *args: Any) -> bytes:
    """The websocket payload of an Engine.IO MESSAGE carrying this event."""
    encoded = _packet_class(serializer)(
        sio_packet.EVENT, namespace="/", data=[event, *args]
    ).encode()
    if isinstance(encoded, bytes):
        return encoded
    assert isinstance(encoded, str)
    return ("4" + encoded).encode()


def _padded(serializer: Serializer, event: str, size: int) -> str:
    """A string that makes `event`'s websocket payload exactly `size` bytes: sizes at
    the edges of the 7-bit, 16-bit and 64-bit frame length encodings."""
    filler = size - len(_message_bytes(serializer, event, ""))
    while len(_message_bytes(serializer, event, "x" * filler)) > size:
        filler -= 1
    assert len(_message_bytes(serializer, event, "x" * filler)) == size
    return "x" * filler


def _broadcasts(serializer: Serializer) -> list[tuple[str, Any]]:
    """What goes to the whole room: every kind of value, and every frame length form."""
    sized = [
        (f"size-{size}", _padded(serializer, f"size-{size}", size))
        for size in (125, 126, 65535, 65536, 100_000)
    ]
    return [
        ("ascii", "hello, room"),
        ("unicode", "héllo wörld — ✓ 日本語 🚀👩‍💻"),
        ("ünï:event", {"é": "ü", "emoji": "🎉"}),
        (
            "nested",
            {"a": [1, 2, {"b": None, "c": True, "d": False}], "e": {"f": -1.5, "g": 2**40}},
        ),
        ("number", 42),
        ("float", 0.1),
        ("true", True),
        ("nothing", None),
        ("empty", ""),
        ("empty-containers", {"list": [], "dict": {}}),
        ("tuple", (1, "two", [3], {"four": 4}, None, False)),
        # JSON: a BINARY_EVENT plus an attachment (the stock path); msgpack: one packet
        ("bytes", BLOB),
        ("bytes-inside", {"name": "blob.bin", "content": BLOB[:10], "more": [b"", b"\x01"]}),
        *sized,
        ("unicode-medium", "日本語🚀" * 200),
    ]


def _args(data: Any) -> list[Any]:
    """The handler arguments an emit of `data` arrives as."""
    if isinstance(data, tuple):
        return list(data)
    return [] if data is None else [data]


def _roles(serializer: Serializer) -> tuple[str, ...]:
    """The clients of one session (see POLLING_ROLES for why msgpack has no poller)."""
    if serializer is Serializer.MSGPACK:
        return tuple(role for role in ROLES if role not in POLLING_ROLES)
    return ROLES


def _binary(data: Any) -> bool:
    return bool(sio_packet.Packet.data_is_binary(_args(data)))


def _expected_events(serializer: Serializer, role: str) -> list[tuple[str, list[Any]]]:
    """The events `role` must decode, in order, from `_drive`'s emits."""
    events = [
        (event, _args(data))
        for event, data in _broadcasts(serializer)
        if not (role in POLLING_ROLES and _binary(data))
    ]
    if role == PY_WEBSOCKET:
        events.append(("direct", ["to you only"]))
    if role != NODE_WEBSOCKET:
        events.append(("all-but-one", ["skip one"]))
    if role not in (RAW_WEBSOCKET, PY_UPGRADE):
        events.append(("all-but-two", ["skip two"]))
    if role in IN_SECOND_ROOM:
        events.append(("some-rooms", ["second and empty"]))
    events.append(("overlapping-rooms", ["once each"]))
    events.append(("ask", [ASK]))
    events.append((END, [END]))
    return events


async def _drive(server: socketio.AsyncServer, sids: dict[str, str]) -> dict[str, Any]:
    """The emits both servers make, in the same order; returns each client's ack."""
    pollers = [sid for role, sid in sids.items() if role in POLLING_ROLES]
    for event, data in _broadcasts(_serializer_of(server)):
        await server.emit(event, data, to=ROOM, skip_sid=pollers if _binary(data) else None)
    await server.emit("direct", "to you only", to=sids[PY_WEBSOCKET])
    await server.emit("all-but-one", "skip one", room=ROOM, skip_sid=sids[NODE_WEBSOCKET])
    await server.emit(
        "all-but-two", "skip two", room=ROOM, skip_sid=[sids[RAW_WEBSOCKET], sids[PY_UPGRADE]]
    )
    await server.emit("some-rooms", "second and empty", to=[SECOND_ROOM, EMPTY_ROOM])
    await server.emit("overlapping-rooms", "once each", to=[ROOM, SECOND_ROOM])
    acks = {role: await server.call("ask", ASK, to=sid, timeout=WAIT) for role, sid in sids.items()}
    await server.emit(END, END, to=ROOM)
    return acks


def _serializer_of(server: socketio.AsyncServer) -> Serializer:
    return Serializer.MSGPACK if issubclass(server.packet_class, MsgPackPacket) else Serializer.JSON


def _masked(data: str | bytes, sid: str) -> str | bytes:
    """`data` with its one occurrence of `sid` blanked, the same length so that a
    frame header around it stays as it was."""
    if isinstance(data, str):
        assert data.count(sid) == 1, (sid, data)
        return data.replace(sid, "#" * len(sid))
    assert data.count(sid.encode()) == 1, (sid, data)
    return data.replace(sid.encode(), b"#" * len(sid))


@dataclass
class Recording:
    """What one client was handed: raw data in arrival order (the session ids masked)
    and the decoded events."""

    raw: list[str | bytes]
    events: list[tuple[str, list[Any]]]


class WireClient(Protocol):
    role: str
    sid: str

    async def finish(self) -> Recording: ...

    async def close(self) -> None: ...


class PythonClient:
    """python-socketio's client; its raw data is what Engine.IO hands to the handler
    python-socketio registers for 'message' (one Socket.IO packet or attachment)."""

    def __init__(self, role: str, serializer: Serializer) -> None:
        self.role = role
        self.sid = ""
        self.client = socketio.AsyncClient(
            reconnection=False, serializer=serializer.python_socketio
        )
        self.raw: list[str | bytes] = []
        self.events: list[tuple[str, list[Any]]] = []
        self.ended = asyncio.Event()
        dispatch = self.client.eio.handlers["message"]

        async def record_raw(data: str | bytes) -> None:
            self.raw.append(data)
            await dispatch(data)

        self.client.eio.handlers["message"] = record_raw

        @self.client.on("*")
        async def record(event: str, *args: Any) -> Any:
            self.events.append((event, list(args)))
            if event == END:
                self.ended.set()
            if event == "ask":
                return {"client": "python", "got": list(args)}
            return None

    async def start(self, url: str, path: str, transports: list[str] | None) -> None:
        await self.client.connect(url, transports=transports, socketio_path=path, wait_timeout=WAIT)
        self.sid = self.client.get_sid("/") or ""
        expected = "polling" if transports == ["polling"] else "websocket"
        assert self.client.eio.transport() == expected, self.role

    async def finish(self) -> Recording:
        await asyncio.wait_for(self.ended.wait(), WAIT)
        raw = [_masked(self.raw[0], self.sid), *self.raw[1:]]
        return Recording(raw, self.events)

    async def close(self) -> None:
        """After the server hung up: the connection's tasks end. engineio answers a
        pending poll of a closed connection only after ping interval + ping timeout
        (stock and fast path alike), so a long-polling client stops waiting for it."""
        eio = self.client.eio
        if eio.transport() == "polling" and eio.read_loop_task is not None:
            eio.read_loop_task.cancel()
        with suppress(asyncio.CancelledError):
            await asyncio.wait_for(eio.wait(), WAIT)
        await eio.disconnect(abort=True)  # closes its HTTP session


def _from_node(value: Any) -> Any:
    """Undo wire_client.js's {"$bytes": base64} for binary values."""
    if isinstance(value, list):
        return [_from_node(item) for item in value]
    if isinstance(value, dict):
        if value.keys() == {"$bytes"}:
            return base64.b64decode(value["$bytes"])
        return {key: _from_node(item) for key, item in value.items()}
    return value


class NodeClient:
    """The official socket.io-client in a Node process; its raw data is the `data` of
    each Engine.IO message packet, as engine.io-client emits it."""

    def __init__(self, role: str) -> None:
        self.role = role
        self.sid = ""
        self.lines: list[dict[str, Any]] = []
        self._proc: asyncio.subprocess.Process | None = None
        self._stderr = b""
        self._reader: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self._upgraded = asyncio.Event()
        self._ended = asyncio.Event()

    async def start(self, url: str, path: str, serializer: Serializer, transports: str) -> None:
        node = shutil.which("node")
        assert node, "node is not installed: this test needs the official socket.io-client"
        self._proc = await asyncio.create_subprocess_exec(
            node,
            str(NODE_CLIENT),
            url,
            path,
            serializer.value,
            transports,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            limit=16 * 1024 * 1024,  # a line holds a whole 100 kB payload
        )
        # read all along: a full pipe would block node and with it its acks
        self._reader = asyncio.create_task(self._read())
        try:
            await asyncio.wait_for(self._connected.wait(), WAIT)
            if transports == "polling,websocket":
                # the broadcasts must find it on websocket: see POLLING_ROLES
                await asyncio.wait_for(self._upgraded.wait(), WAIT)
        except TimeoutError:
            raise AssertionError(f"{self.role} did not connect: {await self._failure()}") from None

    async def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        async for line in self._proc.stdout:
            parsed = json.loads(line)
            self.lines.append(parsed)
            if parsed["kind"] == "connect":
                self.sid = parsed["sid"]
                self._connected.set()
            elif parsed["kind"] == "upgrade":
                self._upgraded.set()
            elif parsed["kind"] == "event" and parsed["name"] == END:
                self._ended.set()

    async def _failure(self) -> str:
        assert self._proc is not None and self._proc.stderr is not None
        if self._proc.returncode is None:
            return f"still running; stdout so far: {self.lines}"
        stderr = await self._proc.stderr.read()
        return f"exit {self._proc.returncode}: {stderr.decode()} {self.lines}"

    async def finish(self) -> Recording:
        try:
            await asyncio.wait_for(self._ended.wait(), WAIT)
        except TimeoutError:
            raise AssertionError(f"{self.role} saw no {END!r}: {await self._failure()}") from None
        raw: list[str | bytes] = []
        events: list[tuple[str, list[Any]]] = []
        for line in self.lines:
            if line["kind"] == "packet":
                raw.append(line["text"] if "text" in line else base64.b64decode(line["binary"]))
            elif line["kind"] == "event":
                events.append((line["name"], _from_node(line["args"])))
        raw[0] = _masked(raw[0], self.sid)
        return Recording(raw, events)

    async def close(self) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.returncode is None:
            assert proc.stdin is not None
            proc.stdin.close()  # the script disconnects and exits
            try:
                await asyncio.wait_for(proc.wait(), WAIT)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        if self._reader is not None:
            await self._reader
        assert proc.stderr is not None
        self._stderr = await proc.stderr.read()
        assert proc.returncode == 0, (self.role, proc.returncode, self._stderr.decode())


# websocket opcodes (RFC 6455)
TEXT: Final = 0x1
BINARY: Final = 0x2
CLOSE: Final = 0x8


class RawWebSocketClient:
    """A websocket client written out by hand on a TCP stream, keeping each frame's
    bytes as they came (header included); it never offers permessage-deflate, so
    both servers send plain frames. Socket.IO it speaks by hand too: CONNECT, and an
    ACK for an event that asks for one."""

    def __init__(self, role: str, serializer: Serializer) -> None:
        self.role = role
        self.sid = ""
        self.serializer = serializer
        self.packet_class = _packet_class(serializer)
        self.frames: list[bytes] = []
        self.events: list[tuple[str, list[Any]]] = []
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._loop: asyncio.Task[None] | None = None
        self._engine_sid = ""

    async def start(self, url: str, path: str) -> None:
        parts = urlsplit(url)
        assert parts.hostname is not None and parts.port is not None
        self._reader, self._writer = await asyncio.open_connection(parts.hostname, parts.port)
        key = base64.b64encode(os.urandom(16)).decode()
        self._writer.write(
            (
                f"GET {path}?EIO=4&transport=websocket HTTP/1.1\r\n"
                f"Host: {parts.netloc}\r\n"
                "Upgrade: websocket\r\n"
                "Connection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        head = await asyncio.wait_for(self._reader.readuntil(b"\r\n\r\n"), WAIT)
        assert head.startswith(b"HTTP/1.1 101 "), head
        assert b"sec-websocket-extensions" not in head.lower(), head

        opcode, payload = await asyncio.wait_for(self._frame(), WAIT)
        assert opcode == TEXT and payload.startswith(b"0"), payload  # Engine.IO OPEN
        self._engine_sid = json.loads(payload[1:])["sid"]

        self._send_packet(self.packet_class(sio_packet.CONNECT, namespace="/"))
        opcode, payload = await asyncio.wait_for(self._frame(), WAIT)
        if self.serializer is Serializer.MSGPACK:
            connected = self.packet_class(encoded_packet=payload)
        else:
            assert payload.startswith(b"4"), payload
            connected = self.packet_class(encoded_packet=payload[1:].decode())
        assert connected.packet_type == sio_packet.CONNECT, payload
        self.sid = connected.data["sid"]
        self._loop = asyncio.create_task(self._receive())

    async def _frame(self) -> tuple[int, bytes]:
        """One whole frame, kept in `frames` as read; returns its opcode and payload."""
        assert self._reader is not None
        head = await self._reader.readexactly(2)
        assert head[0] & 0x80, "a fragmented frame"  # FIN: servers send whole messages
        assert not head[1] & 0x80, "a server must not mask"
        length = head[1] & 0x7F
        extended = b""
        if length == 126:
            extended = await self._reader.readexactly(2)
            (length,) = struct.unpack("!H", extended)
        elif length == 127:
            extended = await self._reader.readexactly(8)
            (length,) = struct.unpack("!Q", extended)
        payload = await self._reader.readexactly(length)
        self.frames.append(head + extended + payload)
        return head[0] & 0x0F, payload

    def _send(self, opcode: int, payload: bytes) -> None:
        """A client's frames are masked (RFC 6455 5.3); ours are all short."""
        assert self._writer is not None and len(payload) < 65536
        mask = os.urandom(4)
        if len(payload) < 126:
            header = struct.pack("!BB", 0x80 | opcode, 0x80 | len(payload))
        else:
            header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, len(payload))
        masked = bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))
        self._writer.write(header + mask + masked)

    def _send_packet(self, pkt: sio_packet.Packet) -> None:
        encoded = pkt.encode()
        if isinstance(encoded, bytes):
            self._send(BINARY, encoded)
        else:
            assert isinstance(encoded, str)
            self._send(TEXT, ("4" + encoded).encode())

    async def _receive(self) -> None:
        """Decode events until END, answering the one that asks for an ack."""
        pending: sio_packet.Packet | None = None
        while True:
            opcode, payload = await self._frame()
            if opcode == TEXT:
                assert payload.startswith(b"4"), payload  # a MESSAGE; no ping comes this soon
                pkt = self.packet_class(encoded_packet=payload[1:].decode())
                if pkt.attachment_count:
                    pending = pkt
                    continue
            elif opcode == BINARY and pending is not None:
                if not pending.add_attachment(payload):
                    continue
                pkt, pending = pending, None
            elif opcode == BINARY:
                pkt = self.packet_class(encoded_packet=payload)
            else:
                raise AssertionError(f"unexpected frame {opcode}: {payload!r}")
            assert pkt.packet_type in (sio_packet.EVENT, sio_packet.BINARY_EVENT), payload
            event, *args = pkt.data
            self.events.append((event, args))
            if pkt.id is not None:
                reply = {"client": "raw", "got": args}
                self._send_packet(
                    self.packet_class(sio_packet.ACK, namespace="/", data=[reply], id=pkt.id)
                )
            if event == END:
                return

    async def finish(self) -> Recording:
        assert self._loop is not None
        await asyncio.wait_for(asyncio.shield(self._loop), WAIT)
        frames: list[str | bytes] = [
            _masked(self.frames[0], self._engine_sid),
            _masked(self.frames[1], self.sid),
            *self.frames[2:],
        ]
        return Recording(frames, self.events)

    async def close(self) -> None:
        if self._loop is not None:
            self._loop.cancel()
            with suppress(asyncio.CancelledError):
                await self._loop
        if self._writer is not None:
            self._writer.close()
            with suppress(ConnectionError):
                await self._writer.wait_closed()


def _fast_server(settings: Settings, serializer: Serializer) -> socketio.AsyncServer:
    """The hub's server, on a Socket.IO channel of its own."""
    return socketio_server(settings, serializer, socketio_channel(settings))


def _stock_server(like: socketio.AsyncServer, redis_url: str) -> socketio.AsyncServer:
    """Stock python-socketio with the options of the hub's server, read back from it
    so the two cannot drift apart."""
    return socketio.AsyncServer(
        async_mode="aiohttp",
        client_manager=socketio.AsyncRedisManager(redis_url, channel=f"stock-{uuid.uuid4().hex}"),
        serializer=_serializer_of(like).python_socketio,
        cors_allowed_origins=like.eio.cors_allowed_origins,
        ping_interval=like.eio.ping_interval,
        ping_timeout=like.eio.ping_timeout,
        max_http_buffer_size=like.eio.max_http_buffer_size,
    )


@asynccontextmanager
async def _serving(server: socketio.AsyncServer, path: str) -> AsyncIterator[str]:
    """`server` on a loopback port of its own aiohttp app; yields the base URL. The
    Redis listener the manager started is cancelled and its connections closed."""

    @server.event
    async def connect(sid: str, environ: dict[str, Any], auth: Any) -> None:
        await server.enter_room(sid, ROOM)

    app = web.Application()
    server.attach(app, socketio_path=path)
    http = TestServer(app, host="127.0.0.1")
    await http.start_server()
    try:
        yield str(http.make_url("")).rstrip("/")
    finally:
        await server.shutdown()
        await http.close()
        await _stop_manager(server.manager)


async def _stop_manager(manager: Any) -> None:
    """The hub's manager and its channel closed; or stock python-socketio's Redis
    listener cancelled and its clients closed (it has no stop of its own)."""
    if isinstance(manager, HubRedisManager):
        await manager.bus.close()  # and the manager
        return
    listener: asyncio.Task[None] | None = getattr(manager, "thread", None)
    if listener is not None:
        listener.cancel()
        with suppress(asyncio.CancelledError):
            await listener
    if manager.pubsub is not None:
        await manager.pubsub.aclose()
    if manager.redis is not None:
        await manager.redis.aclose()


async def _session(
    server: socketio.AsyncServer, serializer: Serializer, *, fast: bool
) -> tuple[dict[str, Recording], dict[str, Any]]:
    """Connect one client of every role, run `_drive`, and collect what each saw."""
    path = serializer.socketio_path
    roles = _roles(serializer)
    async with _serving(server, path) as url:
        clients: dict[str, WireClient] = {}
        try:
            for role, transports in (
                (PY_WEBSOCKET, ["websocket"]),
                (PY_UPGRADE, None),
                (PY_POLLING, ["polling"]),
            ):
                if role in roles:
                    python = PythonClient(role, serializer)
                    clients[role] = python
                    await python.start(url, path, transports)
            for role, node_transports in (
                (NODE_WEBSOCKET, "websocket"),
                (NODE_UPGRADE, "polling,websocket"),
            ):
                node = NodeClient(role)
                clients[role] = node
                await node.start(url, path, serializer, node_transports)
            raw = RawWebSocketClient(RAW_WEBSOCKET, serializer)
            clients[RAW_WEBSOCKET] = raw
            await raw.start(url, path)

            sids = {role: client.sid for role, client in clients.items()}
            for role in IN_SECOND_ROOM:
                await server.enter_room(sids[role], SECOND_ROOM)
            if fast:
                _assert_fast_path_in_use(server, sids)
            acks = await _drive(server, sids)
            recordings = {role: await client.finish() for role, client in clients.items()}
        finally:
            # the server hangs up: a python client closing a long-polling connection
            # itself waits out its pending poll (up to ping interval + timeout)
            for client in clients.values():
                if client.sid:
                    await server.disconnect(client.sid)
            for client in clients.values():
                await client.close()
    return recordings, acks


def _assert_fast_path_in_use(server: socketio.AsyncServer, sids: dict[str, str]) -> None:
    """Without this the test could compare stock with stock: websocket connections
    must have their frame writer, the polling one must not."""
    for role, sid in sids.items():
        socket = server.eio.sockets[server.manager.eio_sid_from_sid(sid, "/")]
        assert isinstance(socket, DirectSocket), role
        assert (socket.frames is None) == (role in POLLING_ROLES), role


@pytest.mark.parametrize("serializer", list(Serializer))
async def test_fast_path_broadcasts_are_byte_identical_to_stock(
    serializer: Serializer, make_settings: Callable[..., Settings]
) -> None:
    assert BENCH_MODULES.is_dir(), "run `npm ci --prefix bench` (make test does)"
    settings = make_settings(SOCKETIO_CHANNEL=f"fast-{uuid.uuid4().hex}")
    fast = _fast_server(settings, serializer)
    stock = _stock_server(fast, settings.redis_url)

    fast_seen, fast_acks = await _session(fast, serializer, fast=True)
    stock_seen, stock_acks = await _session(stock, serializer, fast=False)

    assert fast_seen.keys() == stock_seen.keys() == set(_roles(serializer))
    for role in _roles(serializer):
        expected = _expected_events(serializer, role)
        assert stock_seen[role].events == expected, f"stock, {role}"
        assert fast_seen[role].events == expected, f"fast path, {role}"
        got, want = fast_seen[role].raw, stock_seen[role].raw
        for index, (fast_item, stock_item) in enumerate(zip(got, want, strict=False)):
            assert fast_item == stock_item, f"{role}, item {index}"
        assert len(got) == len(want), role
    for role in _roles(serializer):
        kind = role.split("-")[0]  # how each client signs its ack
        assert fast_acks[role] == stock_acks[role] == {"client": kind, "got": [ASK]}, role


class Undelivered(Exception):
    """A client of the fast path missed broadcasts that stock python-socketio delivered."""


async def _polling_session(
    server: socketio.AsyncServer, serializer: Serializer
) -> dict[str, Recording]:
    """A room of long-polling clients only (python and Node) hears a few broadcasts."""
    path = serializer.socketio_path
    async with _serving(server, path) as url:
        python = PythonClient(PY_POLLING, serializer)
        node = NodeClient("node-polling")
        clients: dict[str, WireClient] = {python.role: python, node.role: node}
        try:
            await python.start(url, path, ["polling"])
            await node.start(url, path, serializer, "polling")
            for event, data in POLLING_BROADCASTS:
                await server.emit(event, data, to=ROOM)
            await server.emit(END, END, to=ROOM)
            recordings = {}
            for role, client in clients.items():
                try:
                    recordings[role] = await client.finish()
                except (TimeoutError, AssertionError) as exc:
                    raise Undelivered(role) from exc
        finally:
            for client in clients.values():
                if client.sid:
                    await server.disconnect(client.sid)
            for client in clients.values():
                await client.close()
    return recordings


POLLING_BROADCASTS: Final = [("ascii", "hello, room"), ("unicode", "日本語🚀"), ("bytes", BLOB)]


async def test_msgpack_broadcast_to_polling_clients(
    make_settings: Callable[..., Settings],
) -> None:
    """With msgpack every packet is binary. Stock python-socketio delivers broadcasts
    to a room of long-polling clients (their polls are the first to encode the
    packet); the fast path must as well, byte for byte."""
    settings = make_settings(SOCKETIO_CHANNEL=f"fast-{uuid.uuid4().hex}")
    fast = _fast_server(settings, Serializer.MSGPACK)
    stock = _stock_server(fast, settings.redis_url)
    try:
        stock_seen = await _polling_session(stock, Serializer.MSGPACK)
    except Undelivered as exc:
        raise AssertionError("stock python-socketio no longer serves polling clients") from exc
    fast_seen = await _polling_session(fast, Serializer.MSGPACK)

    expected = [(event, _args(data)) for event, data in [*POLLING_BROADCASTS, (END, END)]]
    for role, seen in stock_seen.items():
        assert seen.events == expected, f"stock, {role}"
        assert fast_seen[role].events == expected, f"fast path, {role}"
        assert fast_seen[role].raw == seen.raw, role


@pytest.mark.parametrize("serializer", list(Serializer))
async def test_binary_broadcasts_reach_websocket_and_polling_clients_in_one_room(
    serializer: Serializer, make_settings: Callable[..., Settings]
) -> None:
    """Beyond stock: python-socketio shares one Engine.IO packet between a broadcast's
    recipients, so once a websocket recipient encoded a binary packet, a polling
    recipient's poll fails on the cached raw bytes and it is dropped. The hub gives
    each queued recipient a packet of its own."""
    settings = make_settings(SOCKETIO_CHANNEL=f"fast-{uuid.uuid4().hex}")
    server = _fast_server(settings, serializer)
    path = serializer.socketio_path
    async with _serving(server, path) as url:
        websocket = PythonClient(PY_WEBSOCKET, serializer)
        polling = PythonClient(PY_POLLING, serializer)
        try:
            await websocket.start(url, path, ["websocket"])
            await polling.start(url, path, ["polling"])
            for event, data in POLLING_BROADCASTS:
                await server.emit(event, data, to=ROOM)
            await server.emit(END, END, to=ROOM)
            expected = [(event, _args(data)) for event, data in [*POLLING_BROADCASTS, (END, END)]]
            assert (await websocket.finish()).events == expected
            assert (await polling.finish()).events == expected
        finally:
            for client in (websocket, polling):
                if client.sid:
                    await server.disconnect(client.sid)
            for client in (websocket, polling):
                await client.close()
