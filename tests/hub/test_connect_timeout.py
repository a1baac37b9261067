"""An Engine.IO connection that never completes its Socket.IO connect is closed
after CONNECT_TIMEOUT, even when it answers every ping; a connected one stays."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp

from tests.support import Hub

TIMEOUT = 1.0


async def _answer_pings_until_closed(ws: aiohttp.ClientWebSocketResponse) -> None:
    """Reads the Engine.IO OPEN, then answers each ping; returns when the hub closed."""
    first = await ws.receive()
    assert isinstance(first.data, str) and first.data.startswith("0"), first
    async for message in ws:
        if message.type == aiohttp.WSMsgType.TEXT and message.data == "2":
            await ws.send_str("3")


async def test_a_handshake_without_a_connect_is_closed(start_hub: Any) -> None:
    # pings every second: answering them must not keep the half-open handshake alive
    hub: Hub = await start_hub(CONNECT_TIMEOUT=str(TIMEOUT), PING_INTERVAL="1")
    async with aiohttp.ClientSession() as http:
        asked = time.monotonic()
        ws = await http.ws_connect(f"{hub.url}/socket.io/?EIO=4&transport=websocket")
        await asyncio.wait_for(_answer_pings_until_closed(ws), 10)
        assert TIMEOUT <= time.monotonic() - asked < TIMEOUT + 3

        # long-polling: the session is gone after the deadline
        async with http.get(f"{hub.url}/socket.io/?EIO=4&transport=polling") as opened:
            assert opened.status == 200
            sid = json.loads((await opened.text())[1:])["sid"]  # "0{...}": Engine.IO OPEN
        await asyncio.sleep(TIMEOUT + 1)
        async with http.get(f"{hub.url}/socket.io/?EIO=4&transport=polling&sid={sid}") as poll:
            assert poll.status == 400  # "unknown session", as engineio answers


async def test_a_connected_socket_outlives_the_connect_timeout(start_hub: Any) -> None:
    hub: Hub = await start_hub(CONNECT_TIMEOUT=str(TIMEOUT))
    alice = await hub.register("Alice")
    board_id = await hub.create_board(alice)
    peer = await hub.peer(alice)
    try:
        await asyncio.sleep(TIMEOUT + 1)
        assert peer.sio.connected
        assert (await peer.call("board:join", {"board_id": board_id}))["ok"]
    finally:
        await peer.close()
