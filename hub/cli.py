"""The `taskhub` command: serve, dev, migrate, seed-demo, worker, docs, bot."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

from aiohttp import web

from hub import event_loop, logs
from hub.app import create_app
from hub.config import WORKER_NAMES, ConfigError, Settings
from hub.demo import DEMO_USERS, demo_bot_token, seed_demo
from hub.workers import run_worker_process
from protocol.docs import render as render_protocol
from protocol.errors import HubError
from storage.db import create_pool
from storage.migrate import migrate
from storage.topics import ensure_topics

log = logging.getLogger("taskhub")

# The listening socket's accept queue. aiohttp's default (128) overflows when a few
# thousand clients reconnect at once (a deploy, a network blip): the kernel drops
# the SYNs past it and each dropped client retries after 1, 3, 7, 15... seconds, so
# a storm of 2000 connects took up to 30 s however fast each one was served. Node's
# default is 511; the kernel caps this at net.core.somaxconn.
LISTEN_BACKLOG = 4096


def _say(message: str) -> None:
    print(f"taskhub: {message}", file=sys.stderr, flush=True)


def _settings(env: dict[str, str] | None = None) -> Settings:
    try:
        return Settings.from_env(env)
    except ConfigError as exc:
        _say(f"configuration error: {exc}")
        raise SystemExit(2) from None


async def _demo_bot_secret(settings: Settings, token_file: Path) -> str | None:
    """The demo bot's token, kept in `token_file` (0600) across runs of `make run`."""
    if await asyncio.to_thread(token_file.exists):
        return (await asyncio.to_thread(token_file.read_text, "utf-8")).strip()
    pool = await create_pool(settings.database_url, min_size=1, max_size=2)
    try:
        secret = await demo_bot_token(pool)
    finally:
        await pool.close()
    if secret is not None:
        await asyncio.to_thread(_write_secret, token_file, secret)
        _say(f"demo bot token written to {token_file}")
    return secret


def _write_secret(path: Path, secret: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as out:
        out.write(secret + "\n")


def _start_demo_bot(settings: Settings, secret: str) -> subprocess.Popen[bytes]:
    """The triage bot beside the dev hub, as its own process (it is a client)."""
    url = f"http://{settings.host}:{settings.port}"
    env = {**os.environ, "TASKHUB_BOT_TOKEN": secret, "LOG_FORMAT": settings.log_format}
    command = [sys.executable, "-m", "hub.cli", "bot", "triage", "--url", url]
    _say("starting the triage bot (try /help in the board's chat)")
    return subprocess.Popen(command, env=env)


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


def serve(settings: Settings, *, seed: bool = False, demo_bot: Path | None = None) -> None:
    """Run the web process; with `demo_bot` (dev), the triage bot runs beside it,
    its token kept in that file."""
    logs.configure(settings.log_level, settings.log_format)
    log.info("starting", extra={"settings": settings.public_summary()})
    event_loop.run(_prepare(settings, seed=seed), settings.event_loop)
    secret = (
        event_loop.run(_demo_bot_secret(settings, demo_bot), settings.event_loop)
        if demo_bot
        else None
    )
    bot = _start_demo_bot(settings, secret) if secret else None
    try:
        web.run_app(
            create_app(settings),
            host=settings.host,
            port=settings.port,
            print=None,
            access_log=None,
            shutdown_timeout=10,
            backlog=LISTEN_BACKLOG,
            loop=event_loop.loop_factory(settings.event_loop)(),
        )
    finally:
        if bot is not None:
            bot.terminate()
            try:
                bot.wait(10)
            except subprocess.TimeoutExpired:
                bot.kill()


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
        serve(settings, seed=True, demo_bot=data_dir / "triage-bot.token")
    finally:
        _say("stopping the embedded servers")
        stack.stop()


async def _run_bot(url: str, token: str, public_url: str) -> None:
    from bots import triage

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    _say(f"triage bot connecting to {url}")
    await triage.run(url, token, public_url, stop)


def bot(args: argparse.Namespace) -> None:
    """A client of the hub, not part of it: it takes its own three settings."""
    logs.configure(os.environ.get("LOG_LEVEL", "INFO"), os.environ.get("LOG_FORMAT", "text"))
    if not args.token:
        _say("configuration error: set TASKHUB_BOT_TOKEN (or --token) to a bot's API token")
        raise SystemExit(2)
    try:
        event_loop.run(
            _run_bot(args.url, args.token, args.public_url or args.url),
            os.environ.get("EVENT_LOOP", "uvloop"),
        )
    except HubError as exc:
        _say(f"the hub ended the bot: {exc.message}")
        raise SystemExit(1) from None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="taskhub", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="run the web process (configured by the environment)")
    sub.add_parser("dev", help="start the embedded PostgreSQL, Redis and Kafka, seed, serve")
    sub.add_parser("migrate", help="apply pending database migrations")
    sub.add_parser("seed-demo", help="create the demo users, board and tasks if missing")
    worker = sub.add_parser("worker", help="run one worker process until SIGTERM")
    worker.add_argument("name", choices=WORKER_NAMES)
    bot_cmd = sub.add_parser("bot", help="run an example bot against a hub")
    bot_cmd.add_argument("name", choices=["triage"])
    bot_cmd.add_argument("--url", default=os.environ.get("TASKHUB_URL", "http://127.0.0.1:8080"))
    bot_cmd.add_argument("--token", default=os.environ.get("TASKHUB_BOT_TOKEN"))
    bot_cmd.add_argument(
        "--public-url",
        default=os.environ.get("TASKHUB_PUBLIC_URL"),
        help="where people open the board (links in replies); the hub URL by default",
    )
    docs = sub.add_parser("docs", help="write docs/PROTOCOL.md from the protocol structs")
    docs.add_argument("--output", default="docs/PROTOCOL.md")
    args = parser.parse_args(argv)
    if args.command == "serve":
        serve(_settings())
    elif args.command == "dev":
        dev()
    elif args.command == "migrate":
        settings = _settings()
        applied = event_loop.run(migrate(settings.database_url, progress=_say), settings.event_loop)
        _say(f"{len(applied)} migration(s) applied")
    elif args.command == "worker":
        settings = _settings()
        logs.configure(settings.log_level, settings.log_format)
        event_loop.run(run_worker_process(settings, args.name), settings.event_loop)
    elif args.command == "docs":
        Path(args.output).write_text(render_protocol(), encoding="utf-8")
        _say(f"wrote {args.output}")
    elif args.command == "bot":
        bot(args)
    elif args.command == "seed-demo":
        settings = _settings()
        event_loop.run(_prepare(settings, seed=True), settings.event_loop)


if __name__ == "__main__":
    main()
