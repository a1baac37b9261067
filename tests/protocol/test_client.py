"""The Python client against a real hub: logins, typed calls and errors, catch-up after
a dropped connection, on both serializers."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from handlers.socket_hub import HUB_NAMESPACE, HUB_NAMESPACES
from protocol.client import TaskhubClient
from protocol.errors import (
    Forbidden,
    InvalidPayload,
    Unauthorized,
    Unavailable,
    VersionConflict,
    server_shutdown,
)
from protocol.models import PublicUser, TaskEvent, TaskStatus
from protocol.replies import BoardJoined, PresenceChange
from protocol.serializers import Serializer
from tests.support import Account, Hub

SERIALIZERS = pytest.mark.parametrize("serializer", list(Serializer))


def client_of(hub: Hub, account: Account, serializer: Serializer, **kw: Any) -> TaskhubClient:
    return TaskhubClient(
        hub.url, email=account.email, password=account.password, serializer=serializer, **kw
    )


async def eventually(check: Callable[[], bool], timeout: float = 10) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def drop_connection(client: TaskhubClient) -> None:
    """Cut the websocket under the client, as a network failure would."""
    ws, sid = client.sio.eio.ws, client.sio.sid
    assert ws is not None
    await ws.close()
    # gone, or already back on a new connection (the jitter can make the delay ~0)
    await eventually(lambda: not client.sio.connected or client.sio.sid != sid)


@SERIALIZERS
async def test_login_typed_calls_and_events(hub: Hub, serializer: Serializer) -> None:
    alice, bob = await hub.register("Alice"), await hub.register("Bob")
    board_id = await hub.create_board(alice)
    await hub.add_member(alice, board_id, bob, "editor")
    async with client_of(hub, alice, serializer) as client:
        assert client.user is not None and str(client.user.id) == alice.id
        created: list[TaskEvent] = []
        presence: list[PresenceChange] = []
        client.on("task:created", created.append)

        @client.on("presence")
        async def on_presence(change: PresenceChange) -> None:
            presence.append(change)

        joined = await client.join_board(board_id)
        assert isinstance(joined, BoardJoined) and joined.mode == "snapshot"
        assert joined.tasks == [] and client.last_seq(board_id) == joined.seq == 0

        event = await client.create_task(board_id, "Write docs", tags=["docs"])
        assert event.type == "task.created" and event.task.title == "Write docs"
        assert event.task.tags == ["docs"] and event.seq == 1
        await eventually(lambda: len(created) == 1)
        assert created[0].event_id == event.event_id

        moved = await client.move_task(
            event.task.id, event.task.version, 2.5, status=TaskStatus.IN_PROGRESS
        )
        assert moved.task.status == TaskStatus.IN_PROGRESS and moved.task.position == 2.5
        bob_peer = await hub.peer(bob)
        try:
            assert (await bob_peer.call("board:join", {"board_id": board_id}))["ok"]
            await eventually(lambda: len(presence) == 1)
            assert presence[0].state == "joined" and str(presence[0].user.id) == bob.id
            users = await client.presence(board_id)
            assert {str(u.id) for u in users} == {alice.id, bob.id}
            assert all(isinstance(u, PublicUser) for u in users)
        finally:
            await bob_peer.close()

        page = await client.notifications()
        assert page.notifications == [] and page.next is None
        assert await client.read_notifications(every=True) == 0
        deleted = await client.delete_task(event.task.id, moved.task.version)
        assert deleted.type == "task.deleted" and client.last_seq(board_id) == deleted.seq
        await client.leave_board(board_id)
        assert client.last_seq(board_id) is None


@SERIALIZERS
async def test_error_acks_are_typed_exceptions(hub: Hub, serializer: Serializer) -> None:
    alice, bob, eve = (
        await hub.register("Alice"),
        await hub.register("Bob"),
        await hub.register("Eve"),
    )
    board_id = await hub.create_board(alice)
    await hub.add_member(alice, board_id, bob, "editor")
    async with client_of(hub, alice, serializer) as client:
        task = (await client.create_task(board_id, "Original")).task
        other = await hub.peer(bob)
        try:
            edited = await other.call(
                "task:update",
                {"task_id": str(task.id), "base_version": 1, "changes": {"title": "Theirs"}},
            )
            assert edited["ok"], edited
        finally:
            await other.close()

        with pytest.raises(VersionConflict) as conflict:
            await client.update_task(task.id, task.version, title="Mine")
        assert conflict.value.task is not None
        assert conflict.value.task.title == "Theirs" and conflict.value.task.version == 2
        assert conflict.value.conflicting_fields == ["title"]
        # rebased on the current task, the edit goes through
        rebased = await client.update_task(task.id, conflict.value.task.version, title="Mine")
        assert rebased.task.title == "Mine" and rebased.task.version == 3

        with pytest.raises(InvalidPayload):
            await client.create_task(board_id, "")
        with pytest.raises(InvalidPayload) as unknown:
            await client.call("task:explode", {"board_id": board_id})
        assert "task:create" in unknown.value.details["events"]
        assert await client.presence(board_id) == []  # still connected and working

    async with client_of(hub, eve, serializer) as outsider:
        with pytest.raises(Forbidden):
            await outsider.join_board(board_id)


@SERIALIZERS
async def test_refused_logins_raise_unauthorized(hub: Hub, serializer: Serializer) -> None:
    alice = await hub.register("Alice")
    wrong = TaskhubClient(
        hub.url, email=alice.email, password="not-the-password", serializer=serializer
    )
    with pytest.raises(Unauthorized):
        await wrong.connect()
    bad_token = TaskhubClient(hub.url, token="not-a-token", serializer=serializer)
    with pytest.raises(Unauthorized):
        await bad_token.connect()
    # an access token works as a token too
    async with TaskhubClient(hub.url, token=alice.access_token, serializer=serializer) as ok:
        assert ok.sio.connected and ok.user is None
    with pytest.raises(ValueError):
        TaskhubClient(hub.url, email=alice.email)


@SERIALIZERS
async def test_missed_events_are_delivered_in_order_after_a_reconnect(
    hub: Hub, serializer: Serializer
) -> None:
    alice, bob = await hub.register("Alice"), await hub.register("Bob")
    board_id = await hub.create_board(alice)
    await hub.add_member(alice, board_id, bob, "editor")
    other = await hub.peer(bob)
    client = client_of(hub, alice, serializer, reconnection_delay=1.5)
    seen: list[tuple[str, TaskEvent]] = []
    for name in ("task:created", "task:updated", "task:deleted"):
        client.on(name, lambda event, name=name: seen.append((name, event)))
    try:
        await client.connect()
        await client.join_board(board_id)
        created = await other.call("task:create", {"board_id": board_id, "title": "v0"})
        task_id, version = created["data"]["task"]["id"], 1
        await eventually(lambda: len(seen) == 1)

        await drop_connection(client)
        for n in range(1, 4):
            ack = await other.call(
                "task:update",
                {"task_id": task_id, "base_version": version, "changes": {"title": f"v{n}"}},
            )
            version = ack["data"]["task"]["version"]
        made = await other.call("task:create", {"board_id": board_id, "title": "second"})
        assert not client.sio.connected, "the edits were meant to happen while disconnected"

        await eventually(lambda: len(seen) == 5)
        assert [name for name, _ in seen] == ["task:created"] + ["task:updated"] * 3 + [
            "task:created"
        ]
        assert [e.seq for _, e in seen] == [1, 2, 3, 4, 5]
        assert [e.task.title for _, e in seen[1:4]] == ["v1", "v2", "v3"]
        assert client.last_seq(board_id) == made["data"]["seq"] == 5

        # live events flow again, once each
        ack = await other.call("task:delete", {"task_id": task_id})
        await eventually(lambda: len(seen) == 6)
        assert seen[-1][0] == "task:deleted" and seen[-1][1].seq == ack["data"]["seq"] == 6
        await asyncio.sleep(0.3)
        assert len(seen) == 6
    finally:
        await client.close()
        await other.close()


@SERIALIZERS
async def test_a_write_cut_off_by_a_drop_is_sent_again_and_applied_once(
    hub: Hub, serializer: Serializer
) -> None:
    alice = await hub.register("Alice")
    board_id = await hub.create_board(alice)
    client = client_of(hub, alice, serializer, reconnection_delay=0.2)
    conn = await hub.db()
    try:
        await client.connect()
        for n in range(3):
            write = asyncio.create_task(client.create_task(board_id, f"once {n}"))
            await asyncio.sleep(0.001 * n)  # the drop lands before or after the emit
            await drop_connection(client)
            event = await asyncio.wait_for(write, 15)
            assert event.task.title == f"once {n}"
        titles = await conn.fetch(
            "SELECT title FROM tasks WHERE board_id = $1 ORDER BY title", uuid.UUID(board_id)
        )
        assert [r["title"] for r in titles] == ["once 0", "once 1", "once 2"]
    finally:
        await conn.close()
        await client.close()


async def test_far_behind_reconnect_gets_a_snapshot(start_hub: Callable[..., object]) -> None:
    hub: Hub = await start_hub(CATCH_UP_WINDOW="2")  # type: ignore[misc]
    alice = await hub.register("Alice")
    board_id = await hub.create_board(alice)
    other = await hub.peer(alice)  # another tab of the same person
    client = client_of(hub, alice, Serializer.MSGPACK, reconnection_delay=1.5)
    snapshots: list[BoardJoined] = []
    updates: list[TaskEvent] = []
    client.on_snapshot(snapshots.append)
    client.on("task:created", updates.append)
    try:
        await client.connect()
        await client.join_board(board_id)
        await drop_connection(client)
        for n in range(4):
            assert (await other.call("task:create", {"board_id": board_id, "title": f"t{n}"}))["ok"]
        await eventually(lambda: len(snapshots) == 1)
        assert snapshots[0].mode == "snapshot" and snapshots[0].seq == 4
        assert [t.title for t in snapshots[0].tasks] == ["t0", "t1", "t2", "t3"]
        assert updates == [] and client.last_seq(board_id) == 4
    finally:
        await client.close()
        await other.close()


async def test_a_new_login_after_the_session_was_revoked(hub: Hub) -> None:
    """A refused token is renewed: the refresh token is revoked too, so the client
    logs in again with its password and catches up."""
    alice = await hub.register("Alice")
    board_id = await hub.create_board(alice)
    client = client_of(hub, alice, Serializer.JSON, reconnection_delay=0.2)
    created: list[TaskEvent] = []
    client.on("task:created", created.append)
    conn = await hub.db()
    try:
        await client.connect()
        await client.join_board(board_id)
        await conn.execute(
            "UPDATE sessions SET revoked_at = now() WHERE user_id = $1", uuid.UUID(alice.id)
        )
        await drop_connection(client)
        other = await hub.peer(await hub.register("Bob"))
        await other.close()
        peer_token = await hub.request(
            "POST", "/api/auth/login", json={"email": alice.email, "password": alice.password}
        )
        tab = await hub.peer(
            Account(alice.id, alice.email, alice.password, peer_token[1]["access_token"], "")
        )
        try:
            assert (await tab.call("task:create", {"board_id": board_id, "title": "x"}))["ok"]
        finally:
            await tab.close()
        await eventually(lambda: len(created) == 1)
        assert client.sio.connected
        sessions = await conn.fetchval(
            "SELECT count(*) FROM sessions WHERE user_id = $1 AND revoked_at IS NULL",
            uuid.UUID(alice.id),
        )
        assert sessions >= 2  # the tab's login and the client's new one
    finally:
        await conn.close()
        await client.close()


@SERIALIZERS
async def test_a_connection_the_hub_closes_is_not_reopened(
    hub: Hub, serializer: Serializer
) -> None:
    alice = await hub.register("Alice")
    client = client_of(hub, alice, serializer, reconnection_delay=0.2)
    await client.connect()
    try:
        sid = client.sio.get_sid("/")
        assert sid is not None
        # through the JSON namespace: a msgpack client's sid is reached over Redis
        await hub.app[HUB_NAMESPACE].disconnect(sid)
        with pytest.raises(Unavailable):
            await asyncio.wait_for(client.wait(), 10)
        with pytest.raises(Unavailable):
            await client.presence(uuid.uuid4())
        await asyncio.sleep(0.5)
        assert not client.sio.connected
    finally:
        await client.close()


@SERIALIZERS
async def test_a_node_shutting_down_is_left_and_come_back_to_losing_nothing(
    start_hub: Callable[..., object], serializer: Serializer
) -> None:
    """`server_shutdown` asks the client to come back: it reconnects (here to the same
    node, still up; behind a balancer, to a live one), sends again the write the close
    cut off, applied once, and catches up the board by seq."""
    stopping: Hub = await start_hub()  # type: ignore[misc]
    other_node: Hub = await start_hub()  # type: ignore[misc]
    alice, bob = await stopping.register("Alice"), await stopping.register("Bob")
    board_id = await stopping.create_board(alice)
    await stopping.add_member(alice, board_id, bob, "editor")
    other = await other_node.peer(bob)
    client = client_of(stopping, alice, serializer, reconnection_delay=1.5)
    closings: list[dict[str, Any]] = []
    seen: list[TaskEvent] = []
    client.on("connection:closing", closings.append)
    client.on("task:created", seen.append)
    conn = await stopping.db()
    try:
        await client.connect()
        await client.join_board(board_id)
        for n in range(3):
            sid = client.sio.get_sid("/")
            write = asyncio.create_task(client.create_task(board_id, f"mine {n}"))
            await asyncio.sleep(0.001 * n)  # the close lands before or after the emit
            assert await stopping.app[HUB_NAMESPACES].close_local(server_shutdown()) == 1
            await eventually(lambda: not client.sio.connected)
            made = await other.call("task:create", {"board_id": board_id, "title": f"theirs {n}"})
            assert made["ok"], made
            event = await asyncio.wait_for(write, 15)
            assert event.task.title == f"mine {n}"
            assert client.sio.connected and client.sio.get_sid("/") != sid
        assert [c["details"] for c in closings] == [{"reason": "server_shutdown"}] * 3
        assert {c["code"] for c in closings} == {"unavailable"}
        titles = await conn.fetch(
            "SELECT title FROM tasks WHERE board_id = $1 ORDER BY title", uuid.UUID(board_id)
        )
        assert sorted(r["title"] for r in titles) == sorted(
            [f"mine {n}" for n in range(3)] + [f"theirs {n}" for n in range(3)]
        )
        last = await conn.fetchval(
            "SELECT max(seq) FROM task_events WHERE board_id = $1", uuid.UUID(board_id)
        )
        await eventually(lambda: client.last_seq(board_id) == last)
        assert [e.seq for e in seen] == list(range(1, last + 1))
        assert len(await client.presence(board_id)) >= 1  # in use, not ended
    finally:
        await conn.close()
        await client.close()
        await other.close()
