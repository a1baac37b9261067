"""Every worker of the Procfile stops cleanly on SIGTERM, with its work committed."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.support import Hub

StartHub = Callable[..., Awaitable[Hub]]


async def _wait_for_row(hub: Hub, sql: str, *args: Any, seconds: float = 20) -> Any:
    conn = await hub.db()
    try:
        for _ in range(int(seconds * 10)):
            value = await conn.fetchval(sql, *args)
            if value:
                return value
            await asyncio.sleep(0.1)
    finally:
        await conn.close()
    raise AssertionError(f"no row for: {sql}")


async def _scenario(name: str, hub: Hub) -> Callable[[], Awaitable[None]]:
    """Give the worker something to do; returns a check that its work was committed."""
    alice, bob = await hub.register("Alice"), await hub.register("Bob")
    board_id = await hub.create_board(alice)
    await hub.add_member(alice, board_id, bob, "editor")
    peer = await hub.peer(alice)
    try:
        created = await peer.call(
            "task:create", {"board_id": board_id, "title": "Work", "assignee_id": bob.id}
        )
        task_id = uuid.UUID(created["data"]["task"]["id"])
        event_id = uuid.UUID(created["data"]["event_id"])
        if name == "scheduler":
            soon = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
            made = await peer.call("reminders:create", {"task_id": str(task_id), "remind_at": soon})
            assert made["ok"], made
            reminder_id = uuid.UUID(made["data"]["id"])
    finally:
        await peer.close()

    checks: dict[str, Callable[[], Awaitable[None]]] = {
        "outbox": lambda: _wait_for_row(
            hub, "SELECT published_at FROM task_events WHERE event_id = $1", event_id
        ),
        "notifier": lambda: _wait_for_row(
            hub,
            "SELECT id FROM notifications WHERE user_id = $1 AND task_id = $2",
            uuid.UUID(bob.id),
            task_id,
        ),
        "audit": lambda: _wait_for_row(
            hub, "SELECT id FROM event_logs WHERE event_id = $1", event_id
        ),
        "scheduler": lambda: _wait_for_row(
            hub, "SELECT sent_at FROM reminders WHERE id = $1", reminder_id
        ),
        # the bridge leaves no row: its committed offset is checked by restarting it
        "bridge": lambda: asyncio.sleep(3),
    }
    return checks[name]


@pytest.mark.parametrize("name", ["outbox", "bridge", "notifier", "scheduler", "audit"])
async def test_worker_stops_cleanly_on_sigterm(
    name: str, start_hub: StartHub, node_env: Callable[..., dict[str, str]]
) -> None:
    # the relay feeds the consumers; it runs inside the hub unless it is under test
    hub = await start_hub(EMBEDDED_WORKERS="" if name == "outbox" else "outbox")
    env = {**os.environ, **node_env(LOG_FORMAT="json")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "hub.cli",
        "worker",
        name,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        check = await _scenario(name, hub)
        await check()
        assert proc.returncode is None, "the worker died on its own"
        proc.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(proc.communicate(), 20)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    log = stderr.decode()
    assert proc.returncode == 0, log[-3000:]
    assert '"worker stopped"' in log, log[-3000:]
    assert "Traceback" not in log, log[-3000:]
