"""Presence stays true through races and node faults: no ghosts, no lost people."""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from redis.asyncio import Redis

from storage import users
from tests.support import Account, Hub, Peer, RawSocketIO, settled_states


async def _board(hub: Hub) -> tuple[Account, Account, str]:
    alice, bob = await hub.register("Alice"), await hub.register("Bob")
    board_id = await hub.create_board(alice)
    await hub.add_member(alice, board_id, bob, "editor")
    return alice, bob, board_id


async def _present(peer: Peer, board_id: str) -> set[str]:
    listed = await peer.call("presence:list", {"board_id": board_id})
    return {u["id"] for u in listed["data"]["users"]}


async def _wait_present(peer: Peer, board_id: str, expected: set[str], seconds: float) -> None:
    for _ in range(int(seconds * 10)):
        if await _present(peer, board_id) == expected:
            return
        await asyncio.sleep(0.1)
    assert await _present(peer, board_id) == expected


async def test_closing_a_tab_while_its_join_is_in_flight_leaves_no_ghost(hub: Hub) -> None:
    alice, bob, board_id = await _board(hub)
    watcher = await hub.peer(alice)
    assert (await watcher.call("board:join", {"board_id": board_id}))["ok"]
    try:
        for _ in range(15):
            tab = await hub.peer(bob)
            join = asyncio.create_task(tab.sio.emit("board:join", {"board_id": board_id}))
            await tab.sio.eio.disconnect(abort=True)
            await asyncio.gather(join, return_exceptions=True)
        await asyncio.sleep(1)
        assert await _present(watcher, board_id) == {alice.id}
        redis = Redis.from_url(hub.settings.redis_url, decode_responses=True)
        try:
            prefix = hub.settings.redis_key_prefix
            presence = await redis.hvals(f"{prefix}ws:board:{board_id}:presence")
            assert presence == [alice.id]
            assert await redis.scard(f"{prefix}ws:user:{bob.id}:connections") == 0
        finally:
            await redis.aclose()
        joined = [e for e in watcher.events("presence") if e["state"] == "joined"]
        left = [e for e in watcher.events("presence") if e["state"] == "left"]
        assert len(joined) == len(left)  # every announced arrival was also announced gone
    finally:
        await watcher.close()


async def test_a_node_restarted_with_the_same_id_clears_its_previous_life(
    hub: Hub, node_process: Callable[..., Any]
) -> None:
    # A long NODE_TTL: only the restarted node itself can clear the old entries in time.
    url, proc = await node_process(NODE_ID="node-fixed", NODE_TTL="60", HEARTBEAT_INTERVAL="1")
    elsewhere = Hub(url=url, app=hub.app, server=hub.server, settings=hub.settings)
    alice, bob, board_id = await _board(hub)
    watcher = await hub.peer(alice)
    b = await elsewhere.peer(bob)
    try:
        await watcher.call("board:join", {"board_id": board_id})
        await b.call("board:join", {"board_id": board_id})
        assert await _present(watcher, board_id) == {alice.id, bob.id}
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
        await b.sio.eio.disconnect(abort=True)
        await node_process(NODE_ID="node-fixed", NODE_TTL="60", HEARTBEAT_INTERVAL="1")
        await _wait_present(watcher, board_id, {alice.id}, 5)
        left = await watcher.wait_for("presence", 2)
        assert left[-1] == {
            "board_id": board_id,
            "user": {"id": bob.id, "name": "Bob"},
            "state": "left",
        }
    finally:
        await watcher.close()


async def _stall_reap_and_resume(
    hub: Hub, node_process: Callable[..., Any], before_stall: Callable[[Account], None]
) -> None:
    """Bob's node stalls past NODE_TTL, is reaped by the hub, then resumes: the
    watcher hears Bob leave, then come back, and ends up seeing him present."""
    url, proc = await node_process(NODE_ID="node-slow")
    elsewhere = Hub(url=url, app=hub.app, server=hub.server, settings=hub.settings)
    alice, bob, board_id = await _board(hub)
    watcher = await hub.peer(alice)
    b = await elsewhere.peer(bob)
    try:
        await watcher.call("board:join", {"board_id": board_id})
        await b.call("board:join", {"board_id": board_id})
        before_stall(bob)
        proc.send_signal(signal.SIGSTOP)  # a long GC pause, swap, a partition
        try:
            await _wait_present(watcher, board_id, {alice.id}, 10)  # NODE_TTL is 2 s here
        finally:
            proc.send_signal(signal.SIGCONT)
        await _wait_present(watcher, board_id, {alice.id, bob.id}, 10)
        states = await settled_states(watcher, bob, "joined", 5)
        assert states[-2:] == ["left", "joined"], states
        assert await _present(watcher, board_id) == {alice.id, bob.id}
        created = await b.call("task:create", {"board_id": board_id, "title": "still here"})
        assert created["ok"]
    finally:
        await watcher.close()
        await b.close()


async def test_a_stalled_node_that_was_reaped_puts_its_people_back(
    hub: Hub, node_process: Callable[..., Any]
) -> None:
    await _stall_reap_and_resume(hub, node_process, lambda bob: None)


async def test_a_slow_reaper_never_announces_left_after_the_person_came_back(
    hub: Hub, node_process: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The reaper (the hub) looks up Bob's name slowly, as under a loaded database;
    # the resumed node registers Bob again meanwhile. The `left` must not reach the
    # watcher after Bob's `joined`, or Bob would look gone while connected.
    public = users.public

    def slow_name_lookups(bob: Account) -> None:
        async def slow_public(conn: Any, ids: Any) -> Any:
            if [str(i) for i in ids] == [bob.id]:
                await asyncio.sleep(0.5)
            return await public(conn, ids)

        monkeypatch.setattr(users, "public", slow_public)

    await _stall_reap_and_resume(hub, node_process, slow_name_lookups)


async def test_a_removed_member_stops_hearing_the_board(hub: Hub) -> None:
    alice, bob, board_id = await _board(hub)
    a, b = await hub.peer(alice), await hub.peer(bob)
    try:
        await a.call("board:join", {"board_id": board_id})
        await b.call("board:join", {"board_id": board_id})
        status, _ = await hub.request(
            "DELETE", f"/api/boards/{board_id}/members/{bob.id}", token=alice.access_token
        )
        assert status == 204
        left = await a.wait_for("presence", 2)
        assert left[-1]["state"] == "left" and left[-1]["user"]["id"] == bob.id
        assert (await a.call("task:create", {"board_id": board_id, "title": "secret"}))["ok"]
        await asyncio.sleep(0.5)
        assert b.events("task:created") == []
        assert await _present(a, board_id) == {alice.id}
        again = await b.call("board:join", {"board_id": board_id})
        assert again["error"]["code"] == "forbidden"
    finally:
        await a.close()
        await b.close()


async def test_two_owners_removing_each_other_leave_one_owner(hub: Hub) -> None:
    for _ in range(5):
        alice, bob, board_id = await _board(hub)
        status, _ = await hub.request(  # Bob comes back as a second owner
            "DELETE", f"/api/boards/{board_id}/members/{bob.id}", token=alice.access_token
        )
        assert status == 204
        await hub.add_member(alice, board_id, bob, "owner")
        results = await asyncio.gather(
            hub.request(
                "DELETE", f"/api/boards/{board_id}/members/{bob.id}", token=alice.access_token
            ),
            hub.request(
                "DELETE", f"/api/boards/{board_id}/members/{alice.id}", token=bob.access_token
            ),
        )
        # the loser is refused: as the last owner (400) or, if the winner went
        # first, as someone who is no longer a member (404)
        statuses = sorted(status for status, _ in results)
        assert statuses in ([204, 400], [204, 404]), results
        conn = await hub.db()
        try:
            owners = await conn.fetchval(
                "SELECT count(*) FROM board_members WHERE board_id = $1 AND role = 'owner'",
                uuid.UUID(board_id),
            )
        finally:
            await conn.close()
        assert owners == 1


async def test_tabs_closing_at_once_leave_no_ghost(hub: Hub) -> None:
    # Each client drops its TCP connection right after its close: the hub's request
    # handler may be cancelled then (aiohttp's handler_cancellation), and the
    # disconnect it was running must still clear the presence.
    alice, bob, board_id = await _board(hub)
    watcher = await hub.peer(alice)
    try:
        assert (await watcher.call("board:join", {"board_id": board_id}))["ok"]
        tabs = [await hub.peer(bob) for _ in range(40)]
        for tab in tabs:
            assert (await tab.call("board:join", {"board_id": board_id}))["ok"]
        await asyncio.gather(*(tab.close() for tab in tabs))
        await _wait_present(watcher, board_id, {alice.id}, 2)
    finally:
        await watcher.close()


async def test_tabs_closing_while_a_lapsed_node_registers_again_leave_no_ghost(hub: Hub) -> None:
    # The node's heartbeat key is taken away before each beat, so every beat finds
    # it lapsed and registers all its connections again, while Bob's tabs close one
    # after the other: a tab closed mid-registration must not come back.
    alice, bob, board_id = await _board(hub)
    watcher = await hub.peer(alice)
    assert (await watcher.call("board:join", {"board_id": board_id}))["ok"]
    tabs = [await hub.peer(bob) for _ in range(40)]
    for tab in tabs:
        assert (await tab.call("board:join", {"board_id": board_id}))["ok"]
    prefix = hub.settings.redis_key_prefix
    redis = Redis.from_url(hub.settings.redis_url, decode_responses=True)

    async def keep_lapsing() -> None:
        while True:
            await redis.delete(f"{prefix}ws:node:{hub.settings.node_id}")
            await asyncio.sleep(0.05)

    lapsing = asyncio.create_task(keep_lapsing())
    try:
        for tab in tabs:
            await tab.close()
            await asyncio.sleep(0.03)
        lapsing.cancel()
        await asyncio.gather(lapsing, return_exceptions=True)
        await asyncio.sleep(1)  # two beats, each free to register again
        assert await _present(watcher, board_id) == {alice.id}
        assert await redis.hvals(f"{prefix}ws:board:{board_id}:presence") == [alice.id]
        assert await redis.scard(f"{prefix}ws:user:{bob.id}:connections") == 0
        joined = [e for e in watcher.events("presence") if e["state"] == "joined"]
        left = [e for e in watcher.events("presence") if e["state"] == "left"]
        assert len(joined) == len(left)
    finally:
        lapsing.cancel()
        await redis.aclose()
        await watcher.close()


async def test_a_client_that_stops_answering_pings_leaves_the_board(start_hub: Any) -> None:
    # a laptop lid closed: the TCP connection stays, nothing answers any more
    hub: Hub = await start_hub(PING_INTERVAL="1", PING_TIMEOUT="1")
    alice, bob, board_id = await _board(hub)
    watcher = await hub.peer(alice)
    silent = await RawSocketIO.connect(hub.url, bob.access_token)
    try:
        assert (await watcher.call("board:join", {"board_id": board_id}))["ok"]
        assert (await silent.call("board:join", {"board_id": board_id}, ack_id=1))["ok"]
        await _wait_present(watcher, board_id, {alice.id, bob.id}, 2)
        # from here on it answers no ping: gone after the next ping's timeout
        await _wait_present(watcher, board_id, {alice.id}, 5)
        assert (await settled_states(watcher, bob, "left", 2))[-1] == "left"
        assert await asyncio.wait_for(silent.closed_by_server(), 5)
    finally:
        silent.close()
        await watcher.close()
