"""The Redis client every taskhub process uses (presence, claims, idempotency...)."""

from __future__ import annotations

import re

from redis.asyncio import BlockingConnectionPool, Redis

# How long a command waits for a free pooled connection before it fails.
POOL_WAIT_SECONDS = 30.0


def client_name(role: str, node_id: str) -> str:
    """The name a connection gives itself (CLIENT SETNAME): `CLIENT LIST` then says
    which node and which part of it holds each connection. Redis refuses spaces."""
    return re.sub(r"[^A-Za-z0-9_.:-]", "-", f"taskhub:{role}:{node_id}")


def connect(url: str, *, max_connections: int, name: str | None = None) -> Redis:
    """A client whose pool makes a burst wait for a free connection instead of failing.

    redis-py's default pool raises MaxConnectionsError once 100 commands are in
    flight; a few hundred connections dropping at once (a deploy, a network blip)
    each run a presence script, and a failed one leaves a person shown on a board
    they left. Queued behind the pool, they all run, a moment later.
    """
    pool = BlockingConnectionPool.from_url(
        url,
        decode_responses=True,
        max_connections=max_connections,
        timeout=POOL_WAIT_SECONDS,
        client_name=name,
    )
    return Redis.from_pool(pool)
