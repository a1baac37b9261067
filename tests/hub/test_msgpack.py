"""msgpack clients on their own path: they share rooms with JSON clients on every node,
hear workers' emits, and get the same acks for bad input."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from typing import Any

import msgpack
import pytest
import socketio

from hub.workers import RedisRoomEmitter
from protocol.serializers import Serializer
from tests.support import Hub, Peer, settled_states


async def test_json_and_msgpack_clients_share_rooms_across_nodes(
    start_hub: Callable[..., object],
) -> None:
    node_a: Hub = await start_hub()  # type: ignore[misc]
    node_b: Hub = await start_hub()  # type: ignore[misc]
    alice, bob, carol = (
        await node_a.register("Alice"),
        await node_a.register("Bob"),
        await node_a.register("Carol"),
    )
    board_id = await node_a.create_board(alice)
    await node_a.add_member(alice, board_id, bob, "editor")
    await node_a.add_member(alice, board_id, carol, "viewer")

    bot = await node_a.peer(alice, msgpack=True)  # msgpack, node A
    far = await node_b.peer(bob)  # JSON, node B
    near = await node_a.peer(carol)  # JSON, node A (the msgpack server's sibling)
    peers = (bot, far, near)
    try:
        for peer in peers:
            joined = await peer.call("board:join", {"board_id": board_id})
            assert joined["ok"], joined

        created = await bot.call("task:create", {"board_id": board_id, "title": "From msgpack"})
        assert created["ok"], created
        task = created["data"]["task"]
        for peer in peers:
            seen = await peer.wait_for("task:created")
            assert seen[0]["task"]["id"] == task["id"]

        updated = await far.call(
            "task:update",
            {"task_id": task["id"], "base_version": 1, "changes": {"title": "From JSON"}},
        )
        assert updated["ok"], updated
        for peer in peers:
            seen = await peer.wait_for("task:updated")
            assert seen[0]["task"]["title"] == "From JSON"
            assert seen[0]["seq"] == updated["data"]["seq"]

        await asyncio.sleep(0.5)  # anything duplicated would have arrived by now
        for peer in peers:
            assert len(peer.events("task:created")) == 1, peer.received
            assert len(peer.events("task:updated")) == 1, peer.received
        # presence of the later joiners reached the msgpack client too, once each
        assert sorted(p["user"]["id"] for p in bot.events("presence")) == sorted([bob.id, carol.id])
    finally:
        for peer in peers:
            await peer.close()


async def test_removed_msgpack_member_stops_hearing_the_board(hub: Hub) -> None:
    alice, bob = await hub.register("Alice"), await hub.register("Bob")
    board_id = await hub.create_board(alice)
    await hub.add_member(alice, board_id, bob, "editor")
    owner = await hub.peer(alice)
    bot = await hub.peer(bob, msgpack=True)
    try:
        assert (await owner.call("board:join", {"board_id": board_id}))["ok"]
        assert (await bot.call("board:join", {"board_id": board_id}))["ok"]
        # the REST view evicts through the JSON server; the sid lives on the msgpack one
        status, _ = await hub.request(
            "DELETE", f"/api/boards/{board_id}/members/{bob.id}", token=alice.access_token
        )
        assert status == 204
        left = await owner.wait_for("presence", 2)
        assert left[-1] == {
            "board_id": board_id,
            "user": {"id": bob.id, "name": "Bob"},
            "state": "left",
        }
        assert (await owner.call("task:create", {"board_id": board_id, "title": "Secret"}))["ok"]
        await owner.wait_for("task:created")
        await asyncio.sleep(0.5)
        assert bot.events("task:created") == []
        refused = await bot.call("board:join", {"board_id": board_id})
        assert refused["error"]["code"] == "forbidden"
    finally:
        await owner.close()
        await bot.close()


async def test_a_stalled_node_puts_its_msgpack_people_back(
    hub: Hub, node_process: Callable[..., Any]
) -> None:
    """The heartbeat and re-registration cover the msgpack server's connections."""
    url, proc = await node_process(NODE_ID="node-slow")
    elsewhere = Hub(url=url, app=hub.app, server=hub.server, settings=hub.settings)
    alice, bob = await hub.register("Alice"), await hub.register("Bob")
    board_id = await hub.create_board(alice)
    await hub.add_member(alice, board_id, bob, "editor")
    watcher = await hub.peer(alice)
    bot = await elsewhere.peer(bob, msgpack=True)

    async def present() -> set[str]:
        listed = await watcher.call("presence:list", {"board_id": board_id})
        return {u["id"] for u in listed["data"]["users"]}

    async def until_present(expected: set[str]) -> None:
        for _ in range(100):
            if await present() == expected:
                return
            await asyncio.sleep(0.1)
        assert await present() == expected

    try:
        assert (await watcher.call("board:join", {"board_id": board_id}))["ok"]
        assert (await bot.call("board:join", {"board_id": board_id}))["ok"]
        await until_present({alice.id, bob.id})
        proc.send_signal(signal.SIGSTOP)
        try:
            await until_present({alice.id})  # reaped: NODE_TTL is 2 s here
        finally:
            proc.send_signal(signal.SIGCONT)
        await until_present({alice.id, bob.id})  # registered again, board join included
        states = await settled_states(watcher, bob, "joined", 5)
        assert states[-2:] == ["left", "joined"], states
    finally:
        await watcher.close()
        await bot.close()


async def test_worker_emits_reach_msgpack_clients(hub: Hub) -> None:
    alice = await hub.register("Alice")
    bot = await hub.peer(alice, msgpack=True)
    tab = await hub.peer(alice)
    emitter = RedisRoomEmitter(hub.settings.redis_url, hub.settings.socketio_channel, "test")
    try:
        await emitter.emit("notifications:unread", {"unread": 3}, room=f"user:{alice.id}")
        for peer in (bot, tab):
            assert await peer.wait_for("notifications:unread") == [{"unread": 3}]
        await asyncio.sleep(0.3)
        assert len(bot.events("notifications:unread")) == 1
    finally:
        await emitter.close()
        await bot.close()
        await tab.close()


@pytest.mark.parametrize(
    "payload",
    [
        b"\x00\x01garbage",
        ["not", "an", "object"],
        {"board_id": b"\x12\x34", "title": "bytes for an id"},
        {"board_id": "{board}", "title": "a msgpack timestamp", "due_date": msgpack.Timestamp(0)},
        {"board_id": "{board}", "title": "an extension type", "due_date": msgpack.ExtType(7, b"x")},
        {"board_id": "{board}", "title": b"bytes for text"},
        {"board_id": "{board}", "title": "x", "tags": [1, 2.5, None, True]},
    ],
    ids=["bytes", "list", "bytes-id", "timestamp", "ext-type", "bytes-title", "mixed-tags"],
)
async def test_msgpack_garbage_gets_invalid_payload_and_the_connection_stays(
    hub: Hub, payload: Any
) -> None:
    alice = await hub.register("Alice")
    board_id = await hub.create_board(alice)
    if isinstance(payload, dict):
        payload = {k: board_id if v == "{board}" else v for k, v in payload.items()}
    bot = await hub.peer(alice, msgpack=True)
    try:
        refused = await bot.call("task:create", payload)
        assert refused["ok"] is False and refused["error"]["code"] == "invalid_payload", refused
        unknown = await bot.call("task:explode", {"board_id": board_id})
        assert unknown["error"]["code"] == "invalid_payload"
        assert "task:create" in unknown["error"]["details"]["events"]
        fine = await bot.call("task:create", {"board_id": board_id, "title": "still here"})
        assert fine["ok"], fine
    finally:
        await bot.close()


async def test_msgpack_connect_is_refused_with_a_reason(hub: Hub) -> None:
    sio = socketio.AsyncClient(reconnection=False, serializer="msgpack")
    reasons: list[Any] = []

    @sio.event
    async def connect_error(data: Any) -> None:
        reasons.append(data)

    try:
        with pytest.raises(socketio.exceptions.ConnectionError):
            await sio.connect(
                hub.url,
                auth={"token": "thb_not-a-token"},  # a bot token's shape: no browser needed
                transports=["websocket"],
                socketio_path=Serializer.MSGPACK.socketio_path,
                wait_timeout=5,
            )
    finally:
        await sio.disconnect()
    assert len(reasons) == 1 and reasons[0]["code"] == "unauthorized", reasons
    assert reasons[0]["details"] == {"reason": "invalid_token"}


async def test_json_client_cannot_use_the_msgpack_path(hub: Hub) -> None:
    """Each path speaks one serializer; a JSON client there does not connect."""
    alice = await hub.register("Alice")
    wrong = Peer(hub.url, alice.access_token, socketio_path=Serializer.MSGPACK.socketio_path)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await wrong.connect()
    await wrong.close()
