"""Connecting: who is refused and with what reason, the polling transport, and a
handler fault that must not cost the connection."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import jwt
import pytest
import socketio

from tests.support import Account, Hub, Peer


async def _connect_error(hub: Hub, auth: Any) -> Any:
    """Try to connect as a client would; return the reason the server gave."""
    sio = socketio.AsyncClient(reconnection=False)
    reasons: list[Any] = []

    @sio.event
    async def connect_error(data: Any) -> None:
        reasons.append(data)

    try:
        with pytest.raises(socketio.exceptions.ConnectionError):
            await sio.connect(
                hub.url,
                auth=auth,
                headers={"Origin": hub.url},  # a browser on the hub's page
                transports=["websocket"],
                wait_timeout=5,
            )
        assert not sio.connected
    finally:
        await sio.disconnect()
    assert len(reasons) == 1, reasons
    return reasons[0]


async def _connects(hub: Hub, token: str) -> bool:
    sio = socketio.AsyncClient(reconnection=False)
    try:
        await sio.connect(
            hub.url,
            auth={"token": token},
            headers={"Origin": hub.url},
            transports=["websocket"],
            wait_timeout=5,
        )
        return sio.connected
    finally:
        await sio.disconnect()


def _unauthorized(reason: Any, why: str | None = None) -> None:
    """The reason as a python-socketio client reads it, and (under `data`) as the
    JavaScript client exposes it in `err.data`."""
    assert isinstance(reason, dict), reason
    assert reason["code"] == "unauthorized", reason
    assert isinstance(reason["message"], str) and reason["message"], reason
    assert reason["data"] == {k: v for k, v in reason.items() if k != "data"}, reason
    if why is not None:
        assert reason["details"] == {"reason": why}, reason


def _claims_of(account: Account) -> dict[str, Any]:
    return jwt.decode(account.access_token, options={"verify_signature": False})


async def address_of_a_write(hub: Hub, peer: Peer, board_id: str) -> str:
    """`peer` creates a task (and closes); the client address its event row records."""
    try:
        created = await peer.call("task:create", {"board_id": board_id, "title": "Here"})
        assert created["ok"], created
    finally:
        await peer.close()
    conn = await hub.db()
    try:
        metadata = await conn.fetchval(
            "SELECT metadata FROM task_events WHERE task_id = $1",
            uuid.UUID(created["data"]["task"]["id"]),
        )
    finally:
        await conn.close()
    return str(json.loads(metadata)["ip"])


@pytest.mark.parametrize(
    "auth",
    [None, {}, {"token": ""}, {"token": None}, {"token": 12345}, {"jwt": "x"}, "a-token"],
    ids=["no-auth", "empty-auth", "empty-token", "null-token", "int-token", "wrong-key", "str"],
)
async def test_no_token_is_refused(hub: Hub, auth: Any) -> None:
    _unauthorized(await _connect_error(hub, auth))


async def test_a_valid_token_connects(hub: Hub) -> None:
    """The control for the refusals below."""
    alice = await hub.register("Alice")
    assert await _connects(hub, alice.access_token)


async def test_a_token_with_a_bad_signature_is_refused(hub: Hub) -> None:
    alice = await hub.register("Alice")
    forged = jwt.encode(_claims_of(alice), "another-secret-" + "y" * 40, algorithm="HS256")
    _unauthorized(await _connect_error(hub, {"token": forged}), "invalid_token")
    header, payload, signature = alice.access_token.split(".")
    flipped = signature[:-2] + ("AA" if signature[-2:] != "AA" else "BB")
    _unauthorized(
        await _connect_error(hub, {"token": f"{header}.{payload}.{flipped}"}), "invalid_token"
    )
    _unauthorized(await _connect_error(hub, {"token": "not.a.jwt"}), "invalid_token")
    unsigned = jwt.encode(_claims_of(alice), None, algorithm="none")
    _unauthorized(await _connect_error(hub, {"token": unsigned}), "invalid_token")


async def test_an_expired_token_is_refused(hub: Hub) -> None:
    alice = await hub.register("Alice")
    now = int(time.time())
    claims = {
        "sub": alice.id,
        "sid": _claims_of(alice)["sid"],  # a live login: only the expiry is wrong
        "iat": now - 3600,
        "exp": now - 60,
        "jti": uuid.uuid4().hex,
        "iss": "taskhub",
        "aud": "taskhub",
    }
    expired = jwt.encode(claims, hub.settings.jwt_secret, algorithm=hub.settings.jwt_algorithm)
    _unauthorized(await _connect_error(hub, {"token": expired}), "token_expired")
    # The same claims, still valid, do connect.
    fresh = jwt.encode(
        {**claims, "exp": now + 600, "jti": uuid.uuid4().hex},
        hub.settings.jwt_secret,
        algorithm=hub.settings.jwt_algorithm,
    )
    assert await _connects(hub, fresh)


async def test_a_deactivated_user_is_refused(hub: Hub) -> None:
    alice = await hub.register("Alice")
    assert await _connects(hub, alice.access_token)
    conn = await hub.db()
    try:
        await conn.execute("UPDATE users SET is_active = false WHERE id = $1", uuid.UUID(alice.id))
    finally:
        await conn.close()
    _unauthorized(await _connect_error(hub, {"token": alice.access_token}), "account_inactive")


async def test_after_logout_the_access_token_no_longer_connects(hub: Hub) -> None:
    alice = await hub.register("Alice")
    assert await _connects(hub, alice.access_token)
    status, body = await hub.request("POST", "/api/auth/logout", token=alice.access_token)
    assert status == 204, body
    _unauthorized(await _connect_error(hub, {"token": alice.access_token}), "session_revoked")
    # Another login of the same user is not affected.
    status, body = await hub.request(
        "POST", "/api/auth/login", json={"email": alice.email, "password": alice.password}
    )
    assert status == 200, body
    assert await _connects(hub, body["access_token"])


async def test_a_polling_client_joins_and_hears_a_websocket_client(
    start_hub: Callable[..., Awaitable[Hub]],
) -> None:
    # python-socketio's polling client takes ping interval + ping timeout to
    # disconnect (21 s with the defaults); short ones keep this test short
    hub = await start_hub(PING_INTERVAL="1", PING_TIMEOUT="2")
    alice = await hub.register("Alice")
    bob = await hub.register("Bob")
    board_id = await hub.create_board(alice)
    await hub.add_member(alice, board_id, bob, "editor")
    polling = await hub.peer(bob, transports=["polling"])
    websocket = await hub.peer(alice)
    try:
        assert polling.sio.transport() == "polling"
        assert websocket.sio.transport() == "websocket"
        joined = await polling.call("board:join", {"board_id": board_id})
        assert joined["ok"], joined
        assert (await websocket.call("board:join", {"board_id": board_id}))["ok"]

        created = await websocket.call("task:create", {"board_id": board_id, "title": "Hello"})
        assert created["ok"], created
        task_id = created["data"]["task"]["id"]
        updated = await websocket.call(
            "task:update", {"task_id": task_id, "base_version": 1, "changes": {"title": "Hi"}}
        )
        assert updated["ok"], updated

        heard = await polling.wait_for("task:created")
        assert heard[0]["task"]["id"] == task_id and heard[0]["seq"] == 1
        heard = await polling.wait_for("task:updated")
        assert heard[0]["task"]["title"] == "Hi" and heard[0]["seq"] == 2
        presence = await polling.wait_for("presence")
        assert presence[-1]["user"]["id"] == alice.id and presence[-1]["state"] == "joined"

        # And the other way round.
        moved = await polling.call(
            "task:move", {"task_id": task_id, "base_version": 2, "position": 5.0}
        )
        assert moved["ok"], moved
        assert (await websocket.wait_for("task:updated"))[-1]["seq"] == 3
    finally:
        await polling.close()
        await websocket.close()


async def test_a_fault_in_a_handler_is_an_internal_ack_and_the_connection_lives(
    hub: Hub,
) -> None:
    alice = await hub.register("Alice")
    board_id = await hub.create_board(alice)
    peer = await hub.peer(alice)
    conn = await hub.db()
    try:
        assert (await peer.call("board:join", {"board_id": board_id}))["ok"]
        await conn.execute("ALTER TABLE task_events RENAME TO broken")

        ack = await peer.call("task:create", {"board_id": board_id, "title": "Doomed"})

        assert ack["ok"] is False, ack
        assert ack["error"]["code"] == "internal", ack
        assert "task_events" not in ack["error"]["message"], ack  # no internals leak
        listed = await peer.call("presence:list", {"board_id": board_id})
        assert listed["ok"], listed
        assert [user["id"] for user in listed["data"]["users"]] == [alice.id]
        assert peer.sio.connected
        assert await conn.fetchval("SELECT count(*) FROM tasks") == 0
        assert await conn.fetchval("SELECT count(*) FROM broken") == 0
        assert (
            await conn.fetchval("SELECT last_seq FROM boards WHERE id = $1", uuid.UUID(board_id))
            == 0
        )
        assert peer.events("task:created") == []
    finally:
        await conn.close()
        await peer.close()


async def test_a_socket_write_records_the_clients_own_address(hub: Hub) -> None:
    """engineio's aiohttp driver writes 127.0.0.1 into every connection's environ;
    the audit trail must carry the address the client really connected from."""
    alice = await hub.register("Alice")
    board_id = await hub.create_board(alice)
    # a loopback address other than 127.0.0.1, so the hard-coded one cannot pass
    connector = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
    async with aiohttp.ClientSession(connector=connector) as session:
        peer = Peer(hub.url, alice.access_token, sio=socketio.AsyncClient(http_session=session))
        await peer.connect()
        assert await address_of_a_write(hub, peer, board_id) == "127.0.0.2"
