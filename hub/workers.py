"""Assembling workers: their dependencies from the settings, and running them.

A worker runs as its own process (`taskhub worker NAME`, one Procfile line
each) or, for `make run`, inside the web process as owned tasks.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from hub.config import WORKER_NAMES, Settings
from hub.fanout.channel_emitter import ChannelEmitter
from storage import redis_client
from storage.db import create_pool
from storage.keys import RedisKeys
from storage.topics import ensure_topics
from workers.deps import WorkerConfig, WorkerDeps
from workers.kafka import sleep_or_stop
from workers.runtime import WorkerMain, run_until_signalled

log = logging.getLogger(__name__)


class RedisRoomEmitter:
    """Emits reach rooms on every node, through the Socket.IO channel on Redis."""

    def __init__(self, redis_url: str, channel: str, name: str) -> None:
        self._manager = ChannelEmitter(redis_url, channel, name)

    async def emit(self, event: str, data: Any, room: str | list[str]) -> None:
        await self._manager.emit(event, data, namespace="/", room=room)

    async def close(self) -> None:
        await self._manager.close()


def worker_main(name: str) -> WorkerMain:
    if name not in WORKER_NAMES:
        raise ValueError(f"unknown worker {name!r}; known: {', '.join(WORKER_NAMES)}")
    module = importlib.import_module(f"workers.{name}")
    main: WorkerMain = module.run
    return main


def worker_config(settings: Settings) -> WorkerConfig:
    return WorkerConfig(
        node_id=settings.node_id,
        kafka_bootstrap_servers=settings.kafka_bootstrap_servers,
        topic_prefix=settings.kafka_topic_prefix,
        kafka_idempotence=settings.kafka_idempotence,
        kafka_fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
        outbox_poll_interval=settings.outbox_poll_interval,
        outbox_batch_size=settings.outbox_batch_size,
        scheduler_interval=settings.scheduler_interval,
        audit_retention_days=settings.audit_retention_days,
        catch_up_window=settings.catch_up_window,
    )


@contextlib.asynccontextmanager
async def worker_deps(settings: Settings) -> AsyncIterator[WorkerDeps]:
    pool = await create_pool(settings.database_url, min_size=1, max_size=5)
    redis = redis_client.connect(
        settings.redis_url,
        max_connections=settings.redis_pool_max,
        name=redis_client.client_name("workers", settings.node_id),
    )
    emitter = RedisRoomEmitter(
        settings.redis_url,
        settings.socketio_channel,
        redis_client.client_name("emitter", settings.node_id),
    )
    try:
        yield WorkerDeps(
            pool=pool,
            redis=redis,
            keys=RedisKeys(settings.redis_key_prefix),
            emitter=emitter,
            config=worker_config(settings),
        )
    finally:
        await emitter.close()
        await redis.aclose()
        await pool.close()


async def _topics_if_reachable(settings: Settings) -> None:
    """The embedded broker forgets topics on restart, so workers (re)create them.

    A broker that is down now is not fatal: the workers wait for it themselves.
    """
    try:
        await asyncio.wait_for(
            ensure_topics(settings.kafka_bootstrap_servers, settings.kafka_topic_prefix), 10
        )
    except Exception as exc:
        log.warning("could not ensure kafka topics", extra={"error": repr(exc)})


async def run_worker_process(settings: Settings, name: str) -> None:
    """`taskhub worker NAME`: one worker until SIGTERM."""
    main = worker_main(name)
    await _topics_if_reachable(settings)
    async with worker_deps(settings) as deps:
        await run_until_signalled(name, main, deps)


@contextlib.asynccontextmanager
async def embedded_workers(settings: Settings, names: tuple[str, ...]) -> AsyncIterator[None]:
    """Run workers as tasks of this process while the context is open."""
    if not names:
        yield
        return
    stop = asyncio.Event()
    mains = [worker_main(name) for name in names]
    await _topics_if_reachable(settings)
    async with worker_deps(settings) as deps:
        tasks = [
            asyncio.create_task(_supervised(name, main, deps, stop), name=f"worker-{name}")
            for name, main in zip(names, mains, strict=True)
        ]
        try:
            yield
        finally:
            stop.set()
            await asyncio.gather(*tasks)


async def _supervised(name: str, main: WorkerMain, deps: WorkerDeps, stop: asyncio.Event) -> None:
    """Restart a worker that crashed, as a process supervisor would restart its process.

    What it had not committed is done again by the next run (handlers dedupe).
    """
    delay = 0.5
    while not stop.is_set():
        try:
            await main(deps, stop)
        except Exception:
            log.exception("worker crashed; restarting", extra={"worker": name, "in_seconds": delay})
        else:
            if stop.is_set():
                return
            log.error("worker returned without being stopped; restarting", extra={"worker": name})
        await sleep_or_stop(stop, delay)
        delay = min(delay * 2, 30.0)
