"""Browsers may connect only from the hub's own origin or the CORS_ORIGINS allow-list:
a page on another site cannot open a socket with its visitor's token."""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from tests.support import Hub

FOREIGN = "https://evil.example"


async def _websocket_from(hub: Hub, token: str, origin: str | None) -> bool:
    """Open Engine.IO over websocket with this Origin and connect to Socket.IO."""
    headers = {"Origin": origin} if origin else {}
    async with aiohttp.ClientSession() as http:
        try:
            ws = await http.ws_connect(
                f"{hub.url}/socket.io/?EIO=4&transport=websocket", headers=headers
            )
        except aiohttp.WSServerHandshakeError as refused:
            assert refused.status == 400, refused
            return False
        try:
            opened = await ws.receive_str(timeout=5)
            assert opened.startswith("0"), opened
            await ws.send_str("40" + json.dumps({"token": token}))
            connected = await ws.receive_str(timeout=5)
            return connected.startswith("40{")
        finally:
            await ws.close()


async def _polling_from(hub: Hub, origin: str) -> int:
    async with aiohttp.ClientSession() as http:
        async with http.get(
            f"{hub.url}/socket.io/?EIO=4&transport=polling", headers={"Origin": origin}
        ) as answer:
            return answer.status


async def test_only_the_hubs_own_origin_by_default(hub: Hub) -> None:
    alice = await hub.register("Alice")
    assert await _websocket_from(hub, alice.access_token, hub.url)
    assert await _websocket_from(hub, alice.access_token, None)  # not a browser
    assert not await _websocket_from(hub, alice.access_token, FOREIGN)
    assert await _polling_from(hub, FOREIGN) == 400
    assert await _polling_from(hub, hub.url) == 200


async def test_the_allow_list_lets_in_what_it_names(start_hub: Any) -> None:
    hub: Hub = await start_hub(CORS_ORIGINS="https://app.example, https://admin.example")
    alice = await hub.register("Alice")
    assert await _websocket_from(hub, alice.access_token, "https://app.example")
    assert await _websocket_from(hub, alice.access_token, "https://admin.example")
    assert not await _websocket_from(hub, alice.access_token, FOREIGN)
    assert not await _websocket_from(hub, alice.access_token, "https://app.example.evil.example")
    assert await _polling_from(hub, FOREIGN) == 400
