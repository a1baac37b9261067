"""Browsers may connect only from the hub's own origin or the CORS_ORIGINS allow-list:
a page on another site cannot open a socket with its visitor's token. A client that
is not a browser connects with a bot token, unless USER_TOKENS_WITHOUT_ORIGIN."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest
import socketio

from hub.app import DEPS
from protocol.client import TaskhubClient
from protocol.errors import Forbidden
from tests.support import Hub, new_bot, new_token

FOREIGN = "https://evil.example"


async def _connect_reply(
    hub: Hub, token: str, origin: str | None, headers: dict[str, str] | None = None
) -> str | None:
    """Open Engine.IO over websocket with this Origin and send Socket.IO's connect:
    the hub's answer, or None when the handshake itself is refused."""
    headers = {**({"Origin": origin} if origin else {}), **(headers or {})}
    async with aiohttp.ClientSession() as http:
        try:
            ws = await http.ws_connect(
                f"{hub.url}/socket.io/?EIO=4&transport=websocket", headers=headers
            )
        except aiohttp.WSServerHandshakeError as refused:
            assert refused.status == 400, refused
            return None
        try:
            opened = await ws.receive_str(timeout=5)
            assert opened.startswith("0"), opened
            await ws.send_str("40" + json.dumps({"token": token}))
            return await ws.receive_str(timeout=5)
        finally:
            await ws.close()


async def _websocket_from(hub: Hub, token: str, origin: str | None) -> bool:
    reply = await _connect_reply(hub, token, origin)
    return reply is not None and reply.startswith("40{")


async def _polling_from(hub: Hub, origin: str) -> int:
    async with aiohttp.ClientSession() as http:
        async with http.get(
            f"{hub.url}/socket.io/?EIO=4&transport=polling", headers={"Origin": origin}
        ) as answer:
            return answer.status


async def test_only_the_hubs_own_origin_by_default(hub: Hub) -> None:
    alice = await hub.register("Alice")
    assert await _websocket_from(hub, alice.access_token, hub.url)
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


async def _connected_users(hub: Hub) -> int:
    return len(await hub.app[DEPS].redis.keys(hub.app[DEPS].keys.user_connections("*")))


async def test_a_person_connects_from_a_browser_and_a_script_with_a_bot_token(
    start_hub: Any,
) -> None:
    # python-socketio's polling client takes ping interval + ping timeout to
    # disconnect; short ones keep this test short
    hub: Hub = await start_hub(PING_INTERVAL="1", PING_TIMEOUT="2")
    owner = await hub.register("Owner")
    board_id = await hub.create_board(owner)
    bot = await new_bot(hub, owner, board_id=board_id)
    token = await new_token(hub, owner, bot["bot"]["id"], ["tasks:read"])

    # a person's token with no browser's marks: refused with the reason, nothing kept
    reply = await _connect_reply(hub, owner.access_token, None)
    assert reply is not None and reply.startswith("44"), reply
    refused = json.loads(reply[2:])
    assert refused["code"] == "forbidden"
    assert refused["details"] == {"reason": "bot_token_required"}
    assert await _connected_users(hub) == 0

    # the same client with the bot's token is let in
    assert await _websocket_from(hub, token.secret, None)
    # a same-origin polling handshake carries no Origin, but Sec-Fetch-Site
    page = socketio.AsyncClient(reconnection=False)
    await page.connect(
        hub.url,
        auth={"token": owner.access_token},
        transports=["polling"],
        headers={"Sec-Fetch-Site": "same-origin"},
        wait_timeout=5,
    )
    assert page.connected
    await page.disconnect()
    # python-socketio's client is not a browser either: it hears why, over polling too
    script = socketio.AsyncClient(reconnection=False)
    reasons: list[Any] = []
    script.on("connect_error", reasons.append)
    try:
        with pytest.raises(socketio.exceptions.ConnectionError):
            await script.connect(
                hub.url, auth={"token": owner.access_token}, transports=["polling"], wait_timeout=5
            )
    finally:
        await script.disconnect()
    assert [r["details"] for r in reasons] == [{"reason": "bot_token_required"}]


async def test_people_may_script_with_their_own_token_where_the_hub_allows(
    start_hub: Any,
) -> None:
    hub: Hub = await start_hub(USER_TOKENS_WITHOUT_ORIGIN="true")
    alice = await hub.register("Alice")
    assert await _websocket_from(hub, alice.access_token, None)
    assert not await _websocket_from(hub, alice.access_token, FOREIGN)


async def test_the_python_client_logs_in_as_a_bot_where_people_need_a_browser(
    hub: Hub,
) -> None:
    owner = await hub.register("Owner")
    board_id = await hub.create_board(owner)
    bot = await new_bot(hub, owner, board_id=board_id)
    token = await new_token(hub, owner, bot["bot"]["id"], ["tasks:read"])
    person = TaskhubClient(hub.url, email=owner.email, password=owner.password)
    try:
        with pytest.raises(Forbidden) as refused:
            await person.connect()
    finally:
        await person.close()
    assert refused.value.details == {"reason": "bot_token_required"}
    async with TaskhubClient(hub.url, token=token.secret) as script:
        joined = await script.join_board(board_id)
        assert str(joined.board.id) == board_id


async def test_a_refused_script_pays_for_its_address(start_hub: Any) -> None:
    """A person's token from a script costs its address a connect, as a forged token
    does: refusing is no free way to probe tokens."""
    hub: Hub = await start_hub(RATE_LIMIT_CONNECT_IP="1/60")
    alice = await hub.register("Alice")
    reply = await _connect_reply(hub, alice.access_token, None)
    assert reply is not None and json.loads(reply[2:])["details"]["reason"] == "bot_token_required"
    reply = await _connect_reply(hub, alice.access_token, hub.url)
    assert reply is not None and json.loads(reply[2:])["code"] == "rate_limited", reply
