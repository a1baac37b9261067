"""Packet hygiene (issue 7, point 3): hostile Engine.IO / Socket.IO packets, spoken by
hand over a real websocket to a live hub, JSON and msgpack.

Each case gets its own hub and board: a well-behaved watcher (python-socketio) and
the offender (a raw websocket client, joined to the same board) are connected, the
offender sends the case's frames, and then:

- the offender gets what the case says: its websocket closed (a packet no client
  may send: the hub cannot know what else it would misread, and Node's socket.io
  closes there too), an error ack with a documented code (a well-formed event the
  hub refuses), a CONNECT_ERROR (a CONNECT it cannot grant), or nothing (an ACK for
  an id the hub never sent: the hub asks no client for acks, and an ACK has no
  answer in the protocol; the connection goes on as before);
- no handler saw a closed case's packet (the hub's `taskhub_events_in` counter did
  not move), nothing reached the database, nothing was logged at ERROR, and no
  event-loop error happened (the suite's autouse fixture);
- the hub keeps serving: the watcher creates a task and hears it, and heard nothing
  else but the offender's presence; a closed offender's presence is cleared, one
  still connected keeps working (its own call is answered, it hears the task too).

Where these cases are covered already, and not repeated here: unknown and wrongly
cased event names, the reserved names connect, disconnect, message and
connect_error, every shape of a bad payload and payloads over the limit
(tests/handlers/test_bad_input.py); msgpack payloads holding bytes, extension types
and timestamps (tests/hub/test_msgpack.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from typing import Any, Final, Literal

import aiohttp
import msgpack
import pytest
from socketio import packet as sio_packet
from socketio.msgpack_packet import MsgPackPacket

from protocol.packets import MAX_ATTACHMENTS, MAX_DEPTH
from protocol.serializers import Serializer
from tests.support import Account, Hub, Peer, presence_states

WAIT: Final = 5.0
ACK_ID: Final = 7
TOKEN: Final = "{token}"  # replaced by the offender's access token


@dataclass(frozen=True)
class BadText:
    """Bytes sent in a text frame: not UTF-8, which no text frame may carry."""

    data: bytes


Frame = str | bytes | BadText
Outcome = Literal["close", "ack", "connect_error", "ignored"]


@dataclass(frozen=True)
class Case:
    id: str
    frames: tuple[Frame, ...]
    outcome: Outcome
    code: str | None = None  # the ack's or the connect_error's error code
    msgpack: bool = False


def close(id: str, *frames: Frame) -> Case:
    return Case(id, frames, "close")


def refused(id: str, *frames: Frame) -> Case:
    return Case(id, frames, "ack", code="invalid_payload")


def event(name: Any, payload: Any = None, *, namespace: str = "") -> str:
    """A JSON EVENT packet asking for ack ACK_ID, in an Engine.IO MESSAGE."""
    data = [name] if payload is None else [name, payload]
    return f"42{namespace}{ACK_ID}{json.dumps(data)}"


def nested(depth: int) -> str:
    """An event whose payload is `depth` arrays deep (the event's list makes one more)."""
    return f'42{ACK_ID}["task:create",' + "[" * depth + "]" * depth + "]"


def placeholder(num: Any) -> dict[str, Any]:
    return {"_placeholder": True, "num": num}


RESERVED: Final = (
    "connect",
    "disconnect",
    "connect_error",
    "disconnecting",
    "newListener",
    "removeListener",
    "message",
)
TOO_LARGE: Final = 64 * 1024 * 16 + 1  # past max_http_buffer_size (16 x MAX_PAYLOAD_BYTES)

JSON_CASES: Final[dict[str, list[Case]]] = {
    # Engine.IO: frames that are no packet
    "engineio-not-a-packet": [
        close("text-not-a-packet", "hello"),
        close("text-empty", ""),
        close("text-base64-form", "bNDJbIngiXQ=="),
        close("text-invalid-utf8", BadText(b"4\xff\xfe")),
        close("engineio-type-7", "7"),
        close("engineio-type-9-with-data", '9["task:create",{}]'),
        close("engineio-type-letter", 'x42["task:create",{}]'),
        close("engineio-message-json-true", "4true"),
        close("engineio-message-json-false", "4false"),
    ],
    # binary frames on the JSON server (no binary packet pending)
    "binary-frames": [
        close("binary-frame", b"\x00\x01\x02"),
        close("binary-frame-holding-an-event", event("presence:list", {}).encode()),
    ],
    # Socket.IO: malformed packets
    "socketio-malformed": [
        close("socketio-empty", "4"),
        close("socketio-invalid-json", '427["task:create",{'),
        close("socketio-json-trailing-garbage", '427["task:create",{}]]'),
        close("socketio-type-7", '47["task:create",{}]'),
        close("socketio-type-letter", '4z["task:create",{}]'),
        close("socketio-connect-error-from-client", '44{"message":"hi"}'),
        close("socketio-id-too-long", "42" + "1" * 101 + '["task:create",{}]'),
        close("event-without-data", f"42{ACK_ID}"),
        close("event-empty-array", f"42{ACK_ID}[]"),
        close("event-object", f'42{ACK_ID}{{"0":"task:create"}}'),
        close("event-string", f'42{ACK_ID}"task:create"'),
        close("event-number", f"42{ACK_ID}5"),
        close("event-name-number", event(5, {})),
        close("event-name-null", event(None, {})),
        close("event-name-list", event(["task:create"], {})),
        close("event-name-object", event({"name": "task:create"}, {})),
        close(
            "event-on-namespace-never-connected", event("presence:list", {}, namespace="/admin,")
        ),
        close("ack-on-namespace-never-connected", f'43/admin,{ACK_ID}[{{"ok":true}}]'),
        close("ack-data-not-a-list", f'43{ACK_ID}{{"ok":true}}'),
        close("event-with-attachment-count", f'422-{ACK_ID}["task:create",{{}}]'),
    ],
    # BINARY_EVENT: attachments
    "binary-event-attachments": [
        close("binary-event-no-attachments", f'45{ACK_ID}["task:create",{{}}]'),
        close(
            "binary-event-too-many-attachments",
            f"45{MAX_ATTACHMENTS + 1}-{ACK_ID}" + json.dumps(["task:create", placeholder(0)]),
        ),
        close(
            "binary-event-a-billion-attachments",
            f"451000000000-{ACK_ID}" + json.dumps(["task:create", placeholder(0)]),
        ),
        close(
            "binary-event-fewer-attachments-then-a-packet",
            f"453-{ACK_ID}" + json.dumps(["task:create", placeholder(0)]),
            b"\x00",
            event("presence:list", {}),
        ),
        close(
            "binary-event-placeholder-out-of-range",
            f"451-{ACK_ID}" + json.dumps(["task:create", {"title": placeholder(5)}]),
            b"\x00",
        ),
        close(
            "binary-event-placeholder-not-a-number",
            f"451-{ACK_ID}" + json.dumps(["task:create", {"title": placeholder("x")}]),
            b"\x00",
        ),
        close(
            "binary-event-on-namespace-never-connected",
            f"451-/admin,{ACK_ID}" + json.dumps(["task:create", placeholder(0)]),
            b"\x00",
        ),
    ],
    # nesting and size
    "json-nesting-and-size": [
        close("json-10000-levels", nested(10_000)),
        close("json-past-the-depth-limit", nested(MAX_DEPTH)),
        close(
            "json-objects-1000-levels",
            f'42{ACK_ID}["task:create",' + '{"a":' * 1000 + "1" + "}" * 1000 + "]",
        ),
        close(
            "json-frame-past-max-payload",
            f'42{ACK_ID}["task:create",{{"pad":"' + "x" * TOO_LARGE + '"}]',
        ),
    ],
    # well-formed events the hub refuses
    "json-refused": [
        *[refused(f"reserved-{name}", event(name, {})) for name in RESERVED],
        refused("reserved-disconnect-no-payload", event("disconnect")),
        refused("json-at-the-depth-limit", nested(MAX_DEPTH - 1)),
        refused(
            "binary-event-with-its-attachment",
            f"451-{ACK_ID}"
            + json.dumps(["task:create", {"board_id": "x", "title": placeholder(0)}]),
            b"\x00",
        ),
    ],
    # CONNECTs the hub cannot grant: the connection stays on "/"
    "connect-refused": [
        Case(
            "connect-unknown-namespace",
            (f'40/admin,{{"token":"{TOKEN}"}}',),
            "connect_error",
            "not_found",
        ),
        Case("connect-again", (f'40{{"token":"{TOKEN}"}}',), "connect_error", "conflict"),
    ],
    # an ACK for an id the hub never sent
    "acks-never-asked-for": [
        Case("ack-for-an-id-never-sent", (f'43{ACK_ID}[{{"ok":true}}]',), "ignored"),
        Case("ack-without-data", (f"43{ACK_ID}[]",), "ignored"),
    ],
}


def packed(**fields: Any) -> bytes:
    return msgpack.packb(fields)  # type: ignore[no-any-return]


def mp_event(data: Any, **fields: Any) -> bytes:
    """A msgpack EVENT asking for an ack; `fields` replace or add packet fields."""
    return packed(**{"type": sio_packet.EVENT, "nsp": "/", "id": ACK_ID, "data": data, **fields})


def mp_close(id: str, *frames: Frame) -> Case:
    return Case(f"msgpack-{id}", frames, "close", msgpack=True)


def mp_refused(id: str, *frames: Frame) -> Case:
    return Case(f"msgpack-{id}", frames, "ack", code="invalid_payload", msgpack=True)


def _raw_data(data: bytes) -> bytes:
    """A msgpack EVENT asking for ack ACK_ID whose data is the msgpack `data` as
    given: what msgpack.packb will not make (a container that declares more than
    the frame holds, an int key, nesting past the packer's limit)."""
    return (
        b"\x84"
        + b"".join(
            msgpack.packb(x) for x in ("type", sio_packet.EVENT, "nsp", "/", "id", ACK_ID, "data")
        )
        + data
    )


MSGPACK_CASES: Final[dict[str, list[Case]]] = {
    # malformed msgpack
    "msgpack-malformed": [
        mp_close("never-used-byte", b"\xc1"),
        mp_close("truncated", mp_event(["presence:list", {}])[:-3]),
        mp_close("trailing-bytes", mp_event(["presence:list", {}]) + b"\x00"),
        mp_close("text-frame", event("presence:list", {})),
        mp_close("engineio-binary-as-base64", "bgaVCaw=="),
    ],
    # bombs: a few bytes that declare a huge container or string
    "msgpack-bombs": [
        mp_close("bomb-array", b"\xdd\xff\xff\xff\xff"),
        mp_close("bomb-map", b"\xdf\xff\xff\xff\xff"),
        mp_close("bomb-str", b"\xdb\xff\xff\xff\xff" + b"x"),
        mp_close("bomb-bin", b"\xc6\xff\xff\xff\xff"),
        mp_close("bomb-ext", b"\xc9\xff\xff\xff\xff\x05"),
        mp_close("bomb-in-the-data", _raw_data(b"\xdd\x7f\xff\xff\xff")),
        mp_close("bomb-in-the-payload", _raw_data(b"\x92\xabtask:create\xdf\x7f\xff\xff\xff")),
    ],
    # deep nesting
    "msgpack-deep-nesting": [
        mp_close("2000-levels", b"\x91" * 2000 + b"\xc0"),
        mp_close(
            "past-the-depth-limit",
            _raw_data(b"\x92\xabtask:create" + b"\x91" * MAX_DEPTH + b"\xc0"),
        ),
    ],
    # keys that are not strings
    "msgpack-non-string-keys": [
        mp_close("int-keys", msgpack.packb({1: 2})),
        mp_close(
            "bytes-keys", msgpack.packb({b"type": 2, b"nsp": b"/", b"data": ["presence:list", {}]})
        ),
        mp_close("bytes-key-in-the-payload", mp_event(["task:create", {b"title": "x"}])),
        mp_close("int-key-in-the-payload", _raw_data(b"\x92\xabtask:create\x81\x01\x01")),
    ],
    # not a Socket.IO packet
    "msgpack-not-a-packet": [
        mp_close("not-a-map", msgpack.packb([sio_packet.EVENT, "/", ["presence:list", {}]])),
        mp_close("a-number", msgpack.packb(42)),
        mp_close("ext-type", msgpack.packb(msgpack.ExtType(5, b"xx"))),
        mp_close(
            "no-namespace", packed(type=sio_packet.EVENT, id=ACK_ID, data=["presence:list", {}])
        ),
        mp_close("no-type", packed(nsp="/", id=ACK_ID, data=["presence:list", {}])),
        mp_close("type-string", mp_event(["presence:list", {}], type="2")),
        mp_close("type-bool", mp_event(["presence:list", {}], type=True)),
        mp_close("type-7", mp_event(["presence:list", {}], type=7)),
        mp_close(
            "type-binary-event", mp_event(["presence:list", {}], type=sio_packet.BINARY_EVENT)
        ),
        mp_close("type-connect-error", mp_event({"message": "hi"}, type=sio_packet.CONNECT_ERROR)),
        mp_close("namespace-number", mp_event(["presence:list", {}], nsp=5)),
        mp_close(
            "namespace-ext-type", mp_event(["presence:list", {}], nsp=msgpack.ExtType(1, b"/"))
        ),
        mp_close("namespace-never-connected", mp_event(["presence:list", {}], nsp="/admin")),
        mp_close("id-string", mp_event(["presence:list", {}], id="7")),
        mp_close("id-negative", mp_event(["presence:list", {}], id=-1)),
        mp_close("event-empty", mp_event([])),
        mp_close("event-map", mp_event({"name": "presence:list"})),
        mp_close("event-name-bytes", mp_event([b"presence:list", {}])),
        mp_close("event-name-ext-type", mp_event([msgpack.ExtType(1, b"x"), {}])),
        mp_close("event-name-number", mp_event([5, {}])),
        mp_close("ack-data-not-a-list", packed(type=sio_packet.ACK, nsp="/", id=ACK_ID, data={})),
    ],
    # well-formed events the hub refuses
    "msgpack-refused": [
        *[mp_refused(f"reserved-{name}", mp_event([name, {}])) for name in RESERVED],
        mp_refused(
            "at-the-depth-limit",
            _raw_data(b"\x92\xabtask:create" + b"\x91" * (MAX_DEPTH - 1) + b"\xc0"),
        ),
        Case(
            "msgpack-ack-for-an-id-never-sent",
            (packed(type=sio_packet.ACK, nsp="/", id=ACK_ID, data=[{"ok": True}]),),
            "ignored",
            msgpack=True,
        ),
    ],
}


class RawClient:
    """Engine.IO v4 / Socket.IO v5 spoken by hand over aiohttp's websocket client."""

    def __init__(
        self, ws: aiohttp.ClientWebSocketResponse, serializer: Serializer, token: str
    ) -> None:
        self.ws = ws
        self.serializer = serializer
        self.token = token
        self.seen: list[sio_packet.Packet] = []  # Socket.IO packets, in arrival order

    @classmethod
    async def connect(
        cls, session: aiohttp.ClientSession, url: str, token: str, serializer: Serializer
    ) -> RawClient:
        ws = await session.ws_connect(
            f"{url}{serializer.socketio_path}?EIO=4&transport=websocket",
            max_msg_size=0,
            headers={"Origin": url},  # a person's token, from the hub's page
        )
        client = cls(ws, serializer, token)
        opened = await ws.receive(timeout=WAIT)
        assert opened.type is aiohttp.WSMsgType.TEXT and opened.data.startswith("0"), opened
        await client.send(client.packet(sio_packet.CONNECT, {"token": token}))
        connected = await client.next_packet()
        assert connected is not None and connected.packet_type == sio_packet.CONNECT, connected
        return client

    def packet(self, kind: int, data: Any, id: int | None = None) -> Frame:
        if self.serializer is Serializer.MSGPACK:
            return packed(type=kind, nsp="/", data=data, **({} if id is None else {"id": id}))
        return "4" + sio_packet.Packet(kind, data, id=id).encode()

    async def send(self, frame: Frame) -> None:
        if isinstance(frame, BadText):
            await self.ws.send_frame(frame.data, aiohttp.WSMsgType.TEXT)
        elif isinstance(frame, bytes):
            await self.ws.send_bytes(frame)
        else:
            await self.ws.send_str(frame.replace(TOKEN, self.token))

    async def next_packet(self) -> sio_packet.Packet | None:
        """The next Socket.IO packet from the hub (pings answered); None once closed."""
        while True:
            msg = await self.ws.receive(timeout=WAIT)
            if msg.type is aiohttp.WSMsgType.TEXT:
                if msg.data == "2":
                    await self.ws.send_str("3")
                elif msg.data.startswith("4"):
                    pkt = sio_packet.Packet(encoded_packet=msg.data[1:])
                    self.seen.append(pkt)
                    return pkt
            elif msg.type is aiohttp.WSMsgType.BINARY:
                pkt = MsgPackPacket(encoded_packet=msg.data)
                self.seen.append(pkt)
                return pkt
            elif msg.type in (
                aiohttp.WSMsgType.CLOSE,
                aiohttp.WSMsgType.CLOSING,
                aiohttp.WSMsgType.CLOSED,
                aiohttp.WSMsgType.ERROR,
            ):
                return None

    async def ack(self, ack_id: int) -> Any:
        while True:
            pkt = await self.next_packet()
            assert pkt is not None, f"closed while waiting for ack {ack_id}: {self.seen}"
            if pkt.packet_type == sio_packet.ACK and pkt.id == ack_id:
                return pkt.data[0]

    async def call(self, event: str, payload: Any, ack_id: int) -> Any:
        await self.send(self.packet(sio_packet.EVENT, [event, payload], id=ack_id))
        return await self.ack(ack_id)

    async def closed(self) -> list[sio_packet.Packet]:
        """Wait for the hub to close the websocket; what it sent before."""
        before = len(self.seen)
        while await self.next_packet() is not None:
            pass
        return self.seen[before:]


async def _counts(hub: Hub) -> dict[str, int]:
    conn = await hub.db()
    try:
        return {
            table: await conn.fetchval(f"SELECT count(*) FROM {table}")
            for table in ("tasks", "task_events", "chat_messages", "outbox", "triage_items")
        }
    finally:
        await conn.close()


async def _events_in(hub: Hub) -> float:
    """Client events the hub's dispatcher took in, from its /metrics."""
    status, text = await hub.request("GET", "/metrics")
    assert status == 200
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("taskhub_events_in_total{")
    )


@dataclass
class Scene:
    hub: Hub
    board_id: str
    owner: Account
    offender: Account
    watcher: Peer
    raw: RawClient


@asynccontextmanager
async def _scene(hub: Hub, serializer: Serializer) -> AsyncIterator[Scene]:
    owner, offender = await hub.register("Owner"), await hub.register("Offender")
    board_id = await hub.create_board(owner)
    await hub.add_member(owner, board_id, offender, "editor")
    watcher = await hub.peer(owner)
    async with aiohttp.ClientSession() as session:
        try:
            assert (await watcher.call("board:join", {"board_id": board_id}))["ok"]
            raw = await RawClient.connect(session, hub.url, offender.access_token, serializer)
            joined = await raw.call("board:join", {"board_id": board_id}, ack_id=1)
            assert joined["ok"], joined
            await _offender_presence(watcher, offender, "joined")
            yield Scene(hub, board_id, owner, offender, watcher, raw)
        finally:
            await watcher.close()
            await raw.ws.close()


async def _offender_presence(watcher: Peer, offender: Account, state: str) -> None:
    """Until the watcher heard the offender's presence go to `state`."""
    deadline = asyncio.get_running_loop().time() + WAIT
    while presence_states(watcher, offender)[-1:] != [state]:
        assert asyncio.get_running_loop().time() < deadline, presence_states(watcher, offender)
        await asyncio.sleep(0.02)


def _garbage_seen(scene: Scene) -> list[tuple[str, Any]]:
    """What the watcher heard, but the offender's presence."""
    return [
        (name, data)
        for name, data in scene.watcher.received
        if not (name == "presence" and data["user"]["id"] == scene.offender.id)
    ]


async def _check(scene: Scene, case: Case, caplog: pytest.LogCaptureFixture) -> None:
    hub, raw = scene.hub, scene.raw
    counts, events_in = await _counts(hub), await _events_in(hub)
    heard = list(_garbage_seen(scene))

    for frame in case.frames:
        # the hub may close a connection before the case's last frames are out
        with suppress(ConnectionResetError):
            await raw.send(frame)

    if case.outcome == "close":
        sent = await raw.closed()
        assert not [p for p in sent if p.packet_type == sio_packet.ACK], sent
        assert await _events_in(hub) == events_in  # no handler saw it
        await _offender_presence(scene.watcher, scene.offender, "left")
    elif case.outcome == "ack":
        ack = await raw.ack(ACK_ID)
        assert ack["ok"] is False and ack["error"]["code"] == case.code, ack
        assert isinstance(ack["error"]["message"], str) and ack["error"]["message"], ack
    elif case.outcome == "connect_error":
        refused = await raw.next_packet()
        assert refused is not None and refused.packet_type == sio_packet.CONNECT_ERROR, refused
        # the shape of every refusal, with a documented code
        assert isinstance(refused.data, dict) and refused.data["code"] == case.code, refused.data
    if case.outcome != "close":
        listed = await raw.call("presence:list", {"board_id": scene.board_id}, ack_id=ACK_ID + 1)
        assert listed["ok"], listed  # the offender's connection works as before
        assert scene.offender.id in {user["id"] for user in listed["data"]["users"]}
        refusals = [
            p.packet_type
            for p in raw.seen
            if p.packet_type in (sio_packet.CONNECT_ERROR, sio_packet.DISCONNECT)
        ]
        expected = [sio_packet.CONNECT_ERROR] if case.outcome == "connect_error" else []
        assert refusals == expected, raw.seen

    assert await _counts(hub) == counts
    assert _garbage_seen(scene) == heard

    # the hub keeps serving the board: a marker task reaches the watcher (and a
    # connected offender), and it is all the watcher heard
    created = await scene.watcher.call(
        "task:create", {"board_id": scene.board_id, "title": f"after {case.id}"[:255]}
    )
    assert created["ok"], created
    marker = (await scene.watcher.wait_for("task:created"))[-1]
    assert marker["task"]["id"] == created["data"]["task"]["id"]
    assert _garbage_seen(scene) == [*heard, ("task:created", marker)]
    if case.outcome != "close":
        while True:
            pkt = await raw.next_packet()
            assert pkt is not None, raw.seen
            if pkt.packet_type == sio_packet.EVENT and pkt.data[0] == "task:created":
                break
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]


GROUPS: Final = {**JSON_CASES, **MSGPACK_CASES}
ALL_CASES: Final = [case for cases in GROUPS.values() for case in cases]


@pytest.mark.parametrize("group", list(GROUPS))
async def test_hostile_packets_get_a_close_or_an_error(
    hub: Hub, group: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Every case of the group against one hub, each with its own board, watcher and
    offender; every failing case is reported."""
    failures: list[str] = []
    for case in GROUPS[group]:
        serializer = Serializer.MSGPACK if case.msgpack else Serializer.JSON
        caplog.clear()
        try:
            async with _scene(hub, serializer) as scene:
                await _check(scene, case, caplog)
        except (AssertionError, TimeoutError) as exc:
            failures.append(f"{case.id}: {type(exc).__name__}: {exc}")
    assert not failures, "\n".join(failures)


def test_the_table_sends_what_it_says() -> None:
    """The control for the depth cases: the limit sits between the two."""
    at_limit = json.loads(nested(MAX_DEPTH - 1)[3:])
    past_limit = json.loads(nested(MAX_DEPTH)[3:])

    def depth(value: Any) -> int:
        return 1 + max(map(depth, value), default=0) if isinstance(value, list) else 0

    assert depth(at_limit) == MAX_DEPTH and depth(past_limit) == MAX_DEPTH + 1
    assert len({case.id for case in ALL_CASES}) == len(ALL_CASES)
    assert all(
        case.msgpack == group.startswith("msgpack") for group in GROUPS for case in GROUPS[group]
    )
