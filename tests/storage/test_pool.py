"""The process's pool: what a connection carries back to it."""

from __future__ import annotations

import asyncpg

from storage.db import create_pool


async def test_a_released_connection_holds_no_advisory_lock(database: str) -> None:
    """The outbox relay takes session advisory locks (one per board or key) on pool
    connections; one it could not give back (a round failed halfway) must go with
    the connection's release, or every other relay would skip that board for good
    (storage/outbox.py). asyncpg's reset on release does it: a pool built without
    that reset (tried in acd87ce, reverted) fails here."""
    pool = await create_pool(database, min_size=1, max_size=1)
    other = await asyncpg.connect(database)
    try:
        async with pool.acquire() as conn:
            assert await conn.fetchval("SELECT pg_try_advisory_lock(4242, 1)")
            assert not await other.fetchval("SELECT pg_try_advisory_lock(4242, 1)")
        # released without unlocking, as a relay round that failed halfway
        assert await other.fetchval("SELECT pg_try_advisory_lock(4242, 1)")
    finally:
        await other.close()
        await pool.close()
