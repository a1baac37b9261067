"""Taskhub's fan-out: the hub's own Socket.IO servers with a bench-only publisher.

What is the hub's is everything on the broadcast path: the two servers `hub.app`
builds (JSON and msgpack, their managers members of the process's Socket.IO
channel on Redis, the fast path of hub/fanout, the same ping, CORS and buffer
settings, built by the hub's own factories), the hub's event loop choice, and a
real Redis, so every emit is handed to the sibling server and published to
Redis, and the process's subscription reads it back, as on a hub node.
Subscribers are not authenticated users and the publisher is a `publish` event,
so this measures the broadcast alone; the edit-path scenario
(bench/edit_path.py) measures the whole product path.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import socketio
from aiohttp import web

from bench.readiness import ROOM, announce
from hub import event_loop, heap
from hub.app import socketio_channel, socketio_server
from hub.config import Settings
from hub.devstack import free_port, redis_server_binary
from protocol.serializers import Serializer


@contextlib.contextmanager
def redis_server() -> Iterator[tuple[str, int]]:
    """A throwaway Redis on loopback: pub/sub only, so no persistence to pay for."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="taskhub-bench-redis-") as folder:
        args = [redis_server_binary(), "--bind", "127.0.0.1", "--port", str(port)]
        args += ["--dir", folder, "--save", "", "--appendonly", "no", "--loglevel", "warning"]
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            _wait_for_port(port, proc)
            yield f"redis://127.0.0.1:{port}/0", proc.pid
        finally:
            proc.terminate()
            proc.wait(10)


def _wait_for_port(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"redis-server exited with code {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"redis-server did not listen on {port}")


def bench_settings(redis_url: str, port: int) -> Settings:
    """The hub's Settings; PostgreSQL and Kafka are named but never reached here."""
    env = {
        "DATABASE_URL": "postgresql://unused@127.0.0.1:9/unused",
        "REDIS_URL": redis_url,
        "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9",
        "JWT_SECRET": secrets.token_urlsafe(48),
        "PORT": str(port),
        "HOST": "127.0.0.1",
        **{
            k: v
            for k, v in os.environ.items()
            if k in ("PING_INTERVAL", "PING_TIMEOUT", "EVENT_LOOP")
        },
    }
    return Settings.from_env(env)


def build(settings: Settings) -> tuple[web.Application, socketio.AsyncServer]:
    app = web.Application()
    channel = socketio_channel(settings)
    servers = {
        serializer: socketio_server(settings, serializer, channel) for serializer in Serializer
    }
    for serializer, server in servers.items():
        server.attach(app, socketio_path=serializer.socketio_path)
    sio = servers[Serializer.JSON]

    @sio.on("connect")
    async def connect(sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        if isinstance(auth, dict) and auth.get("role") == "subscriber":
            await sio.enter_room(sid, ROOM)

    @sio.on("publish")
    async def publish(sid: str, payload: Any) -> bool:
        await sio.emit("msg", payload, room=ROOM)
        return True

    async def shutdown(app: web.Application) -> None:
        for server in servers.values():
            await server.shutdown()
        await channel.close()

    app.on_shutdown.append(shutdown)
    app.cleanup_ctx.append(heap.frozen_start_up)
    return app, sio


async def serve(port: int, redis_url: str, redis_pid: int) -> None:
    app, _ = build(bench_settings(redis_url, port))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    announce(port, aux_pids=(redis_pid,))
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def main() -> None:
    with redis_server() as (redis_url, redis_pid):
        port = int(os.environ["PORT"])
        # the hub's own event loop choice (uvloop unless EVENT_LOOP=asyncio)
        loop_name = bench_settings(redis_url, port).event_loop
        event_loop.run(serve(port, redis_url, redis_pid), loop_name)
    print("taskhub bench server stopped", file=sys.stderr)


if __name__ == "__main__":
    main()
