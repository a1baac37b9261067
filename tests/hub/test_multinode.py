"""Two hub nodes sharing Redis: emits cross nodes, and a dead node's presence is reaped."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable

import aiohttp
import pytest
from redis.asyncio import Redis

from hub.devstack import free_port
from tests.support import Hub


@pytest.fixture
async def node_process(
    node_env: Callable[..., dict[str, str]],
) -> AsyncIterator[Callable[..., object]]:
    """Start `taskhub serve` as a real separate process (a second node)."""
    procs: list[asyncio.subprocess.Process] = []

    async def start(**overrides: str) -> tuple[str, asyncio.subprocess.Process]:
        port = free_port()
        env = {**os.environ, **node_env(PORT=str(port), HOST="127.0.0.1", **overrides)}
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "hub.cli",
            "serve",
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        procs.append(proc)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        async with aiohttp.ClientSession() as session:
            while True:
                assert proc.returncode is None, "the node exited while starting"
                try:
                    async with session.get(url + "/healthz") as resp:
                        if resp.status == 200:
                            return url, proc
                except aiohttp.ClientError:
                    pass
                assert time.monotonic() < deadline, "node did not start"
                await asyncio.sleep(0.1)

    yield start
    for proc in procs:
        if proc.returncode is None:
            proc.terminate()
            await asyncio.wait_for(proc.wait(), 10)


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
