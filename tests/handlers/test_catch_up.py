"""Reconnect catch-up by seq, its window, request ids as correlation ids, and the
nudge a node gives its clients after it lost the Redis channel (handlers/catch_up.py)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

from handlers import catch_up
from handlers.socket_hub import HUB_NAMESPACES
from tests.support import Hub


async def test_reconnect_with_since_seq_gets_exactly_the_missed_events(hub: Hub) -> None:
    alice, bob = await hub.register("Alice"), await hub.register("Bob")
    board_id = await hub.create_board(alice)
    await hub.add_member(alice, board_id, bob, "editor")
    a = await hub.peer(alice)
    b = await hub.peer(bob)
    try:
        created = await a.call("task:create", {"board_id": board_id, "title": "T"})
        task = created["data"]["task"]
        joined = await b.call("board:join", {"board_id": board_id})
        last_seq = joined["data"]["seq"]
        await b.close()  # the laptop sleeps

        version = task["version"]
        for n in range(5):
            ack = await a.call(
                "task:update",
                {"task_id": task["id"], "base_version": version, "changes": {"title": f"v{n}"}},
            )
            version = ack["data"]["task"]["version"]

        b = await hub.peer(bob)  # and wakes up
        caught = await b.call("board:join", {"board_id": board_id, "since_seq": last_seq})
        assert caught["ok"], caught
        assert caught["data"]["mode"] == "events"
        events = caught["data"]["events"]
        assert [e["seq"] for e in events] == [last_seq + n for n in range(1, 6)]
        assert [e["task"]["title"] for e in events] == [f"v{n}" for n in range(5)]
        assert caught["data"]["seq"] == last_seq + 5
        assert "tasks" not in caught["data"]
    finally:
        await a.close()
        await b.close()


async def test_gap_beyond_the_window_gets_a_snapshot(start_hub: Callable[..., object]) -> None:
    hub: Hub = await start_hub(CATCH_UP_WINDOW="3")  # type: ignore[misc]
    alice = await hub.register("Alice")
    board_id = await hub.create_board(alice)
    a = await hub.peer(alice)
    try:
        for n in range(5):
            assert (await a.call("task:create", {"board_id": board_id, "title": f"t{n}"}))["ok"]
        far = await a.call("board:join", {"board_id": board_id, "since_seq": 1})
        assert far["data"]["mode"] == "snapshot" and len(far["data"]["tasks"]) == 5
        near = await a.call("board:join", {"board_id": board_id, "since_seq": 2})
        assert near["data"]["mode"] == "events"
        assert [e["seq"] for e in near["data"]["events"]] == [3, 4, 5]
    finally:
        await a.close()


async def test_request_id_becomes_the_correlation_id(hub: Hub) -> None:
    alice = await hub.register("Alice")
    board_id = await hub.create_board(alice)
    a = await hub.peer(alice)
    try:
        ack = await a.call(
            "task:create", {"board_id": board_id, "title": "T", "request_id": "req-42:a.b"}
        )
        assert ack["data"]["correlation_id"] == "req-42:a.b"
        bad = await a.call(
            "task:create", {"board_id": board_id, "title": "T", "request_id": "has space"}
        )
        assert bad["error"]["code"] == "invalid_payload"
        plain = await a.call("task:create", {"board_id": board_id, "title": "U"})
        assert plain["data"]["correlation_id"] not in (None, "req-42:a.b")
    finally:
        await a.close()
    conn = await hub.db()
    try:
        stored = await conn.fetchval(
            "SELECT correlation_id FROM task_events WHERE task_id = $1",
            uuid.UUID(ack["data"]["task"]["id"]),
        )
        count = await conn.fetchval("SELECT count(*) FROM tasks")
    finally:
        await conn.close()
    assert stored == "req-42:a.b" and count == 2


async def test_after_a_lost_channel_the_boards_clients_here_get_its_newest_event(hub: Hub) -> None:
    """Both servers (JSON, msgpack) nudge their own clients of the board, and nobody else."""
    alice, bob = await hub.register("Alice"), await hub.register("Bob")
    board_id = await hub.create_board(alice)
    await hub.add_member(alice, board_id, bob, "viewer")
    writer = await hub.peer(alice)
    watchers = [await hub.peer(bob), await hub.peer(bob, msgpack=True)]
    try:
        for watcher in watchers:
            assert (await watcher.call("board:join", {"board_id": board_id}))["ok"]
        for n in range(3):
            assert (await writer.call("task:create", {"board_id": board_id, "title": f"t{n}"}))[
                "ok"
            ]
        for watcher in watchers:
            await watcher.wait_for("task:created", 3)

        nudged = [await catch_up.after_lost_channel(ns) for ns in hub.app[HUB_NAMESPACES]]

        assert nudged == [1, 1]
        for watcher in watchers:
            again = await watcher.wait_for("task:created", 4)
            assert again[-1]["seq"] == 3 and again[-1]["event_id"] == again[2]["event_id"]
        await asyncio.sleep(0.2)
        assert len(writer.events("task:created")) == 0  # not on the board: nothing
    finally:
        for peer in (writer, *watchers):
            await peer.close()
