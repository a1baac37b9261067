"""What a worker is given by the hub: connections and its part of the settings.

Workers never import `hub/`; the hub builds these from its one settings object.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from redis.asyncio import Redis

from storage.db import Pool
from storage.keys import RedisKeys


class RoomEmitter(Protocol):
    """Emits into Socket.IO rooms of every hub node (through the Redis manager)."""

    async def emit(self, event: str, data: Any, room: str | list[str]) -> None: ...


@dataclass(frozen=True)
class WorkerConfig:
    node_id: str
    kafka_bootstrap_servers: str
    topic_prefix: str
    kafka_idempotence: bool
    kafka_fetch_max_wait_ms: int
    outbox_poll_interval: float
    outbox_batch_size: int
    scheduler_interval: float
    audit_retention_days: tuple[tuple[str, int], ...]
    catch_up_window: int


@dataclass(frozen=True)
class WorkerDeps:
    pool: Pool
    redis: Redis
    keys: RedisKeys
    emitter: RoomEmitter
    config: WorkerConfig

    def topic(self, base: str) -> str:
        return f"{self.config.topic_prefix}{base}"

    def group(self, name: str) -> str:
        """Consumer group of a worker; prefixed like the topics so deployments stay apart."""
        return f"{self.config.topic_prefix}taskhub-{name}"
