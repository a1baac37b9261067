"""Hundreds of connections dropping at once (a deploy, a network blip) leave no ghost.

Each disconnect runs a presence script in Redis; they all run at once, more than
a Redis client pool holds. None may fail: a failed cleanup is a person shown on
a board they left, for everyone.
"""

from __future__ import annotations

import asyncio
from typing import Any

from redis.asyncio import Redis

from tests.support import Hub, RawSocketIO

CONNECTIONS = 400  # more than redis-py's default pool of 100 connections


async def test_hundreds_of_connections_dropping_at_once_all_leave_presence(
    start_hub: Any,
) -> None:
    hub: Hub = await start_hub()
    alice, bob = await hub.register("Alice"), await hub.register("Bob")
    board_id = await hub.create_board(alice)
    await hub.add_member(alice, board_id, bob, "editor")
    watcher = await hub.peer(alice)
    tabs: list[RawSocketIO] = []
    try:
        await watcher.call("board:join", {"board_id": board_id})
        for start in range(0, CONNECTIONS, 50):  # within the test server's listen backlog
            batch = await asyncio.gather(
                *(RawSocketIO.connect(hub.url, bob.access_token) for _ in range(50))
            )
            tabs.extend(batch)
            joined = await asyncio.gather(
                *(tab.call("board:join", {"board_id": board_id}, ack_id=1) for tab in batch)
            )
            assert all(reply["ok"] for reply in joined), start
        listed = await watcher.call("presence:list", {"board_id": board_id})
        assert bob.id in {u["id"] for u in listed["data"]["users"]}

        for tab in tabs:  # every connection of Bob's goes at once
            tab.writer.transport.abort()

        left = {"board_id": board_id, "user": {"id": bob.id, "name": "Bob"}, "state": "left"}
        for _ in range(100):
            if left in watcher.events("presence"):
                break
            await asyncio.sleep(0.1)
        assert watcher.events("presence").count(left) == 1
        listed = await watcher.call("presence:list", {"board_id": board_id})
        assert {u["id"] for u in listed["data"]["users"]} == {alice.id}
        redis = Redis.from_url(hub.settings.redis_url, decode_responses=True)
        try:
            prefix = hub.settings.redis_key_prefix
            assert await redis.scard(f"{prefix}ws:user:{bob.id}:connections") == 0
            assert await redis.hvals(f"{prefix}ws:board:{board_id}:presence") == [alice.id]
        finally:
            await redis.aclose()
    finally:
        for tab in tabs:
            tab.close()
        await watcher.close()
