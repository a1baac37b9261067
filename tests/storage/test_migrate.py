"""Migrations: applied once, in order, and safe when two nodes start together."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from storage.migrate import migrate, migration_files
from tests.conftest import scratch_database


@pytest.fixture
async def empty_database(services: dict[str, str]) -> AsyncIterator[str]:
    async with scratch_database(services["DATABASE_URL"]) as dsn:
        yield dsn


async def test_second_run_is_a_no_op(empty_database: str) -> None:
    names = [name for name, _ in migration_files()]
    assert await migrate(empty_database) == names
    assert await migrate(empty_database) == []
    conn = await asyncpg.connect(empty_database)
    try:
        recorded = [
            r["name"] for r in await conn.fetch("SELECT name FROM schema_migrations ORDER BY name")
        ]
        tables = {
            r["tablename"]
            for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        }
    finally:
        await conn.close()
    assert recorded == names
    assert {"users", "sessions", "boards", "board_members", "tasks", "task_events"} <= tables


async def test_concurrent_runs_do_not_fail(empty_database: str) -> None:
    results = await asyncio.gather(*(migrate(empty_database) for _ in range(4)))
    applied = [names for names in results if names]
    assert len(applied) == 1 and applied[0] == [name for name, _ in migration_files()]


async def test_constraints_hold(empty_database: str) -> None:
    await migrate(empty_database)
    conn = await asyncpg.connect(empty_database)
    try:
        user = await conn.fetchval(
            "INSERT INTO users (email, name, password_hash) VALUES ('A@x.io', 'A', 'h') RETURNING id"
        )
        with pytest.raises(asyncpg.UniqueViolationError):
            await conn.execute(
                "INSERT INTO users (email, name, password_hash) VALUES ('a@X.io', 'B', 'h')"
            )
        board = await conn.fetchval(
            "INSERT INTO boards (name, owner_id) VALUES ('b', $1) RETURNING id", user
        )
        bad_rows = [
            "INSERT INTO tasks (board_id, creator_id, title, status) VALUES ($1, $2, 't', 'done')",
            "INSERT INTO tasks (board_id, creator_id, title, completed_at) VALUES ($1, $2, 't', now())",
            "INSERT INTO tasks (board_id, creator_id, title, start_date, due_date)"
            " VALUES ($1, $2, 't', now(), now() - interval '1 day')",
            "INSERT INTO tasks (board_id, creator_id, title, version) VALUES ($1, $2, 't', 0)",
            "INSERT INTO tasks (board_id, creator_id, title) VALUES ($1, $2, '')",
            "INSERT INTO tasks (board_id, creator_id, title, priority) VALUES ($1, $2, 't', 'meh')",
        ]
        for sql in bad_rows:
            with pytest.raises(asyncpg.CheckViolationError):
                await conn.execute(sql, board, user)
    finally:
        await conn.close()
