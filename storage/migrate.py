"""Apply the SQL files of `storage/migrations` in order, once each.

An advisory lock makes concurrent starts (two nodes, or `taskhub migrate` beside a
starting server) wait for each other instead of racing on DDL.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from importlib import resources

import asyncpg

log = logging.getLogger(__name__)

# Arbitrary constant: "taskhub" in ASCII, shared by every process of this schema.
MIGRATION_LOCK_ID = 0x7461736B687562


def migration_files() -> list[tuple[str, str]]:
    folder = resources.files("storage").joinpath("migrations")
    names = sorted(p.name for p in folder.iterdir() if p.name.endswith(".sql"))
    return [(name, folder.joinpath(name).read_text(encoding="utf-8")) for name in names]


async def migrate(dsn: str, progress: Callable[[str], None] | None = None) -> list[str]:
    """Apply pending migrations; returns the names applied by this call."""
    conn = await asyncpg.connect(dsn)
    applied: list[str] = []
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_ID)
        try:
            await conn.execute(
                """CREATE TABLE IF NOT EXISTS schema_migrations (
                       name text PRIMARY KEY,
                       applied_at timestamptz NOT NULL DEFAULT now())"""
            )
            done = {r["name"] for r in await conn.fetch("SELECT name FROM schema_migrations")}
            pending = [(n, sql) for n, sql in migration_files() if n not in done]
            for index, (name, sql) in enumerate(pending, 1):
                if progress:
                    progress(f"applying migration {index}/{len(pending)}: {name}")
                async with conn.transaction():
                    await conn.execute(sql)
                    await conn.execute("INSERT INTO schema_migrations (name) VALUES ($1)", name)
                log.info("migration applied", extra={"migration": name})
                applied.append(name)
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_ID)
    finally:
        await conn.close()
    return applied
