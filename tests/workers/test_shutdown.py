"""Every worker of the Procfile stops cleanly on SIGTERM in the middle of its work, and
the next run finishes that work: nothing lost, nothing done twice."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest

from hub.config import WORKER_NAMES
from protocol.records import encode
from tests.support import Hub, Peer
from tests.workers.kafka_tools import foreign_event, produce, read_topic, seen_event_ids

StartHub = Callable[..., Awaitable[Hub]]
LOAD = 60


class WorkerProcess:
    """`taskhub worker NAME` as the Procfile runs it."""

    def __init__(self, name: str, env: dict[str, str]) -> None:
        self.name = name
        self.env = env
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "hub.cli",
            "worker",
            self.name,
            env=self.env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )

    async def sigterm(self) -> str:
        assert self.proc is not None and self.proc.returncode is None, "the worker died"
        self.proc.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(self.proc.communicate(), 30)
        log = stderr.decode()
        assert self.proc.returncode == 0, log[-3000:]
        assert '"worker stopped"' in log and "Traceback" not in log, log[-3000:]
        return log

    async def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()


async def _count(hub: Hub, sql: str, *args: object) -> int:
    conn = await hub.db()
    try:
        return int(await conn.fetchval(sql, *args))
    finally:
        await conn.close()


async def _until(check: Callable[[], Awaitable[bool]], seconds: float = 60) -> None:
    for _ in range(int(seconds * 20)):
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the work was not finished in time")


async def _interrupt_and_finish(
    worker: WorkerProcess, progress: Callable[[], Awaitable[int]], total: int
) -> None:
    """SIGTERM the worker once it started on the work, then let a new run finish it."""
    await worker.start()
    try:
        await _until(lambda: _started(progress))
        await worker.sigterm()
        stopped_at = await progress()
        assert stopped_at < total, "the load was too small to stop the worker mid-way"
        await worker.start()  # the next run, as a supervisor would start it
        await _until(lambda: _reached(progress, total))
        await worker.sigterm()
    finally:
        await worker.kill()


async def _started(progress: Callable[[], Awaitable[int]]) -> bool:
    return await progress() > 0


async def _reached(progress: Callable[[], Awaitable[int]], total: int) -> bool:
    return await progress() >= total


async def _team(hub: Hub) -> tuple[Peer, str, str]:
    alice, bob = await hub.register("Alice"), await hub.register("Bob")
    board_id = await hub.create_board(alice)
    await hub.add_member(alice, board_id, bob, "editor")
    return await hub.peer(alice), board_id, bob.id


async def _assign_many(peer: Peer, board_id: str, assignee: str, count: int) -> list[str]:
    acks = await asyncio.gather(
        *(
            peer.call(
                "task:create", {"board_id": board_id, "title": f"T{n}", "assignee_id": assignee}
            )
            for n in range(count)
        )
    )
    assert all(a["ok"] for a in acks), acks
    return [a["data"]["task_id"] for a in acks]


@pytest.fixture
def worker_env(node_env: Callable[..., dict[str, str]]) -> Callable[[], dict[str, str]]:
    return lambda: {**os.environ, **node_env(LOG_FORMAT="json", OUTBOX_BATCH_SIZE="5")}


async def test_outbox_relay(start_hub: StartHub, worker_env: Callable[[], dict[str, str]]) -> None:
    hub = await start_hub()
    peer, board_id, bob = await _team(hub)
    try:
        await _assign_many(peer, board_id, bob, LOAD)
    finally:
        await peer.close()
    published = "SELECT count(*) FROM task_events WHERE published_at IS NOT NULL"
    await _interrupt_and_finish(
        WorkerProcess("outbox", worker_env()), lambda: _count(hub, published), LOAD
    )
    records = await read_topic(
        hub.settings.kafka_bootstrap_servers, hub.settings.kafka_topic_prefix + "task_events"
    )
    assert len({dict(r.headers)["event_id"] for r in records}) == LOAD  # every event on Kafka


async def _produce_assignments(hub: Hub, count: int) -> None:
    """`count` assignment events of one stored task, as another service would send them."""
    peer, board_id, bob = await _team(hub)
    try:
        (task_id,) = await _assign_many(peer, board_id, bob, 1)
    finally:
        await peer.close()
    events = [
        foreign_event(
            board_id,
            task_id,
            type="task.assigned",
            changes={"assignee_id": {"before": None, "after": bob}},
        )
        for _ in range(count)
    ]
    await produce(
        hub.settings.kafka_bootstrap_servers,
        hub.settings.kafka_topic_prefix + "task_events",
        [encode(e) for e in events],
        key=task_id.encode(),
    )


async def test_notifier(start_hub: StartHub, worker_env: Callable[[], dict[str, str]]) -> None:
    hub = await start_hub()  # no relay: the hub's own event stays off Kafka
    total = 1500  # several poll batches of 500, each handled event by event
    await _produce_assignments(hub, total)
    await _interrupt_and_finish(
        WorkerProcess("notifier", worker_env()),
        lambda: _count(hub, "SELECT count(*) FROM notifications"),
        total,
    )
    assert await _count(hub, "SELECT count(*) FROM notifications") == total
    assert await _count(hub, "SELECT count(DISTINCT event_id) FROM notifications") == total
    assert await _count(hub, "SELECT count(*) FROM notifications WHERE pushed_at IS NULL") == 0


async def test_audit(start_hub: StartHub, worker_env: Callable[[], dict[str, str]]) -> None:
    hub = await start_hub()
    total = 5000
    await _produce_assignments(hub, total)
    logged = "SELECT count(*) FROM event_logs WHERE type = 'task.assigned'"
    await _interrupt_and_finish(
        WorkerProcess("audit", worker_env()), lambda: _count(hub, logged), total
    )
    assert await _count(hub, logged) == total


async def test_scheduler(start_hub: StartHub, worker_env: Callable[[], dict[str, str]]) -> None:
    hub = await start_hub()
    peer, board_id, _ = await _team(hub)
    try:
        created = await peer.call("task:create", {"board_id": board_id, "title": "Remind me"})
        task_id = created["data"]["task_id"]
        soon = (datetime.now(UTC) + timedelta(seconds=2)).isoformat()
        acks = await asyncio.gather(
            *(
                peer.call("reminders:create", {"task_id": task_id, "remind_at": soon})
                for _ in range(LOAD)
            )
        )
        assert all(a["ok"] for a in acks), acks
    finally:
        await peer.close()
    await asyncio.sleep(2)
    await _interrupt_and_finish(
        WorkerProcess("scheduler", worker_env()),
        lambda: _count(hub, "SELECT count(*) FROM reminders WHERE status = 'sent'"),
        LOAD,
    )
    assert await _count(hub, "SELECT count(*) FROM notifications WHERE type = 'reminder'") == LOAD


async def test_bridge(start_hub: StartHub, worker_env: Callable[[], dict[str, str]]) -> None:
    hub = await start_hub()
    alice = await hub.register("Alice")
    board_id = await hub.create_board(alice)
    peer = await hub.peer(alice)
    try:
        assert (await peer.call("board:join", {"board_id": board_id}))["ok"]
        created = await peer.call("task:create", {"board_id": board_id, "title": "Watched"})
        task_id = created["data"]["task_id"]
        peer.received.clear()
        events = [foreign_event(board_id, task_id) for _ in range(2000)]
        await produce(
            hub.settings.kafka_bootstrap_servers,
            hub.settings.kafka_topic_prefix + "task_events",
            [encode(e) for e in events],
        )

        async def received() -> int:
            return len(seen_event_ids(peer))

        await _interrupt_and_finish(WorkerProcess("bridge", worker_env()), received, len(events))
        await asyncio.sleep(0.5)
        seen = seen_event_ids(peer)
        assert sorted(seen) == sorted(str(e.event_id) for e in events)  # each exactly once
        # each kept once in the board's history, with a seq of its own
        kept = "SELECT count(DISTINCT seq) FROM task_events WHERE source = 'planner-service'"
        assert await _count(hub, kept) == len(events)
    finally:
        await peer.close()


def test_every_procfile_worker_is_covered() -> None:
    covered = {"outbox", "notifier", "audit", "scheduler", "bridge"}
    assert set(WORKER_NAMES) == covered
