"""op_id acks are kept for their window, then pruned."""

from __future__ import annotations

import uuid

import asyncpg

from storage import ops


async def test_prune_forgets_only_old_acks(database: str) -> None:
    conn = await asyncpg.connect(database)
    try:
        user = await conn.fetchval(
            "INSERT INTO users (email, name, password_hash) VALUES ('p@x.io', 'P', 'h') RETURNING id"
        )
        old, fresh = uuid.uuid4(), uuid.uuid4()
        assert await ops.claim(conn, user, old, "task:update", b"a") is None
        assert await ops.claim(conn, user, fresh, "task:update", b"b") is None
        await conn.execute(
            "UPDATE processed_ops SET created_at = now() - interval '2 days' WHERE op_id = $1", old
        )
        assert await ops.prune(conn, 24 * 3600) == 1
        remaining = [r["op_id"] for r in await conn.fetch("SELECT op_id FROM processed_ops")]
        assert remaining == [fresh]
    finally:
        await conn.close()
