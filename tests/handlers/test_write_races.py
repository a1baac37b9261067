"""A board's writes racing: each locks its task and then its board's seq row
(task_events.append). A write that locked them the other way round would deadlock
with the others, and PostgreSQL would abort one of the two, which its client would
hear as `internal`."""

from __future__ import annotations

import asyncio
import random
import uuid
from typing import Any

import asyncpg

from tests.support import Hub, Peer

CLIENTS = 16
WRITES = 40
TASKS = 6
# what a racing write may be told: someone else changed or deleted the task first
RACE_LOST = {"version_conflict", "not_found"}


async def _race(peer: Peer, board_id: str, known: dict[str, dict[str, Any]], seed: int) -> int:
    """WRITES random writes to the board's tasks, from what this client last saw;
    returns how many were acknowledged."""
    rng = random.Random(seed)
    done = 0
    for n in range(WRITES):
        task = known[rng.choice(sorted(known))]
        kind = rng.choice(("update", "update", "update", "stale", "delete", "create"))
        if kind == "create":
            ack = await peer.call("task:create", {"board_id": board_id, "title": f"New {n}"})
        elif kind == "delete":
            ack = await peer.call("task:delete", {"task_id": task["id"]})
        else:
            base = task["version"] if kind == "update" else 1
            ack = await peer.call(
                "task:update",
                {"task_id": task["id"], "base_version": base, "changes": {"position": n}},
            )
        if ack["ok"]:
            done += 1
            written = ack["data"]["task"]
            known[written["id"]] = written
        else:
            assert ack["error"]["code"] in RACE_LOST, ack
            current = (ack["error"].get("details") or {}).get("task")
            if current is not None:
                known[current["id"]] = current
    return done


async def test_racing_writes_of_one_board_keep_seqs_gap_free_and_versions_in_order(
    hub: Hub, start_hub: Any
) -> None:
    other: Hub = await start_hub()
    owner = await hub.register("Owner")
    board_id = await hub.create_board(owner)
    editors = [owner]
    for n in range(3):
        editor = await hub.register(f"Editor {n}")
        await hub.add_member(owner, board_id, editor, "editor")
        editors.append(editor)
    peers = [await (hub, other)[n % 2].peer(editors[n % len(editors)]) for n in range(CLIENTS)]
    try:
        seeded: dict[str, dict[str, Any]] = {}
        for n in range(TASKS):
            ack = await peers[0].call("task:create", {"board_id": board_id, "title": f"T{n}"})
            assert ack["ok"], ack
            seeded[ack["data"]["task"]["id"]] = ack["data"]["task"]
        acknowledged = await asyncio.wait_for(
            asyncio.gather(
                *(_race(p, board_id, dict(seeded), seed) for seed, p in enumerate(peers))
            ),
            120,
        )
    finally:
        await asyncio.gather(*(p.close() for p in peers))

    conn = await hub.db()
    try:
        seqs = [
            r["seq"]
            for r in await conn.fetch(
                "SELECT seq FROM task_events WHERE board_id = $1 ORDER BY seq",
                uuid.UUID(board_id),
            )
        ]
        last_seq = await conn.fetchval(
            "SELECT last_seq FROM boards WHERE id = $1", uuid.UUID(board_id)
        )
        per_task = await conn.fetch(
            """SELECT t.version, array_agg((e.payload ->> 'version')::int ORDER BY e.seq) AS versions
                 FROM tasks t JOIN task_events e ON e.task_id = t.id
                WHERE t.board_id = $1 GROUP BY t.id, t.version""",
            uuid.UUID(board_id),
        )
    finally:
        await conn.close()
    # every acknowledged write, and the seeding creates, made one event each
    assert len(seqs) == TASKS + sum(acknowledged)
    assert seqs == list(range(1, last_seq + 1))
    for row in per_task:
        # each task's versions in seq order: 1, 2, 3, ... up to the stored one
        assert row["versions"] == list(range(1, row["version"] + 1)), row


async def _lock_waits(watcher: asyncpg.Connection) -> int:
    return int(
        await watcher.fetchval(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE wait_event_type = 'Lock' AND datname = current_database()"
        )
    )


async def _until_waiting(watcher: asyncpg.Connection, count: int) -> None:
    for _ in range(100):
        if await _lock_waits(watcher) >= count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"fewer than {count} writes wait on a lock")


async def test_a_delete_and_an_edit_of_one_task_queued_on_its_board_do_not_deadlock(
    hub: Hub, start_hub: Any
) -> None:
    """The board's seq row is held (as a long write would) while a delete of a task
    and then an edit of it arrive. The delete locks the task and waits for the board;
    the edit waits for the task. Had the delete locked the board first, the edit
    would hold the task while waiting for the board, and the delete the board while
    waiting for the task. The two are on different nodes: a node runs one write
    transaction of a board at a time (HubNamespace.writing)."""
    other: Hub = await start_hub()
    owner = await hub.register("Owner")
    board_id = await hub.create_board(owner)
    deleter, editor = await hub.peer(owner), await other.peer(owner)
    blocker, watcher = await hub.db(), await hub.db()
    try:
        created = await deleter.call("task:create", {"board_id": board_id, "title": "Both"})
        task = created["data"]["task"]
        await blocker.execute("BEGIN")
        await blocker.execute("SELECT 1 FROM boards WHERE id = $1 FOR UPDATE", uuid.UUID(board_id))
        deleting = asyncio.create_task(deleter.call("task:delete", {"task_id": task["id"]}))
        await _until_waiting(watcher, 1)
        editing = asyncio.create_task(
            editor.call(
                "task:update",
                {"task_id": task["id"], "base_version": 1, "changes": {"title": "Edited"}},
            )
        )
        await _until_waiting(watcher, 2)
        await blocker.execute("ROLLBACK")
        deleted, edited = await asyncio.wait_for(asyncio.gather(deleting, editing), 30)
    finally:
        await asyncio.gather(deleter.close(), editor.close(), blocker.close(), watcher.close())
    assert deleted["ok"], deleted
    assert edited["error"]["code"] == "not_found", edited
