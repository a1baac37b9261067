"""No lost update under load: 50 clients of 100 increments each of one task with the
version check, against the same load done as a plain read-modify-write (a test
helper, not product code), which does lose updates: the check is what keeps them."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg

from tests.handlers.test_task_edits import _board_with_task, _update
from tests.support import Hub, Peer

CLIENTS = 50
INCREMENTS = 100


async def _increment(peer: Peer, task: dict[str, Any]) -> int:
    """INCREMENTS attempts, each from the version this client last saw; the successes."""
    known, successes = task, 0
    for _ in range(INCREMENTS):
        ack = await _update(peer, task["id"], known["version"], {"position": known["position"] + 1})
        if ack["ok"]:
            successes += 1
            known = ack["data"]["task"]
        else:
            assert ack["error"]["code"] == "version_conflict", ack
            known = ack["error"]["details"]["task"]
    return successes


async def test_every_acknowledged_increment_is_kept_and_each_version_logged_once(
    hub: Hub,
) -> None:
    editors = [await hub.register(f"Editor {n}") for n in range(5)]
    _, task = await _board_with_task(hub, *editors)
    peers = [await hub.peer(editors[n % len(editors)]) for n in range(CLIENTS)]
    try:
        successes = sum(
            await asyncio.wait_for(asyncio.gather(*(_increment(p, task) for p in peers)), 120)
        )
    finally:
        await asyncio.gather(*(p.close() for p in peers))

    conn = await hub.db()
    try:
        row = await conn.fetchrow(
            "SELECT version, position FROM tasks WHERE id = $1", uuid.UUID(task["id"])
        )
        versions = [
            r["version"]
            for r in await conn.fetch(
                "SELECT (payload ->> 'version')::int AS version FROM task_events"
                " WHERE task_id = $1 ORDER BY version",
                uuid.UUID(task["id"]),
            )
        ]
    finally:
        await conn.close()
    assert successes > CLIENTS  # contended, yet moving
    assert row["position"] == successes
    assert row["version"] == 1 + successes
    # the creation is version 1; every update after it once, with no gap
    assert versions == list(range(1, successes + 2))


async def _read_modify_write(pool: asyncpg.Pool, task_id: uuid.UUID) -> None:
    """What the version check prevents: read, add one, write back, unconditionally."""
    for _ in range(INCREMENTS):
        async with pool.acquire() as conn:
            position = await conn.fetchval("SELECT position FROM tasks WHERE id = $1", task_id)
            await asyncio.sleep(0)  # another client's turn, as between two requests
            await conn.execute(
                "UPDATE tasks SET position = $2 WHERE id = $1", task_id, position + 1
            )


async def test_the_same_load_without_the_check_loses_updates(hub: Hub) -> None:
    owner = await hub.register("Owner")
    _, task = await _board_with_task(hub, owner)
    pool = await asyncpg.create_pool(hub.settings.database_url, min_size=10, max_size=10)
    try:
        task_id = uuid.UUID(task["id"])
        await asyncio.gather(*(_read_modify_write(pool, task_id) for _ in range(CLIENTS)))
        final = await pool.fetchval("SELECT position FROM tasks WHERE id = $1", task_id)
    finally:
        await pool.close()
    # every one of the CLIENTS * INCREMENTS writes succeeded, yet the total falls short
    assert final < CLIENTS * INCREMENTS
