"""The connection pool and the one way to open a transaction."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TypeAlias

import asyncpg

Connection: TypeAlias = asyncpg.Connection
Pool: TypeAlias = asyncpg.Pool


async def _init_connection(conn: asyncpg.Connection) -> None:
    for kind in ("json", "jsonb"):
        await conn.set_type_codec(kind, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def create_pool(dsn: str, *, min_size: int = 2, max_size: int = 10) -> Pool:
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
