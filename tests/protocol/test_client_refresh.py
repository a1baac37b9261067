"""The Python client keeps a connection made with email and password past its access
token's expiry by sending `auth:refresh`; a refused renewal ends it with the reason."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable

import pytest

from protocol.errors import Unauthorized
from protocol.serializers import Serializer
from tests.protocol.test_client import client_of
from tests.support import Hub

# The shortest the hub allows; the client refreshes at half of it, about 5 s in.
TTL = 10


async def test_a_login_stays_connected_across_token_lifetimes(
    start_hub: Callable[..., Awaitable[Hub]],
) -> None:
    hub = await start_hub(ACCESS_TOKEN_TTL=str(TTL))
    alice = await hub.register("Alice")
    board_id = await hub.create_board(alice)
    async with client_of(hub, alice, Serializer.MSGPACK) as client:
        await client.join_board(board_id)
        sid = client.sio.get_sid("/")
        # two lifetimes and the hub's sweep (up to a second late): unrefreshed, closed twice
        await asyncio.sleep(2 * TTL + 1)
        assert client.sio.connected and client.sio.get_sid("/") == sid, "not the same connection"
        event = await client.create_task(board_id, "still here")
        assert event.task.title == "still here"


async def test_a_refused_renewal_closes_the_connection_at_expiry(
    start_hub: Callable[..., Awaitable[Hub]],
) -> None:
    hub = await start_hub(ACCESS_TOKEN_TTL=str(TTL))
    alice = await hub.register("Alice")
    status, bob = await hub.request(
        "POST",
        "/api/auth/register",
        json={
            "email": f"bob.{uuid.uuid4().hex[:8]}@example.com",
            "name": "Bob",
            "password": "n3w-pass-word",
        },
    )
    assert status == 201, bob
    conn = await hub.db()
    client = client_of(hub, alice, Serializer.JSON)
    try:
        await client.connect()
        # Every login of Alice's ends and her password changes (to Bob's: no endpoint
        # changes a password), so neither her refresh token nor a new login can renew.
        await conn.execute(
            "UPDATE sessions SET revoked_at = now() WHERE user_id = $1",
            uuid.UUID(alice.id),
        )
        await conn.execute(
            """UPDATE users SET password_hash = (SELECT password_hash FROM users WHERE id = $2)
               WHERE id = $1""",
            uuid.UUID(alice.id),
            uuid.UUID(bob["user"]["id"]),
        )
        with pytest.raises(Unauthorized) as closed:
            await asyncio.wait_for(client.wait(), TTL + 5)
        assert closed.value.details["reason"] in ("token_expired", "session_revoked")
        assert not client.sio.connected
    finally:
        await conn.close()
        await client.close()
