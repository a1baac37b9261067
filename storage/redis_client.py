"""The Redis client every taskhub process uses (presence, claims, idempotency...)."""

from __future__ import annotations

import logging
import re

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from storage import outages

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

    A command that fails on a broken connection is sent once more, on a new one:
    after Redis restarted, every pooled connection is dead, and without the retry
    the first command on each (a heartbeat, a presence script, an emit claim) would
    fail although Redis is back. Only once, and without a pause: while Redis is
    down, a command fails at once and its caller's policy (fail open, repair
    later, `unavailable`) applies instead of every event waiting out a backoff.
    """
    pool = BlockingConnectionPool.from_url(
        url,
        decode_responses=True,
        max_connections=max_connections,
        timeout=POOL_WAIT_SECONDS,
        client_name=name,
        retry=Retry(NoBackoff(), 1),
    )
    return Redis.from_pool(pool)


class OutageLog:
    """One warning when a duty that needs Redis starts failing for want of it, and
    one when it works again, instead of a line per event: during an outage every
    event would log one, and the log would hide everything else."""

    def __init__(self, logger: logging.Logger, duty: str) -> None:
        self._log = logger
        self._duty = duty
        self.down = False

    def failed(self, exc: BaseException, meanwhile: str) -> None:
        """Redis failed `exc` (an outage); `meanwhile` says what happens until it is back."""
        if not self.down:
            self.down = True
            self._log.warning(
                "%s: Redis is unreachable; %s",
                self._duty,
                meanwhile,
                extra={"error": outages.describe(exc)},
            )

    def recovered(self) -> None:
        if self.down:
            self.down = False
            self._log.warning("%s: Redis is reachable again", self._duty)
