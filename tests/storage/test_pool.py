"""The process's pool: what a released connection carries to its next user."""

from __future__ import annotations

import asyncio

import asyncpg

from storage.db import create_pool


async def test_a_connection_released_mid_transaction_comes_back_clean(database: str) -> None:
    """The pool skips asyncpg's reset query (storage/db.py, `_keep_session`); a
    transaction its user left open must still be rolled back on release, not handed
    to the next user with its writes. (Only code outside `storage.db.transaction`
    can leave one open; asyncpg reports that as an event-loop error, expected here.)"""
    loop = asyncio.get_running_loop()
    suite_handler = loop.get_exception_handler()
    reported: list[str] = []
    loop.set_exception_handler(lambda _loop, context: reported.append(str(context["message"])))
    pool = await create_pool(database, min_size=1, max_size=1)
    try:
        conn = await pool.acquire()
        pid = await conn.fetchval("SELECT pg_backend_pid()")
        await conn.execute("BEGIN")
        await conn.execute(
            "INSERT INTO users (email, name, password_hash) VALUES ('left@x.io', 'L', 'h')"
        )
        await pool.release(conn)
        async with pool.acquire() as again:
            assert await again.fetchval("SELECT pg_backend_pid()") == pid  # the same one
            assert not again.is_in_transaction()
            assert await again.fetchval("SELECT count(*) FROM users WHERE email = 'left@x.io'") == 0
        assert [m.split(" <")[0] for m in reported] == [
            "Resetting connection with an active transaction"
        ]
    finally:
        loop.set_exception_handler(suite_handler)
        await pool.close()


async def test_released_connections_are_not_reset_by_a_query(database: str) -> None:
    """No round trip on release: the server ran only what its user sent."""
    pool = await create_pool(database, min_size=1, max_size=1)
    try:
        async with pool.acquire() as conn:
            pid = await conn.fetchval("SELECT pg_backend_pid()")
        watcher = await asyncpg.connect(database)
        try:
            last = await watcher.fetchval("SELECT query FROM pg_stat_activity WHERE pid = $1", pid)
        finally:
            await watcher.close()
        assert last == "SELECT pg_backend_pid()", last
    finally:
        await pool.close()
