"""Access tokens over a real socket: every forgery of issue 7's list is refused with
its reason, a token that expires while connected closes the connection with
`token_expired`, and `auth:refresh` moves that moment to the new token's expiry."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import jwt
import pytest

from tests.handlers.test_bots import wait_until
from tests.handlers.test_connect import _claims_of, _connect_error, _connects, _unauthorized
from tests.support import Account, Hub, Peer, new_bot, new_token, settled_states

DROP = object()  # a claim to leave out of a forged token


def _forge(
    hub: Hub,
    account: Account,
    claims: dict[str, Any] | None = None,
    *,
    crit: dict[str, Any] | None = None,
    key: str | None = None,
    algorithm: str | None = None,
) -> str:
    """The account's real claims (so its login is live), fresh, with `claims` changed
    and signed with the hub's secret and algorithm unless told otherwise; `crit` adds
    header parameters, signed by hand since PyJWT drops some of them (`b64: true`)."""
    now = int(time.time())
    body = {**_claims_of(account), "iat": now, "exp": now + 600, "jti": uuid.uuid4().hex}
    for name, value in (claims or {}).items():
        if value is DROP:
            body.pop(name, None)
        else:
            body[name] = value
    if crit is not None:
        assert hub.settings.jwt_algorithm == "HS256"
        header = {"alg": "HS256", "typ": "JWT", **crit}
        signing_input = b".".join(_b64(json.dumps(part).encode()) for part in (header, body))
        secret = hub.settings.jwt_secret.encode()
        signature = hmac.new(secret, signing_input, hashlib.sha256).digest()
        return (signing_input + b"." + _b64(signature)).decode()
    return jwt.encode(
        body,
        hub.settings.jwt_secret if key is None else key,
        algorithm=algorithm or hub.settings.jwt_algorithm,
    )


def _b64(raw: bytes) -> bytes:
    return base64.urlsafe_b64encode(raw).rstrip(b"=")


FORGERIES: dict[str, dict[str, Any]] = {
    "alg-none": {"key": "", "algorithm": "none"},
    "wrong-key": {"key": "another-secret-" + "y" * 40},
    "wrong-aud": {"claims": {"aud": "someone-else"}},
    "no-aud": {"claims": {"aud": DROP}},
    "wrong-iss": {"claims": {"iss": "https://evil.example"}},
    "no-iss": {"claims": {"iss": DROP}},
    "future-nbf": {"claims": {"nbf": int(time.time()) + 3600}},
    "no-sub": {"claims": {"sub": DROP}},
    "sub-not-a-uuid": {"claims": {"sub": "alice"}},
    "sub-not-a-string": {"claims": {"sub": 42}},
    "sid-not-a-uuid": {"claims": {"sid": "login-1"}},
    # PyJWT refuses crit names it does not know, but knows b64 (RFC 7797); we know none
    "unknown-crit": {"crit": {"crit": ["x-policy"], "x-policy": "mfa"}},
    "crit-b64": {"crit": {"crit": ["b64"], "b64": True}},
    "crit-empty": {"crit": {"crit": []}},
    "crit-not-a-list": {"crit": {"crit": "x-policy", "x-policy": "mfa"}},
}


async def test_the_forging_helper_makes_tokens_that_connect(hub: Hub) -> None:
    """The control of the refusals below: each changes one thing of this token."""
    alice = await hub.register("Alice")
    assert hub.settings.jwt_algorithm == "HS256"
    assert await _connects(hub, _forge(hub, alice))
    assert await _connects(hub, _forge(hub, alice, crit={}))  # the hand-signed path


@pytest.mark.parametrize("forgery", FORGERIES.values(), ids=FORGERIES.keys())
async def test_a_forged_token_is_refused_as_invalid(hub: Hub, forgery: dict[str, Any]) -> None:
    alice = await hub.register("Alice")
    token = _forge(hub, alice, **forgery)
    _unauthorized(await _connect_error(hub, {"token": token}), "invalid_token")
    # REST takes the same verification
    status, body = await hub.request("GET", "/api/me", token=token)
    assert status == 401, body
    assert body["error"]["details"] == {"reason": "invalid_token"}, body


# RFC 7518 wants HS512 keys of 64 bytes and more; PyJWT warns (an error here) below that
LONG_SECRET = "a-secret-long-enough-for-hs512-" + "z" * 40


@pytest.mark.parametrize(
    ("configured", "signed"),
    [("HS256", "HS512"), ("HS256", "HS384"), ("HS512", "HS256")],
    ids=["hs512-on-hs256", "hs384-on-hs256", "hs256-on-hs512"],
)
async def test_only_the_configured_algorithm_is_accepted(
    start_hub: Callable[..., Awaitable[Hub]], configured: str, signed: str
) -> None:
    """Signed with the right key, by an algorithm the hub was not told to use."""
    hub = await start_hub(JWT_ALGORITHM=configured, JWT_SECRET=LONG_SECRET)
    alice = await hub.register("Alice")
    assert await _connects(hub, alice.access_token)
    token = _forge(hub, alice, algorithm=signed)
    _unauthorized(await _connect_error(hub, {"token": token}), "invalid_token")


async def test_an_expired_token_is_refused_as_expired(hub: Hub) -> None:
    alice = await hub.register("Alice")
    now = int(time.time())
    token = _forge(hub, alice, {"iat": now - 3600, "exp": now - 1})
    _unauthorized(await _connect_error(hub, {"token": token}), "token_expired")


# -- expiry while connected, and auth:refresh -----------------------------------


def _closed_because(peer: Peer, why: str) -> None:
    """What the client heard just before the hub disconnected it."""
    (closing,) = peer.events("connection:closing")
    assert closing["code"] == "unauthorized", closing
    assert closing["details"] == {"reason": why}, closing
    assert not peer.sio.connected


async def _connected(hub: Hub, token: str, *, msgpack: bool = False) -> Peer:
    peer = Peer.msgpack(hub.url, token) if msgpack else Peer(hub.url, token)
    await peer.connect()
    return peer


async def _until_closed(peers: list[Peer], expires_at: int) -> None:
    """Wait for the hub to close every peer, no sooner than `expires_at` and within
    two sweeps after it."""
    await wait_until(
        lambda: not any(p.sio.connected for p in peers), timeout=expires_at - time.time() + 2.5
    )
    assert time.time() >= expires_at


async def test_a_token_that_expires_while_connected_closes_the_connection(hub: Hub) -> None:
    alice = await hub.register("Alice")
    bob = await hub.register("Bob")
    board_id = await hub.create_board(alice)
    await hub.add_member(alice, board_id, bob, "viewer")
    expires_at = int(time.time()) + 3
    short = _forge(hub, alice, {"exp": expires_at})
    peers = [await _connected(hub, short), await _connected(hub, short, msgpack=True)]
    watcher = await hub.peer(bob)
    try:
        for peer in (*peers, watcher):
            assert (await peer.call("board:join", {"board_id": board_id}))["ok"]
        await watcher.wait_for("presence")

        await _until_closed(peers, expires_at)

        for peer in peers:
            _closed_because(peer, "token_expired")
        # the others see Alice leave; Bob's own connection, on a live token, stays
        assert (await settled_states(watcher, alice, "left", 3))[-1] == "left"
        assert watcher.sio.connected
        assert watcher.events("connection:closing") == []
        listed = await watcher.call("presence:list", {"board_id": board_id})
        assert [u["id"] for u in listed["data"]["users"]] == [bob.id], listed
        _unauthorized(await _connect_error(hub, {"token": short}), "token_expired")
    finally:
        for peer in (*peers, watcher):
            await peer.close()


async def test_auth_refresh_moves_the_connections_expiry_to_the_new_tokens(hub: Hub) -> None:
    alice = await hub.register("Alice")
    board_id = await hub.create_board(alice)
    first_expiry = int(time.time()) + 2
    peer = await _connected(hub, _forge(hub, alice, {"exp": first_expiry}))
    try:
        assert (await peer.call("board:join", {"board_id": board_id}))["ok"]
        # what a client does: refresh over REST, hand the new access token over
        status, body = await hub.request(
            "POST", "/api/auth/refresh", json={"refresh_token": alice.refresh_token}
        )
        assert status == 200, body
        ack = await peer.call("auth:refresh", {"access_token": body["access_token"]})
        assert ack["ok"], ack
        new_expiry = jwt.decode(body["access_token"], options={"verify_signature": False})["exp"]
        assert ack["data"] == {
            "user_id": alice.id,
            "expires_at": datetime.fromtimestamp(new_expiry, UTC).isoformat(),
        }

        # two sweeps past the first token's expiry: still connected, still served
        await asyncio.sleep(first_expiry - time.time() + 2)
        assert peer.sio.connected
        created = await peer.call("task:create", {"board_id": board_id, "title": "Still here"})
        assert created["ok"], created
        assert peer.events("connection:closing") == []

        # the newest token rules, even when it expires sooner
        last_expiry = int(time.time()) + 2
        ack = await peer.call(
            "auth:refresh", {"access_token": _forge(hub, alice, {"exp": last_expiry})}
        )
        assert ack["ok"], ack
        await _until_closed([peer], last_expiry)
        _closed_because(peer, "token_expired")
    finally:
        await peer.close()


async def test_refreshes_sent_without_waiting_are_applied_in_the_order_sent(hub: Hub) -> None:
    """The last token sent rules, even when the client did not wait for the acks of the
    ones before it: handled in another order, an earlier token applied last would
    close the connection at its own expiry. Eight connections at once, each sending
    25 refreshes, so that the race has many chances."""
    alice = await hub.register("Alice")
    peers = [await _connected(hub, _forge(hub, alice)) for _ in range(8)]
    # time enough for the 200 refreshes to be checked before their tokens expire
    soon = int(time.time()) + 4

    async def refresh_many(peer: Peer) -> list[dict[str, Any]]:
        tokens = [_forge(hub, alice, {"exp": soon}) for _ in range(24)]
        tokens.append(_forge(hub, alice, {"exp": soon + 600}))
        return await asyncio.gather(
            *(peer.call("auth:refresh", {"access_token": token}) for token in tokens)
        )

    try:
        acks = [ack for acks in await asyncio.gather(*map(refresh_many, peers)) for ack in acks]
        assert all(ack["ok"] for ack in acks), acks
        # two sweeps past the earlier tokens' expiry: every connection still open
        await asyncio.sleep(soon - time.time() + 2)
        assert [p.sio.connected for p in peers] == [True] * len(peers)
        assert [p.events("connection:closing") for p in peers] == [[]] * len(peers)
    finally:
        await asyncio.gather(*(p.close() for p in peers))


async def test_a_refused_refresh_changes_nothing(hub: Hub) -> None:
    alice = await hub.register("Alice")
    bob = await hub.register("Bob")
    status, other_login = await hub.request(
        "POST", "/api/auth/login", json={"email": alice.email, "password": alice.password}
    )
    assert status == 200, other_login
    status, _ = await hub.request("POST", "/api/auth/logout", token=other_login["access_token"])
    assert status == 204
    expires_at = int(time.time()) + 3
    peer = await _connected(hub, _forge(hub, alice, {"exp": expires_at}))
    now = int(time.time())
    refusals = {
        "another user's": (bob.access_token, "forbidden", None),
        "forged": (
            _forge(hub, alice, key="another-secret-" + "y" * 40),
            "unauthorized",
            "invalid_token",
        ),
        "expired": (
            _forge(hub, alice, {"iat": now - 60, "exp": now - 1}),
            "unauthorized",
            "token_expired",
        ),
        "of a logged-out login": (other_login["access_token"], "unauthorized", "session_revoked"),
    }
    try:
        for name, (token, code, why) in refusals.items():
            ack = await peer.call("auth:refresh", {"access_token": token})
            assert ack["ok"] is False and ack["error"]["code"] == code, (name, ack)
            if why is not None:
                assert ack["error"]["details"] == {"reason": why}, (name, ack)
        for bad in ({}, {"access_token": ""}, {"access_token": 42}, {"token": bob.access_token}):
            ack = await peer.call("auth:refresh", bad)
            assert ack["ok"] is False and ack["error"]["code"] == "invalid_payload", (bad, ack)
        assert peer.sio.connected

        # none of them moved the expiry: the connection closes with its own token
        await _until_closed([peer], expires_at)
        _closed_because(peer, "token_expired")
    finally:
        await peer.close()


async def test_a_bot_token_that_expires_while_connected_closes_the_connection(hub: Hub) -> None:
    owner = await hub.register("Owner")
    board_id = await hub.create_board(owner)
    bot_id = (await new_bot(hub, owner, board_id=board_id))["bot"]["id"]
    token = await new_token(hub, owner, bot_id, ["tasks:read"], expires_in_days=1)
    expires_at = int(time.time()) + 3
    conn = await hub.db()
    try:
        await conn.execute(
            "UPDATE api_tokens SET expires_at = to_timestamp($2) WHERE id = $1",
            uuid.UUID(token.id),
            expires_at,
        )
    finally:
        await conn.close()
    bot = await _connected(hub, token.secret, msgpack=True)
    try:
        assert (await bot.call("board:join", {"board_id": board_id}))["ok"]
        # a bot token's connection takes no access token, not even its creator's
        ack = await bot.call("auth:refresh", {"access_token": owner.access_token})
        assert ack["ok"] is False and ack["error"]["code"] == "forbidden", ack

        await _until_closed([bot], expires_at)
        _closed_because(bot, "token_expired")
    finally:
        await bot.close()
