"""Issue 7 point 7, faults of hub nodes, behind a TCP balancer as in production:

- one of two nodes killed -9 while clients edit: no acknowledged edit lost, its
  users' presence gone within 30 s, its clients back on the other node with every
  event they missed, by seq, none twice;
- both nodes restarted one after the other with SIGTERM (a rolling deploy): their
  clients are told `server_shutdown`, come back on the other node, lose nothing.

Timers are production's (NODE_TTL 15 s, REAP_INTERVAL 5 s); the figures measured
are printed (run with `-s`).
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import pytest
from redis.asyncio import Redis

from protocol.client import TaskhubClient
from protocol.errors import Unavailable
from protocol.replies import PresenceChange
from storage.keys import RedisKeys
from tests.chaos.clients import Editor, Person, Watcher, board_history, client, close_all, team
from tests.chaos.stack import Balancer, Deployment, Node, ports_of, until

EDITORS = 6
WATCHERS = 20
# What an edit may meet before its ack, each time sent again with its op_id, which
# makes it harmless: `unavailable`, when the call waited longer than its 5 s for the
# reconnect (a loaded machine), or the connect it waited for was refused. Anything
# else fails the edit, hence the test; none came in the runs so far.
TRANSIENT = {"unavailable"}


@dataclass
class Crowd:
    """Editors and watchers of one board, all connected through the balancer."""

    board_id: str
    editors: list[Editor]
    watchers: list[Watcher]
    clients: list[TaskhubClient]
    people: list[Person]
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    runs: list[asyncio.Task[None]] = field(default_factory=list)

    def start_editing(self) -> None:
        self.runs = [asyncio.create_task(editor.run(self.stop)) for editor in self.editors]

    async def stop_editing(self) -> None:
        self.stop.set()
        await asyncio.gather(*self.runs)


@asynccontextmanager
async def crowd(url: str, editors: int, watchers: int) -> AsyncIterator[Crowd]:
    crew = await team(url, editors, watchers)
    clients = [client(url, person) for person in crew.editors + crew.watchers]
    try:
        await asyncio.gather(*(hub.connect() for hub in clients))
        made = await asyncio.gather(
            *(Editor.on_board(hub, crew.board_id) for hub in clients[:editors])
        )
        seen = await asyncio.gather(
            *(Watcher.on_board(hub, crew.board_id) for hub in clients[editors:])
        )
        people = crew.editors + crew.watchers
        yield Crowd(crew.board_id, list(made), list(seen), clients, people)
    finally:
        await close_all(clients)


async def detach(people: Crowd, url: str) -> tuple[Person, TaskhubClient]:
    """The crowd's last watcher, connected again straight to `url` instead of through
    the balancer, and no longer one of the crowd."""
    person = people.people.pop()
    await people.clients.pop().close()
    people.watchers.pop()
    hub = client(url, person)
    await hub.connect()
    await hub.join_board(people.board_id)
    return person, hub


def connected(hub: TaskhubClient) -> Callable[[], bool]:
    return lambda: hub.sio.connected


def _sid(hub: TaskhubClient) -> str | None:
    return hub.sio.get_sid("/") if hub.sio.connected else None


async def on_node(
    redis: Redis, keys: RedisKeys, node: Node, clients: list[TaskhubClient]
) -> dict[TaskhubClient, str]:
    """The clients connected to `node` now, with their sids, as the presence records say."""
    node_id = node.env["NODE_ID"]
    sids = {str(sid) for sid in await redis.hkeys(keys.node_connections(node_id))}
    return {hub: sid for hub in clients if (sid := _sid(hub)) is not None and sid in sids}


async def back(moved: dict[TaskhubClient, str], began: float, within: float = 30) -> list[float]:
    """Seconds from `began` until each client was connected again on a new connection."""
    times: dict[TaskhubClient, float] = {}
    while len(times) < len(moved):
        for hub, old in moved.items():
            if hub not in times and (sid := _sid(hub)) is not None and sid != old:
                times[hub] = time.monotonic() - began
        assert time.monotonic() - began < within, f"{len(moved) - len(times)} clients not back"
        await asyncio.sleep(0.02)
    return sorted(times.values())


def figures(name: str, seconds: list[float]) -> str:
    if not seconds:
        return f"{name}: none"
    return (
        f"{name}: {len(seconds)} clients, min {seconds[0]:.2f} s, "
        f"median {statistics.median(seconds):.2f} s, max {seconds[-1]:.2f} s"
    )


async def nothing_lost(database_url: str, people: Crowd) -> None:
    """Every acked edit stored once, each task at its editor's last acked version, no
    edit applied that was not acked, and each watcher delivered the board's history
    from its first event on: in order, nothing missed, nothing twice."""
    acked = [str(event.event_id) for editor in people.editors for event in editor.acked]
    assert acked and len(set(acked)) == len(acked)
    conn = await asyncpg.connect(database_url)
    try:
        stored = await conn.fetch(
            "SELECT event_id::text AS id, count(*) AS n FROM task_events "
            "WHERE event_id = ANY($1::uuid[]) GROUP BY event_id",
            acked,
        )
        assert {row["id"]: row["n"] for row in stored} == dict.fromkeys(acked, 1)
        task_ids = [uuid.UUID(editor.task_id) for editor in people.editors]
        versions = await conn.fetch(
            "SELECT id::text AS id, version FROM tasks WHERE id = ANY($1)", task_ids
        )
        updates = await conn.fetch(
            "SELECT task_id::text AS id, count(*) AS n FROM task_events "
            "WHERE task_id = ANY($1) AND type <> 'task.created' GROUP BY task_id",
            task_ids,
        )
    finally:
        await conn.close()
    assert {row["id"]: row["version"] for row in versions} == {
        editor.task_id: editor.version for editor in people.editors
    }
    assert {row["id"]: row["n"] for row in updates} == {
        editor.task_id: len(editor.acked) for editor in people.editors
    }
    refusals = Counter(code for editor in people.editors for code in editor.refusals)
    print(f"edits acked: {len(acked)}; refusals, each sent again: {dict(refusals)}")
    assert set(refusals) <= TRANSIENT, refusals

    history = await board_history(database_url, people.board_id)
    last = history[-1][0]
    waited = await until(
        lambda: all(w.seen and w.seen[-1][0] == last for w in people.watchers),
        30,
        "the watchers caught up",
    )
    print(f"watchers caught up to seq {last} {waited:.2f} s after the edits stopped")
    index = {seq: n for n, (seq, _) in enumerate(history)}
    for watcher in people.watchers:
        first = index[watcher.seen[0][0]]
        assert watcher.seen == history[first:]


async def listed(observer: TaskhubClient, board_id: str, person: Person) -> bool | None:
    """Whether `presence:list` through `observer` lists `person`; None while the
    observer is between connections."""
    try:
        here = await observer.presence(board_id)
    except Unavailable:
        return None
    return any(str(user.id) == person.id for user in here)


@pytest.mark.timeout(240)
async def test_a_killed_node_loses_no_acked_edit_and_its_people_move_on(
    deployed: Deployment,
) -> None:
    nodes = [await deployed.node("node-a"), await deployed.node("node-b")]
    survivor, doomed = nodes
    balancer = Balancer(lambda: ports_of(nodes))
    await balancer.start()
    keys = RedisKeys(deployed.env()["REDIS_KEY_PREFIX"])
    redis = Redis.from_url(deployed.redis.url, decode_responses=True)
    try:
        async with crowd(balancer.url, EDITORS, WATCHERS + 1) as people:
            # connected straight to the doomed node and nowhere else: its presence
            # must go with the node
            lurker, lurking = await detach(people, doomed.url)
            observer = people.watchers[0].hub
            try:
                await until(
                    lambda: listed(observer, people.board_id, lurker), 10, "the lurker is here"
                )
                people.start_editing()
                await asyncio.sleep(3)
                moved = await on_node(redis, keys, doomed, people.clients)
                assert moved, "the balancer put nobody on the doomed node"
                began = time.monotonic()
                await doomed.kill()
            finally:
                await lurking.close()  # no more attempts to reach the dead node

            async def lurker_gone() -> bool:
                return await listed(observer, people.board_id, lurker) is False

            gone = asyncio.create_task(until(lurker_gone, 30, "the dead node's presence went"))
            times = await back(moved, began)
            await asyncio.sleep(max(0.0, 5 - (time.monotonic() - began)))
            await people.stop_editing()
            gone_after = await gone
            print(f"\nkilled node-b under {len(moved)} of {len(people.clients)} clients")
            print(figures("back on node-a after the kill", times))
            print(f"the lurker's presence gone {gone_after:.2f} s after the kill")
            assert await redis.scard(keys.user_connections(lurker.id)) == 0

            await nothing_lost(deployed.postgres.url, people)
            assert all(hub.sio.connected for hub in people.clients)
            assert survivor.running
    finally:
        await redis.aclose()
        await balancer.close()


@pytest.mark.timeout(240)
async def test_a_rolling_restart_loses_nothing(deployed: Deployment) -> None:
    nodes = [await deployed.node("node-a"), await deployed.node("node-b")]
    balancer = Balancer(lambda: ports_of(nodes))
    await balancer.start()
    keys = RedisKeys(deployed.env()["REDIS_KEY_PREFIX"])
    redis = Redis.from_url(deployed.redis.url, decode_responses=True)
    observers: list[TaskhubClient] = []
    try:
        async with crowd(balancer.url, EDITORS, WATCHERS + 2) as people:
            # one watcher straight on each node, to see the presence of those who move
            # while the other node restarts
            for node in reversed(nodes):
                observers.insert(0, (await detach(people, node.url))[1])
            closings: dict[TaskhubClient, list[dict[str, Any]]] = {
                hub: [] for hub in people.clients
            }
            for hub in people.clients:
                hub.on("connection:closing", closings[hub].append)
            # what each observer saw, and when each node was stopping
            seen: list[list[tuple[float, PresenceChange]]] = [[], []]
            for observer, saw in zip(observers, seen, strict=True):
                observer.on(
                    "presence", lambda change, saw=saw: saw.append((time.monotonic(), change))
                )
            restarts: list[tuple[float, float]] = []
            expected = Counter[TaskhubClient]()

            people.start_editing()
            await asyncio.sleep(2)
            for n, stopping in enumerate(nodes):
                name = stopping.env["NODE_ID"]
                await until(connected(observers[1 - n]), 30, "the observer is back")
                moved = await on_node(redis, keys, stopping, people.clients)
                assert moved, f"the balancer put nobody on {name}"
                expected.update(moved.keys())
                began = time.monotonic()
                returning = asyncio.create_task(back(moved, began))
                assert await stopping.terminate() == 0, stopping.log()[-3000:]
                stopped_after = time.monotonic() - began
                times = await returning
                print(f"\nSIGTERM {name} under {len(moved)} of {len(people.clients)} clients")
                print(f"{name} exited 0 {stopped_after:.2f} s after SIGTERM")
                print(figures(f"back on the other node after {name}'s SIGTERM", times))
                await stopping.start()
                await asyncio.sleep(2)
                restarts.append((began, time.monotonic()))
            await people.stop_editing()

            assert {hub: len(got) for hub, got in closings.items()} == {
                hub: expected[hub] for hub in people.clients
            }
            for got in closings.values():
                for body in got:
                    assert body["code"] == "unavailable", body
                    assert body["details"] == {"reason": "server_shutdown"}, body
            await nothing_lost(deployed.postgres.url, people)
            assert all(hub.sio.connected for hub in people.clients)

            # presence as the observer on the other node saw it: who left came back
            crowd_ids = {person.id for person in people.people}
            gaps: list[float] = []
            for n, (began, ended) in enumerate(restarts):
                away: dict[str, float] = {}
                for at, change in seen[1 - n]:
                    who = str(change.user.id)
                    if not began <= at <= ended or who not in crowd_ids:
                        continue
                    if change.state == "left":
                        away[who] = at
                    elif who in away:
                        gaps.append(at - away.pop(who))
                assert not away, "someone left and did not come back"
            print(figures("presence gaps seen (left, then joined again)", sorted(gaps)))
    finally:
        await close_all(observers)
        await redis.aclose()
        await balancer.close()
