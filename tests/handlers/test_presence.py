"""Board presence as members see it: first join and last leave only."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from tests.support import Hub


async def test_presence_counts_people_not_tabs(hub: Hub) -> None:
    alice, bob = await hub.register("Alice"), await hub.register("Bob")
    board_id = await hub.create_board(alice)
    await hub.add_member(alice, board_id, bob, "viewer")
    watcher = await hub.peer(alice)
    tab1, tab2 = await hub.peer(bob), await hub.peer(bob)
    try:
        first = await watcher.call("board:join", {"board_id": board_id})
        assert [u["id"] for u in first["data"]["presence"]] == [alice.id]
        ack = await tab1.call("board:join", {"board_id": board_id})
        assert {u["id"] for u in ack["data"]["presence"]} == {alice.id, bob.id}
        await tab2.call("board:join", {"board_id": board_id})
        joined = await watcher.wait_for("presence")
        assert joined == [
            {"board_id": board_id, "user": {"id": bob.id, "name": "Bob"}, "state": "joined"}
        ]
        assert tab1.events("presence") == []  # the joiner learns presence from its ack

        await tab1.call("board:leave", {"board_id": board_id})
        await asyncio.sleep(0.3)
        assert len(watcher.events("presence")) == 1  # Bob is still there in tab 2
        listed = await watcher.call("presence:list", {"board_id": board_id})
        assert {u["id"] for u in listed["data"]["users"]} == {alice.id, bob.id}

        await tab2.close()  # closing the last tab is leaving
        left = await watcher.wait_for("presence", 2)
        assert left[-1]["state"] == "left" and left[-1]["user"]["id"] == bob.id
        listed = await watcher.call("presence:list", {"board_id": board_id})
        assert [u["id"] for u in listed["data"]["users"]] == [alice.id]
    finally:
        await watcher.close()
        await tab1.close()


async def test_connection_keys_follow_the_socket(hub: Hub) -> None:
    alice = await hub.register("Alice")
    peer = await hub.peer(alice)
    prefix = hub.settings.redis_key_prefix
    redis = Redis.from_url(hub.settings.redis_url, decode_responses=True)
    try:
        sids = await redis.smembers(f"{prefix}ws:user:{alice.id}:connections")
        assert len(sids) == 1
        (sid,) = sids
        record = await redis.hgetall(f"{prefix}ws:connection:{sid}")
        assert record["user_id"] == alice.id and record["node_id"] == hub.settings.node_id
        assert await redis.ttl(f"{prefix}ws:connection:{sid}") > 0
        assert await redis.exists(f"{prefix}ws:node:{hub.settings.node_id}")
        await peer.close()
        for _ in range(50):
            if not await redis.exists(f"{prefix}ws:connection:{sid}"):
                break
            await asyncio.sleep(0.05)
        assert not await redis.exists(f"{prefix}ws:connection:{sid}")
        assert await redis.scard(f"{prefix}ws:user:{alice.id}:connections") == 0
    finally:
        await redis.aclose()
