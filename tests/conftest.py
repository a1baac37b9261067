"""Real servers for the suite: the embedded PostgreSQL, Redis and Kafka broker
(started once per session), or the ones named by DATABASE_URL / REDIS_URL /
KAFKA_BOOTSTRAP_SERVERS. Each test gets its own database, Redis key prefix,
Socket.IO channel and topic prefix."""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from hub import event_loop
from hub.app import create_app
from hub.config import Settings, rate_limit_env
from hub.devstack import EmbeddedStack, free_port
from storage.migrate import migrate
from tests.loops import reporting_leaks
from tests.support import Hub

TEMPLATE_DB = "taskhub_test_template"
StartHub = Callable[..., Awaitable[Hub]]


def with_database(dsn: str, name: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path=f"/{name}"))


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    """Every async test, with its fixtures, runs on the loop the hub runs on (uvloop
    where it is installed, hub/event_loop.py): asyncio's loop differs in ways that
    matter here (uvloop's clock counts whole milliseconds; its transports write in
    C). A sync test's async fixtures stay on asyncio's loop (pytest-asyncio's rule).
    A loop closed with a socket left open fails the test (tests/loops.py)."""
    return {"hub": reporting_leaks(event_loop.loop_factory(Settings.event_loop))}


@asynccontextmanager
async def loop_errors_fail() -> AsyncIterator[None]:
    """An exception nobody awaited (a crashed background task) fails the test."""
    loop = asyncio.get_running_loop()
    errors: list[dict[str, object]] = []
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    yield
    loop.set_exception_handler(None)
    assert not errors, f"unhandled event-loop errors: {errors}"


@pytest.fixture(autouse=True)
async def fail_on_loop_errors() -> AsyncIterator[None]:
    async with loop_errors_fail():
        yield


@pytest.fixture(scope="session")
def services() -> Iterator[dict[str, str]]:
    """URLs of running servers; embedded ones are started for what is not configured."""
    with tempfile.TemporaryDirectory(prefix="taskhub-test-") as folder:
        stack = EmbeddedStack(Path(folder), persistent=False)
        env = {
            k: os.environ[k]
            for k in ("DATABASE_URL", "REDIS_URL", "KAFKA_BOOTSTRAP_SERVERS")
            if os.environ.get(k)
        }
        try:
            env = stack.fill_env(env, lambda message: None)
            env["JWT_SECRET"] = "test-secret-" + "x" * 40
            asyncio.run(_make_template(env["DATABASE_URL"]))
            yield env
        finally:
            stack.stop()


async def _make_template(dsn: str) -> None:
    admin = await asyncpg.connect(dsn)
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {TEMPLATE_DB}")
        await admin.execute(f"CREATE DATABASE {TEMPLATE_DB}")
    finally:
        await admin.close()
    await migrate(with_database(dsn, TEMPLATE_DB))


@asynccontextmanager
async def scratch_database(server_dsn: str, template: str | None = None) -> AsyncIterator[str]:
    """A new database on the test server (a copy of `template`, or empty), dropped after."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    admin = await asyncpg.connect(server_dsn)
    try:
        copy = f" TEMPLATE {template}" if template else ""
        await admin.execute(f"CREATE DATABASE {name}{copy}")
        yield with_database(server_dsn, name)
    finally:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.close()


@pytest.fixture
async def database(services: dict[str, str]) -> AsyncIterator[str]:
    """A fresh, migrated database for one test."""
    async with scratch_database(services["DATABASE_URL"], TEMPLATE_DB) as dsn:
        yield dsn


@pytest.fixture
def node_env(services: dict[str, str], database: str) -> Callable[..., dict[str, str]]:
    """The environment of a hub node of this test; keyword overrides are variable names.

    Every node of one test shares the database, Redis prefix and Socket.IO channel,
    as the nodes of one deployment do.
    """
    run = uuid.uuid4().hex[:12]

    def make(**overrides: str) -> dict[str, str]:
        env = {
            **services,
            "DATABASE_URL": database,
            "TASKHUB_ENV": "test",
            "BCRYPT_ROUNDS": "4",
            "REDIS_KEY_PREFIX": f"test:{run}:",
            "SOCKETIO_CHANNEL": f"test-sio-{run}",
            "KAFKA_TOPIC_PREFIX": f"test-{run}-",
            # the embedded broker (tansu) refuses idempotent producers
            "KAFKA_IDEMPOTENCE": "false",
            "HEARTBEAT_INTERVAL": "0.5",
            "NODE_TTL": "2",
            "REAP_INTERVAL": "0.5",
            "LOG_FORMAT": "text",
            "NODE_ID": f"node-{uuid.uuid4().hex[:8]}",
            # every test client comes from 127.0.0.1, many at once: the limits are
            # checked on every action but reached only where a test sets its own
            **rate_limit_env("1000000/1"),
            "MAX_CONNECTIONS_PER_USER": "100000",
        }
        env.update(overrides)
        return env

    return make


@pytest.fixture
def make_settings(node_env: Callable[..., dict[str, str]]) -> Callable[..., Settings]:
    def make(**overrides: str) -> Settings:
        return Settings.from_env(node_env(**overrides))

    return make


@asynccontextmanager
async def hub_starter(make_settings: Callable[..., Settings]) -> AsyncIterator[StartHub]:
    """Start hub nodes on real ports; each is stopped when the context ends."""
    servers: list[TestServer] = []

    async def start(**overrides: str) -> Hub:
        settings = make_settings(**overrides)
        app: web.Application = create_app(settings)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        servers.append(server)
        return Hub(
            url=str(server.make_url("")).rstrip("/"), app=app, server=server, settings=settings
        )

    try:
        yield start
    finally:
        for server in reversed(servers):
            await server.close()


@pytest.fixture
async def start_hub(make_settings: Callable[..., Settings]) -> AsyncIterator[StartHub]:
    """Hub nodes of one test, stopped at its end."""
    async with hub_starter(make_settings) as start:
        yield start


@pytest.fixture
async def hub(start_hub: StartHub) -> Hub:
    return await start_hub()


@pytest.fixture
async def node_process(
    node_env: Callable[..., dict[str, str]],
) -> AsyncIterator[Callable[..., object]]:
    """Start `taskhub serve` as a real separate process (a second node)."""
    procs: list[asyncio.subprocess.Process] = []

    async def start(**overrides: str) -> tuple[str, asyncio.subprocess.Process]:
        port = free_port()
        env = {**os.environ, **node_env(PORT=str(port), HOST="127.0.0.1", **overrides)}
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "hub.cli",
            "serve",
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        procs.append(proc)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        async with aiohttp.ClientSession() as session:
            while True:
                assert proc.returncode is None, "the node exited while starting"
                try:
                    async with session.get(url + "/healthz") as resp:
                        if resp.status == 200:
                            return url, proc
                except aiohttp.ClientError:
                    pass
                assert time.monotonic() < deadline, "node did not start"
                await asyncio.sleep(0.1)

    yield start
    for proc in procs:
        if proc.returncode is None:
            proc.terminate()
            await asyncio.wait_for(proc.wait(), 10)
