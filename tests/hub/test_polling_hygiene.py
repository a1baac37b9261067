"""Hostile HTTP long-polling bodies (issue 7, point 3): the websocket frames of
test_packet_hygiene.py, sent as POSTs of an Engine.IO polling session instead.

Each gets a 4xx answer or a closed session, never a 500, never a handler call,
never an ERROR in the log; a well-behaved client connects and works right after.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from tests.support import Hub

PATH = "/socket.io/"
SEPARATOR = "\x1e"  # between the packets of one Engine.IO v4 polling payload


class PollingSession:
    """One Engine.IO v4 polling session, spoken by hand."""

    def __init__(self, hub: Hub, http: aiohttp.ClientSession) -> None:
        self.hub = hub
        self.http = http
        self.sid = ""

    def url(self, **extra: str) -> str:
        query = {"EIO": "4", "transport": "polling", **({"sid": self.sid} if self.sid else {})}
        query.update(extra)
        return self.hub.url + PATH + "?" + "&".join(f"{k}={v}" for k, v in query.items())

    async def open(self, token: str) -> None:
        # as the hub's own page polls: a same-origin GET has no Origin, but Sec-Fetch-Site
        async with self.http.get(self.url(), headers={"Sec-Fetch-Site": "same-origin"}) as resp:
            assert resp.status == 200, await resp.text()
            opened = await resp.text()
        assert opened.startswith("0"), opened
        self.sid = json.loads(opened[1:])["sid"]
        assert await self.post("40" + json.dumps({"token": token})) == 200
        assert (await self.poll()).startswith("40"), "the Socket.IO connect was not granted"

    async def post(self, body: str | bytes, **headers: str) -> int:
        data = io.BytesIO(body.encode() if isinstance(body, str) else body)
        async with self.http.post(self.url(), data=data, headers=headers) as resp:
            await resp.read()
            return resp.status

    async def poll(self) -> str:
        async with self.http.get(self.url(), timeout=aiohttp.ClientTimeout(total=40)) as resp:
            text = await resp.text()
            return text if resp.status == 200 else f"HTTP {resp.status}"

    async def call(self, event: str, payload: dict[str, Any], ack_id: int) -> Any:
        status = await self.post(f"42{ack_id}" + json.dumps([event, payload]))
        assert status == 200, status
        while True:
            for packet in (await self.poll()).split(SEPARATOR):
                if packet.startswith(f"43{ack_id}"):
                    return json.loads(packet[len(f"43{ack_id}") :])[0]
                assert not packet.startswith(("1", "HTTP")), f"the session ended: {packet}"


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


# (id, body): what a client can put in one POST of its session
HOSTILE: list[tuple[str, str | bytes]] = [
    ("empty-body", b""),
    ("only-separators", SEPARATOR * 5),
    ("unknown-engineio-type", "9hello"),
    ("engineio-open-from-client", '0{"sid":"x"}'),
    ("not-utf8", b"\xff\xfe\xfd"),
    ("malformed-socketio-json", "42["),
    ("socketio-not-a-list", '42{"event":"presence:list"}'),
    ("event-name-not-a-string", "42[7,{}]"),
    ("reserved-event-connect", '42["connect",{}]'),
    ("too-deep", "42" + '["presence:list",' + nested(200) + "]"),
    ("namespace-never-connected", '42/admin,["presence:list",{}]'),
    ("binary-attachments-never-sent", '451-["presence:list",{"_placeholder":true,"num":0}]'),
    ("huge-attachment-count", '45999999-["presence:list",{}]'),
    ("many-packets-one-bad", SEPARATOR.join(["2", "3", "42[", "2"])),
    ("base64-binary-garbage", "b!!!not base64!!!"),
    ("over-the-size-limit", "4" + "x" * (2 * 1024 * 1024)),
]


@pytest.mark.parametrize(("case", "body"), HOSTILE, ids=[case for case, _ in HOSTILE])
async def test_a_hostile_polling_body_is_refused_and_the_hub_serves_on(
    start_hub: Callable[..., Awaitable[Hub]],
    case: str,
    body: str | bytes,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # a ping a second: a poll with nothing else to say answers within one
    hub = await start_hub(PING_INTERVAL="1")
    owner = await hub.register("Owner")
    board_id = await hub.create_board(owner)
    caplog.set_level(logging.INFO)
    async with aiohttp.ClientSession() as http:
        offender = PollingSession(hub, http)
        await offender.open(owner.access_token)
        # as a real client does, with a poll waiting while it posts: engineio delivers
        # a close through that poll before it answers the POST
        waiting = asyncio.create_task(offender.poll())
        await asyncio.sleep(0.1)
        status = await offender.post(body, **{"Content-Type": "text/plain;charset=UTF-8"})
        assert status in (200, 400, 413), f"{case}: HTTP {status}"
        after = await waiting
        if status == 200 and after in ("", "2", "6"):
            if after == "2":
                # the pong a live client sends: the next poll then says whether the
                # session went on, rather than the ping timeout (20 s) ending it
                status = await offender.post("3")
            if status == 200:
                after = await offender.poll()
        # a refused body (4xx) or a closed session; a session that went on must be
        # untouched by what it sent: no ack, no event, only pings or nothing
        ended = after.startswith(("1", "HTTP 400")) or status != 200
        assert ended or all(p in ("", "2", "6") for p in after.split(SEPARATOR)), (case, after)

        # the hub serves on: a new session connects and works
        fine = PollingSession(hub, http)
        await fine.open(owner.access_token)
        joined = await fine.call("board:join", {"board_id": board_id}, ack_id=1)
        assert joined["ok"], joined
        listed = await fine.call("presence:list", {"board_id": board_id}, ack_id=2)
        assert listed["ok"] and [u["id"] for u in listed["data"]["users"]] == [owner.id], listed

    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]
    assert not [r for r in caplog.records if r.exc_info and r.name.startswith("handlers")]
