"""The connection pool and the one way to open a transaction."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TypeAlias

import asyncpg

from storage import outages

Connection: TypeAlias = asyncpg.Connection
Pool: TypeAlias = asyncpg.Pool


async def _init_connection(conn: asyncpg.Connection) -> None:
    for kind in ("json", "jsonb"):
        await conn.set_type_codec(kind, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


class _OutageWithoutTraceback(logging.Filter):
    """asyncpg's pool logs every failed attempt to restore its `min_size` connections
    (backing off from 1 s to 60 s) as a warning with a traceback. While the server is
    down that traceback says nothing the exception's name does not, and reads like a
    bug in a log that must show none: the warning stays, the traceback becomes one
    line. Any other traceback is kept."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if error is not None and outages.is_outage(error):
            record.msg = f"{record.getMessage()} ({outages.describe(error)})"
            record.args = None
            record.exc_info = None
            record.exc_text = None
        return True


def _quiet_pool_outages() -> None:
    pool_log = logging.getLogger("asyncpg.pool")
    if not any(isinstance(f, _OutageWithoutTraceback) for f in pool_log.filters):
        pool_log.addFilter(_OutageWithoutTraceback())


async def create_pool(dsn: str, *, min_size: int = 2, max_size: int = 10) -> Pool:
    """The pool of one process.

    After the server went away it recovers by itself: a dead connection is noticed
    when it closes, and the next acquire connects its slot again (while the server
    is down, that attempt fails at once and the caller answers `unavailable`).
    """
    _quiet_pool_outages()
    pool = await asyncpg.create_pool(
        dsn, min_size=min_size, max_size=max_size, init=_init_connection, command_timeout=30
    )
    assert pool is not None
    return pool


async def ping(pool: Pool) -> None:
    async with pool.acquire() as conn:
        await conn.fetchval("SELECT 1")


@asynccontextmanager
async def transaction(
    pool: Pool, *, isolation: str = "read_committed", readonly: bool = False
) -> AsyncIterator[Connection]:
    """A connection inside a transaction, committed on clean exit, rolled back on error.

    Reads that must be one consistent picture (a board snapshot and its seq) ask
    for `repeatable_read`.
    """
    async with pool.acquire() as conn, conn.transaction(isolation=isolation, readonly=readonly):
        yield conn
