"""A login that ends while its sockets are open closes them, on every node, within
seconds: a logout, a reused refresh token, a deactivated account."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import replace
from typing import Any

from tests.handlers.test_accounts import login, refresh
from tests.handlers.test_bots import wait_until
from tests.support import Hub, Peer

# The sweep checks logins every 3 s (hub/expiry_sweep.py); the bound is 5 s.
WITHIN = 5.0


async def _on_both(first: Hub, second: Hub, token: str) -> list[Peer]:
    peers = [Peer(first.url, token), Peer(second.url, token)]
    for peer in peers:
        await peer.connect()
    return peers


async def _closed_within(peers: list[Peer], why: str) -> float:
    """Seconds until every peer was closed, each having heard why just before."""
    started = time.monotonic()
    await wait_until(lambda: not any(p.sio.connected for p in peers), timeout=WITHIN + 2)
    took = time.monotonic() - started
    for peer in peers:
        (closing,) = peer.events("connection:closing")
        assert closing["code"] == "unauthorized" and closing["details"] == {"reason": why}
    return took


async def _two_nodes(start_hub: Any) -> tuple[Hub, Hub]:
    return await start_hub(), await start_hub()  # one database, one Redis


async def test_a_logout_closes_that_logins_sockets_on_every_node(start_hub: Any) -> None:
    first, second = await _two_nodes(start_hub)
    alice = await first.register("Alice")
    status, other = await login(first, alice.email)  # a second login: another device
    assert status == 200, other
    ended = await _on_both(first, second, alice.access_token)
    kept = await _on_both(first, second, other["access_token"])
    try:
        status, _ = await first.request("POST", "/api/auth/logout", token=alice.access_token)
        assert status == 204
        assert await _closed_within(ended, "session_revoked") <= WITHIN
        assert all(p.sio.connected for p in kept)
        still = replace(alice, access_token=other["access_token"])
        board_id = await first.create_board(still)
        assert (await kept[1].call("board:join", {"board_id": board_id}))["ok"]
    finally:
        for peer in ended + kept:
            await peer.close()


async def test_a_reused_refresh_token_closes_its_logins_sockets(start_hub: Any) -> None:
    first, second = await _two_nodes(start_hub)
    alice = await first.register("Alice")
    peers = await _on_both(first, second, alice.access_token)
    try:
        assert (await refresh(first, alice.refresh_token))[0] == 200
        status, _ = await refresh(second, alice.refresh_token)  # stolen and replayed
        assert status == 401
        assert await _closed_within(peers, "session_revoked") <= WITHIN
    finally:
        for peer in peers:
            await peer.close()


async def test_a_deactivated_account_is_closed_everywhere(start_hub: Any) -> None:
    first, second = await _two_nodes(start_hub)
    alice, bob = await first.register("Alice"), await first.register("Bob")
    peers = await _on_both(first, second, alice.access_token)
    bobs = await _on_both(first, second, bob.access_token)
    conn = await first.db()
    try:
        # no endpoint deactivates yet: an operator does it in SQL
        await conn.execute("UPDATE users SET is_active = false WHERE id = $1", uuid.UUID(alice.id))
        assert await _closed_within(peers, "account_inactive") <= WITHIN
        assert all(p.sio.connected for p in bobs)
        assert all(p.events("connection:closing") == [] for p in bobs)
    finally:
        await conn.close()
        for peer in peers + bobs:
            await peer.close()


async def test_a_membership_that_ends_without_notice_ends_the_board_for_its_sockets(
    start_hub: Any,
) -> None:
    """No eviction notice goes out (an operator deletes the row; a removal made while
    Redis was down is the same case): each node's own check takes the member's
    sockets out of the board and its channel within WITHIN. They stay connected."""
    first, second = await _two_nodes(start_hub)
    alice, bob, carol = [await first.register(name) for name in ("Alice", "Bob", "Carol")]
    board_id = await first.create_board(alice)
    for member in (bob, carol):
        await first.add_member(alice, board_id, member, "editor")
    writer, control = Peer(second.url, alice.access_token), Peer(first.url, carol.access_token)
    removed_ones = await _on_both(first, second, bob.access_token)
    peers = [writer, control, *removed_ones]
    conn = await first.db()
    try:
        for peer in (writer, control):
            await peer.connect()
        replies = [await peer.call("board:join", {"board_id": board_id}) for peer in peers]
        assert all(reply["ok"] for reply in replies), replies
        channel_id = replies[0]["data"]["channel_id"]

        def heard() -> list[int]:
            return [len(p.events("task:created")) for p in removed_ones]

        assert (await writer.call("task:create", {"board_id": board_id, "title": "before"}))["ok"]
        await wait_until(lambda: all(heard()))
        await conn.execute(
            "DELETE FROM board_members WHERE board_id = $1 AND user_id = $2",
            uuid.UUID(board_id),
            uuid.UUID(bob.id),
        )
        removed = last_heard = time.monotonic()
        while time.monotonic() - removed < WITHIN + 1:
            before = heard()
            assert (await writer.call("task:create", {"board_id": board_id, "title": "x"}))["ok"]
            await asyncio.sleep(0.2)
            if heard() != before:
                last_heard = time.monotonic()
        assert last_heard - removed <= WITHIN

        # Nothing of the board reaches them any more, tasks nor chat; the member
        # who stayed hears both.
        before, seen = heard(), len(control.events("task:created"))
        assert (await writer.call("task:create", {"board_id": board_id, "title": "secret"}))["ok"]
        assert (await writer.call("chat:send", {"channel_id": channel_id, "body": "secret"}))["ok"]
        await control.wait_for("chat:message")
        await wait_until(lambda: len(control.events("task:created")) > seen)
        await asyncio.sleep(0.3)
        assert heard() == before
        assert all(p.events("chat:message") == [] for p in removed_ones)
        assert all(p.sio.connected for p in removed_ones)
        assert all(p.events("connection:closing") == [] for p in removed_ones)
        left = [e for e in control.events("presence") if e["user"]["id"] == bob.id]
        assert left and left[-1]["state"] == "left"
        again = await removed_ones[0].call("board:join", {"board_id": board_id})
        assert again["error"]["code"] == "forbidden"
    finally:
        await conn.close()
        for peer in peers:
            await peer.close()
