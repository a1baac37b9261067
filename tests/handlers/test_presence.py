"""Board presence as members see it: first join and last leave only."""

from __future__ import annotations

import asyncio
import uuid

from redis.asyncio import Redis

from handlers import presence
from handlers.socket_hub import HUB_NAMESPACES
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


async def test_the_resync_after_an_outage_makes_redis_match_the_node(hub: Hub) -> None:
    """What the heartbeat runs once Redis is back (handlers/presence.py): a connection
    Redis still lists but the node no longer holds (it closed while Redis was down)
    is removed and announced gone; a board a live connection left while its leave
    could not be recorded is left; the live join stays."""
    alice, bob = await hub.register("Alice"), await hub.register("Bob")
    board_id = await hub.create_board(alice)
    other_board = await hub.create_board(alice)
    await hub.add_member(alice, board_id, bob, "viewer")
    namespaces = hub.app[HUB_NAMESPACES]
    store = namespaces.primary.deps.presence
    node = hub.settings.node_id
    watcher = await hub.peer(alice)
    try:
        await watcher.call("board:join", {"board_id": board_id})
        await watcher.call("board:join", {"board_id": other_board})
        # Bob's tab, closed while Redis was down: still on record
        await store.add_connection("closed-tab", uuid.UUID(bob.id), node)
        await store.join_board("closed-tab", uuid.UUID(bob.id), uuid.UUID(board_id), name="Bob")
        await watcher.wait_for("presence")
        # Alice left the other board while Redis was down: her join is still on record
        (sid,) = namespaces.local_sids()
        await namespaces.primary.leave_room(sid, f"board:{other_board}")

        for ns in namespaces:
            await presence.register_again(ns)
        assert await presence.forget_closed(namespaces, node) == 1

        left = await watcher.wait_for("presence", 2)
        assert left[-1] == {
            "board_id": board_id,
            "user": {"id": bob.id, "name": "Bob"},
            "state": "left",
        }
        assert await store.boards_of(sid) == {uuid.UUID(board_id)}
        assert await store.connections_of(uuid.UUID(bob.id)) == []
        listed = await watcher.call("presence:list", {"board_id": board_id})
        assert [u["id"] for u in listed["data"]["users"]] == [alice.id]
        listed = await watcher.call("presence:list", {"board_id": other_board})
        assert listed["data"]["users"] == []
    finally:
        await watcher.close()


async def test_a_leave_sent_right_after_a_join_leaves(hub: Hub) -> None:
    """The board page sends `board:leave` when it is closed without waiting for its
    join's ack (a person who opens a board and goes straight back). Handled before
    the join, the leave would find nothing to leave and the join would then keep the
    connection in the room and the person on the board until the tab closes."""
    alice, bob = await hub.register("Alice"), await hub.register("Bob")
    board_id = await hub.create_board(alice)
    await hub.add_member(alice, board_id, bob, "editor")
    watcher, bob_tab = await hub.peer(alice), await hub.peer(bob)
    try:
        await watcher.call("board:join", {"board_id": board_id})
        for _ in range(10):
            joined, left = await asyncio.gather(
                bob_tab.call("board:join", {"board_id": board_id}),
                bob_tab.call("board:leave", {"board_id": board_id}),
            )
            assert joined["ok"] and left["ok"], (joined, left)
        listed = await watcher.call("presence:list", {"board_id": board_id})
        assert [u["id"] for u in listed["data"]["users"]] == [alice.id]
        # and out of the room: the board's events no longer reach him
        created = await watcher.call("task:create", {"board_id": board_id, "title": "After"})
        assert created["ok"], created
        await watcher.wait_for("task:created")
        await asyncio.sleep(0.3)
        assert bob_tab.events("task:created") == []
    finally:
        await watcher.close()
        await bob_tab.close()
