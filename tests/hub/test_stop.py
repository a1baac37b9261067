"""A node that stops closes every Redis connection it opened."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from redis.asyncio import Redis

from tests.support import Hub


async def _connection_roles(redis: Redis, node_id: str) -> list[str]:
    """Who of the node is connected to Redis, by the names its connections gave themselves."""
    return sorted(
        str(client["name"]).split(":")[1]
        for client in await redis.client_list()
        if str(client.get("name", "")).endswith(f":{node_id}")
    )


async def test_a_stopped_node_leaves_no_connection_open_on_redis(
    start_hub: Callable[..., object],
) -> None:
    hub: Hub = await start_hub(  # type: ignore[misc]
        EMBEDDED_WORKERS="scheduler", SCHEDULER_INTERVAL="0.1"
    )
    node_id = hub.settings.node_id
    owner, member = await hub.register("Owner"), await hub.register("Member")
    board_id = await hub.create_board(owner)
    await hub.add_member(owner, board_id, member, "editor")
    # every kind of client in use: presence, the Socket.IO channel's publisher and
    # listener (both servers, JSON and msgpack, share them), and the scheduler's Redis
    # and room emitter
    peer = await hub.peer(member, msgpack=True)
    watcher = await hub.peer(owner)
    assert (await watcher.call("board:join", {"board_id": board_id}))["ok"]
    assert (await peer.call("board:join", {"board_id": board_id}))["ok"]
    created = await peer.call("task:create", {"board_id": board_id, "title": "Call the vet"})
    assert created["ok"], created
    await watcher.wait_for("task:created")
    soon = (datetime.now(UTC) + timedelta(seconds=0.5)).isoformat()
    reminder = {"task_id": created["data"]["task"]["id"], "remind_at": soon, "method": "in_app"}
    assert (await peer.call("reminders:create", reminder))["ok"]
    await peer.wait_for("notification", timeout=10)

    async with Redis.from_url(hub.settings.redis_url) as redis:
        assert set(await _connection_roles(redis, node_id)) == {
            "emitter",
            "hub",
            "socketio-listener",
            "socketio-publisher",
            "workers",
        }
        # the clients leave first, so the stop is quick (a node stopped under
        # connected clients closes them with `server_shutdown`: tests/chaos/test_nodes.py)
        await peer.close()
        await watcher.close()
        await hub.server.close()
        assert await _connection_roles(redis, node_id) == []
