"""Two hub nodes sharing Redis: emits cross nodes, and a dead node's presence is reaped."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable

from redis.asyncio import Redis

from tests.support import Hub


async def test_edits_cross_nodes_and_dead_node_presence_is_reaped(
    hub: Hub, node_process: Callable[..., object]
) -> None:
    url_b, proc_b = await node_process(NODE_ID="node-b")  # type: ignore[misc]
    hub_b = Hub(url=url_b, app=hub.app, server=hub.server, settings=hub.settings)
    alice, bob = await hub.register("Alice"), await hub.register("Bob")
    board_id = await hub.create_board(alice)
    await hub.add_member(alice, board_id, bob, "editor")

    a = await hub.peer(alice)  # on the in-process node
    b = await hub_b.peer(bob)  # on the separate process
    try:
        assert (await a.call("board:join", {"board_id": board_id}))["ok"]
        assert (await b.call("board:join", {"board_id": board_id}))["ok"]
        joined = await a.wait_for("presence")
        assert joined[-1]["state"] == "joined" and joined[-1]["user"]["id"] == bob.id

        created = await b.call("task:create", {"board_id": board_id, "title": "From node B"})
        assert created["ok"], created
        seen_on_a = await a.wait_for("task:created")
        assert seen_on_a[0]["task"]["title"] == "From node B"
        updated = await a.call(
            "task:update",
            {"task_id": seen_on_a[0]["task"]["id"], "base_version": 1, "changes": {"title": "A"}},
        )
        assert updated["ok"], updated
        assert (await b.wait_for("task:updated"))[0]["task"]["title"] == "A"

        listed = await a.call("presence:list", {"board_id": board_id})
        assert {u["id"] for u in listed["data"]["users"]} == {alice.id, bob.id}

        # Node B dies without any chance to clean up.
        proc_b.send_signal(signal.SIGKILL)
        await asyncio.wait_for(proc_b.wait(), 10)
        killed_at = time.monotonic()
        left = await a.wait_for("presence", count=2, timeout=30)
        cleared_after = time.monotonic() - killed_at
        assert left[-1]["state"] == "left" and left[-1]["user"]["id"] == bob.id
        # NODE_TTL=2 s and REAP_INTERVAL=0.5 s in tests: well inside the 30 s bound
        assert cleared_after < 10
        listed = await a.call("presence:list", {"board_id": board_id})
        assert [u["id"] for u in listed["data"]["users"]] == [alice.id]
        redis = Redis.from_url(hub.settings.redis_url, decode_responses=True)
        try:
            prefix = hub.settings.redis_key_prefix
            assert await redis.scard(f"{prefix}ws:user:{bob.id}:connections") == 0
            assert "node-b" not in await redis.smembers(f"{prefix}ws:nodes")
        finally:
            await redis.aclose()
    finally:
        await a.close()
        await b.sio.eio.disconnect(abort=True)
