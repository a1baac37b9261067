"""The client's address behind load balancers: X-Forwarded-For counts only from
TRUSTED_PROXIES, so per-address limits and audit rows see the real client there,
and a client that writes the header itself gains nothing."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
import socketio

from handlers.client_address import client_address
from tests.handlers.test_connect import address_of_a_write
from tests.support import Hub, Peer

LOOPBACK = (ipaddress.ip_network("127.0.0.1/32"),)
BALANCERS = (ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("10.0.0.0/8"))


@pytest.mark.parametrize(
    ("peer", "headers", "trusted", "client"),
    [
        # no trusted proxy: the header is anyone's to write
        ("198.51.100.9", ["203.0.113.7"], (), "198.51.100.9"),
        # a peer that is not one of ours
        ("198.51.100.9", ["203.0.113.7"], BALANCERS, "198.51.100.9"),
        ("127.0.0.1", [], BALANCERS, "127.0.0.1"),
        ("127.0.0.1", ["203.0.113.7"], BALANCERS, "203.0.113.7"),
        # the client wrote a first entry itself; our two hops are skipped from the right
        ("127.0.0.1", ["6.6.6.6, 203.0.113.7, 10.1.2.3"], BALANCERS, "203.0.113.7"),
        # several headers are one list, in order
        ("127.0.0.1", ["6.6.6.6, 203.0.113.7", "10.1.2.3"], BALANCERS, "203.0.113.7"),
        # a malformed hop ends what our proxies vouch for
        ("127.0.0.1", ["203.0.113.7, not-an-ip"], BALANCERS, "127.0.0.1"),
        ("127.0.0.1", ["garbage, 10.1.2.3"], BALANCERS, "10.1.2.3"),
        # every hop trusted: the farthest is the best we know
        ("127.0.0.1", ["10.0.0.5, 10.0.0.6"], BALANCERS, "10.0.0.5"),
        ("127.0.0.1", ["2001:db8::1"], BALANCERS, "2001:db8::1"),
        (None, ["203.0.113.7"], BALANCERS, None),
    ],
)
def test_the_nearest_untrusted_hop_is_the_client(
    peer: str | None, headers: list[str], trusted: Any, client: str | None
) -> None:
    assert client_address(peer, headers, trusted) == client


async def _login(hub: Hub, email: str, forwarded_for: str) -> int:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{hub.url}/api/auth/login",
            json={"email": email, "password": "wrong-password"},
            headers={"X-Forwarded-For": forwarded_for},
        ) as resp,
    ):
        return resp.status


async def test_behind_a_trusted_balancer_each_client_has_its_own_address_limit(
    start_hub: Callable[..., Any],
) -> None:
    hub: Hub = await start_hub(TRUSTED_PROXIES="127.0.0.1", RATE_LIMIT_LOGIN_IP="2/60")
    assert [await _login(hub, f"a{n}@example.com", "203.0.113.7") for n in range(3)] == [
        401,
        401,
        429,
    ]
    # another client behind the same balancer is not throttled with the first
    assert await _login(hub, "b@example.com", "203.0.113.8") == 401


async def test_without_trusted_proxies_a_forged_header_does_not_escape_the_limit(
    start_hub: Callable[..., Any],
) -> None:
    hub: Hub = await start_hub(RATE_LIMIT_LOGIN_IP="2/60")
    statuses = [await _login(hub, f"c{n}@example.com", f"203.0.113.{n}") for n in range(3)]
    assert statuses == [401, 401, 429]


async def test_a_socket_write_records_the_forwarded_address(
    start_hub: Callable[..., Any],
) -> None:
    hub: Hub = await start_hub(TRUSTED_PROXIES="127.0.0.1")
    alice = await hub.register("Alice")
    board_id = await hub.create_board(alice)
    peer = Peer(hub.url, alice.access_token, sio=socketio.AsyncClient())
    await peer.sio.connect(
        hub.url,
        auth={"token": alice.access_token},
        headers={"Origin": hub.url, "X-Forwarded-For": "6.6.6.6, 203.0.113.7"},
        transports=["websocket"],
        wait_timeout=5,
    )
    assert await address_of_a_write(hub, peer, board_id) == "203.0.113.7"
