"""The `taskhub` command: serve, dev, migrate, seed-demo."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path

from aiohttp import web

from hub import logs
from hub.app import create_app
from hub.config import WORKER_NAMES, ConfigError, Settings
from hub.demo import DEMO_USERS, seed_demo
from hub.workers import run_worker_process
from protocol.docs import render as render_protocol
from storage.db import create_pool
from storage.migrate import migrate
from storage.topics import ensure_topics

log = logging.getLogger("taskhub")


def _say(message: str) -> None:
    print(f"taskhub: {message}", file=sys.stderr, flush=True)


def _settings(env: dict[str, str] | None = None) -> Settings:
    try:
        return Settings.from_env(env)
    except ConfigError as exc:
        _say(f"configuration error: {exc}")
        raise SystemExit(2) from None


async def _prepare(settings: Settings, *, seed: bool) -> None:
    """Migrations, topics and (in dev) the demo, before the server takes traffic."""
    applied = await migrate(settings.database_url, progress=_say)
    _say(f"migrations: {len(applied)} applied, schema up to date")
    created = await ensure_topics(settings.kafka_bootstrap_servers, settings.kafka_topic_prefix)
    _say(f"kafka topics ready ({len(created)} created)")
    if seed:
        pool = await create_pool(settings.database_url, min_size=1, max_size=2)
        try:
            made = await seed_demo(pool, settings.bcrypt_rounds, _say)
        finally:
            await pool.close()
        _say("demo data created" if made else "demo data already present")


def serve(settings: Settings, *, seed: bool = False) -> None:
    logs.configure(settings.log_level, settings.log_format)
    log.info("starting", extra={"settings": settings.public_summary()})
    asyncio.run(_prepare(settings, seed=seed))
    web.run_app(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        print=None,
        access_log=None,
        shutdown_timeout=10,
    )


def dev() -> None:
    from hub.devstack import EmbeddedStack

    data_dir = Path(os.environ.get("TASKHUB_DATA_DIR", ".data")).resolve()
    stack = EmbeddedStack(data_dir)
    try:
        env = stack.fill_env(dict(os.environ), _say)
        env.setdefault("TASKHUB_ENV", "development")
        env.setdefault("LOG_FORMAT", "text")
        env.setdefault("HOST", "127.0.0.1")
        # one process runs the whole product: the web node and every worker
        env.setdefault("EMBEDDED_WORKERS", ",".join(WORKER_NAMES))
        if "KAFKA_BOOTSTRAP_SERVERS" not in os.environ:
            env.setdefault("KAFKA_IDEMPOTENCE", "false")  # the embedded broker refuses it
        settings = _settings(env)
        _say("demo accounts: " + ", ".join(f"{e} / {p}" for e, _, p in DEMO_USERS))
        _say(f"serving on http://{settings.host}:{settings.port} (Ctrl-C stops everything)")
        serve(settings, seed=True)
    finally:
        _say("stopping the embedded servers")
        stack.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="taskhub", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="run the web process (configured by the environment)")
    sub.add_parser("dev", help="start the embedded PostgreSQL, Redis and Kafka, seed, serve")
    sub.add_parser("migrate", help="apply pending database migrations")
    sub.add_parser("seed-demo", help="create the demo users, board and tasks if missing")
    worker = sub.add_parser("worker", help="run one worker process until SIGTERM")
    worker.add_argument("name", choices=WORKER_NAMES)
    docs = sub.add_parser("docs", help="write docs/PROTOCOL.md from the protocol structs")
    docs.add_argument("--output", default="docs/PROTOCOL.md")
    args = parser.parse_args(argv)
    if args.command == "serve":
        serve(_settings())
    elif args.command == "dev":
        dev()
    elif args.command == "migrate":
        settings = _settings()
        applied = asyncio.run(migrate(settings.database_url, progress=_say))
        _say(f"{len(applied)} migration(s) applied")
    elif args.command == "worker":
        settings = _settings()
        logs.configure(settings.log_level, settings.log_format)
        asyncio.run(run_worker_process(settings, args.name))
    elif args.command == "docs":
        Path(args.output).write_text(render_protocol(), encoding="utf-8")
        _say(f"wrote {args.output}")
    elif args.command == "seed-demo":
        settings = _settings()
        asyncio.run(_prepare(settings, seed=True))


if __name__ == "__main__":
    main()
