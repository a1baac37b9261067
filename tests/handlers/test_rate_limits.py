"""Rate limits as a client meets them: a `rate_limited` answer with its wait, nothing
written, other people unaffected, and one budget however many nodes a user uses."""

from __future__ import annotations

import uuid
from typing import Any

import aiohttp

from tests.handlers.test_connect import _connect_error, _connects
from tests.support import Account, Hub, Peer


async def _tasks_on(hub: Hub, board_id: str) -> int:
    conn = await hub.db()
    try:
        count: int = await conn.fetchval(
            "SELECT count(*) FROM tasks WHERE board_id = $1", uuid.UUID(board_id)
        )
        return count
    finally:
        await conn.close()


def _limited(answer: Any, action: str, per_seconds: float, count: int) -> None:
    """`rate_limited`, with a retry_after no longer than the limit's interval."""
    assert answer["ok"] is False, answer
    assert answer["error"]["code"] == "rate_limited", answer
    details = answer["error"]["details"]
    assert details["action"] == action, answer
    assert 0 < details["retry_after"] <= per_seconds / count + 0.1, answer


async def _two_editors(hub: Hub) -> tuple[Peer, Peer, str]:
    """Alice's and Bob's connections, and the board of Alice's where both edit."""
    alice, bob = await hub.register("Alice"), await hub.register("Bob")
    board_id = await hub.create_board(alice)
    await hub.add_member(alice, board_id, bob, "editor")
    return await hub.peer(alice), await hub.peer(bob), board_id


async def _create(peer: Peer, board_id: str, title: str) -> Any:
    return await peer.call("task:create", {"board_id": board_id, "title": title})


async def test_writes_over_the_users_limit_are_refused_and_write_nothing(
    start_hub: Any,
) -> None:
    hub: Hub = await start_hub(RATE_LIMIT_WRITE_USER="3/60")
    a, b, board_id = await _two_editors(hub)
    try:
        for n in range(3):
            assert (await _create(a, board_id, f"t{n}"))["ok"]
        _limited(await _create(a, board_id, "one too many"), "write", 60, 3)
        # garbage counts as well: a flood of invalid writes is not free
        _limited(await a.call("task:create", {"nonsense": True}), "write", 60, 3)
        assert await _tasks_on(hub, board_id) == 3
        # reads and chat are other budgets; Bob has his own
        assert (await a.call("board:join", {"board_id": board_id}))["ok"]
        assert (await _create(b, board_id, "Bob's"))["ok"]
    finally:
        await a.close()
        await b.close()


async def test_one_budget_across_nodes(start_hub: Any) -> None:
    first: Hub = await start_hub(RATE_LIMIT_WRITE_USER="3/60")
    second: Hub = await start_hub(RATE_LIMIT_WRITE_USER="3/60")  # same Redis and prefix
    alice = await first.register("Alice")
    board_id = await first.create_board(alice)
    here, there = await first.peer(alice), await second.peer(alice)
    try:
        assert (await _create(here, board_id, "1"))["ok"]
        assert (await _create(there, board_id, "2"))["ok"]
        assert (await _create(here, board_id, "3"))["ok"]
        _limited(await _create(there, board_id, "4"), "write", 60, 3)
    finally:
        await here.close()
        await there.close()


async def test_chat_has_its_own_limit(start_hub: Any) -> None:
    hub: Hub = await start_hub(RATE_LIMIT_CHAT_USER="2/30")
    alice = await hub.register("Alice")
    board_id = await hub.create_board(alice)
    a = await hub.peer(alice)
    try:
        channel_id = (await a.call("board:join", {"board_id": board_id}))["data"]["channel_id"]
        for n in range(2):
            sent = await a.call("chat:send", {"channel_id": channel_id, "body": f"m{n}"})
            assert sent["ok"], sent
        third = await a.call("chat:send", {"channel_id": channel_id, "body": "m2"})
        _limited(third, "chat", 30, 2)
        history = await a.call("chat:history", {"channel_id": channel_id})
        assert sorted(m["body"] for m in history["data"]["messages"]) == ["m0", "m1"]
        assert (await _create(a, board_id, "writes are another budget"))["ok"]
    finally:
        await a.close()


async def test_an_address_has_a_budget_for_all_its_users(start_hub: Any) -> None:
    hub: Hub = await start_hub(RATE_LIMIT_WRITE_IP="4/60")
    a, b, board_id = await _two_editors(hub)
    try:
        for n in range(3):
            assert (await _create(a, board_id, f"a{n}"))["ok"]
        assert (await _create(b, board_id, "b0"))["ok"]
        _limited(await _create(b, board_id, "b1"), "write", 60, 4)
    finally:
        await a.close()
        await b.close()


def _refused(reason: Any) -> dict[str, Any]:
    assert isinstance(reason, dict) and reason["code"] == "rate_limited", reason
    details: dict[str, Any] = reason["details"]
    return details


async def test_connects_over_the_limit_are_refused_with_the_wait(start_hub: Any) -> None:
    hub: Hub = await start_hub(RATE_LIMIT_CONNECT_USER="2/60", RATE_LIMIT_CONNECT_IP="4/60")
    alice, bob, carol = [await hub.register(n) for n in ("Alice", "Bob", "Carol")]
    assert await _connects(hub, alice.access_token)
    assert await _connects(hub, alice.access_token)
    details = _refused(await _connect_error(hub, {"token": alice.access_token}))
    assert details["action"] == "connect" and 0 < details["retry_after"] <= 30.1
    # the address: Alice's refused try counted there too (4 of 4 used after Bob's)
    assert await _connects(hub, bob.access_token)
    details = _refused(await _connect_error(hub, {"token": carol.access_token}))
    assert details["action"] == "connect" and 0 < details["retry_after"] <= 15.1
    # a forged token pays for its address before it is looked at
    assert _refused(await _connect_error(hub, {"token": "not-a-token"}))["action"] == "connect"


async def test_a_user_has_at_most_the_cap_of_connections_at_once(start_hub: Any) -> None:
    hub: Hub = await start_hub(MAX_CONNECTIONS_PER_USER="2")
    alice: Account = await hub.register("Alice")
    first, second = await hub.peer(alice), await hub.peer(alice)
    try:
        details = _refused(await _connect_error(hub, {"token": alice.access_token}))
        assert details == {"reason": "too_many_connections", "limit": 2}
        await first.close()
        third = await hub.peer(alice)  # a place is free again
        await third.close()
    finally:
        await second.close()


async def _login(hub: Hub, email: str, password: str) -> tuple[int, Any, str | None]:
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{hub.url}/api/auth/login", json={"email": email, "password": password}
        ) as answer:
            return answer.status, await answer.json(), answer.headers.get("Retry-After")


async def test_password_guesses_are_limited_per_email_and_per_address(start_hub: Any) -> None:
    hub: Hub = await start_hub(RATE_LIMIT_LOGIN_USER="3/300", RATE_LIMIT_LOGIN_IP="5/60")
    alice, bob = await hub.register("Alice"), await hub.register("Bob")
    for guess in ("wrong-1", "wrong-2"):
        assert (await _login(hub, alice.email, guess))[0] == 401
    assert (await _login(hub, alice.email.upper(), alice.password))[0] == 200  # 3 of 3
    status, body, retry_after = await _login(hub, alice.email, alice.password)
    assert status == 429 and body["error"]["code"] == "rate_limited", body
    assert body["error"]["details"]["action"] == "login"
    assert retry_after is not None and 0 < int(retry_after) <= 100  # 300 s / 3, whole seconds
    # another email is another budget, until the address's runs out (5 per minute;
    # Alice's refused try was charged to neither)
    assert (await _login(hub, bob.email, bob.password))[0] == 200  # 4 of 5
    assert (await _login(hub, "nobody@example.com", "x"))[0] == 401  # 5 of 5
    status, body, _ = await _login(hub, "somebody@example.com", "x")
    assert status == 429 and body["error"]["details"]["action"] == "login", body
