"""What handlers are given by the hub: connections, limits and two small interfaces.

Handlers never import `hub/`; the hub implements these protocols and passes
them in, so the dependency arrows keep pointing one way.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Protocol

from redis.asyncio import Redis

from handlers.client_address import IPNetwork
from storage.db import Pool
from storage.keys import RedisKeys
from storage.presence import Presence
from storage.rate_limits import RateLimiter, RateLimits


@dataclass(frozen=True)
class AccessClaims:
    user_id: uuid.UUID
    session_id: uuid.UUID | None
    expires_at: int


class AccessTokens(Protocol):
    def issue(self, user_id: uuid.UUID, session_id: uuid.UUID) -> str: ...

    def verify(self, token: str) -> AccessClaims:
        """Raise Unauthorized when the token is not valid now."""
        ...


class Metrics(Protocol):
    def event_in(self, event: str) -> None: ...

    def event_out(self, event: str) -> None: ...

    def acked(self, event: str, seconds: float, code: str | None) -> None: ...

    def connections(self, delta: int) -> None: ...


@dataclass(frozen=True)
class Limits:
    bcrypt_rounds: int
    access_token_ttl: int
    refresh_token_ttl: int
    max_payload_bytes: int
    catch_up_window: int
    rates: RateLimits
    max_connections_per_user: int
    # people's access tokens from clients that are not browsers (socket_hub.from_a_browser)
    user_tokens_without_origin: bool = False


@dataclass(frozen=True)
class Deps:
    pool: Pool
    redis: Redis
    keys: RedisKeys
    presence: Presence
    tokens: AccessTokens
    metrics: Metrics
    limits: Limits
    rate_limiter: RateLimiter
    node_id: str
    kafka_bootstrap_servers: str
    # whose X-Forwarded-For names the client (handlers/client_address.py)
    trusted_proxies: tuple[IPNetwork, ...] = ()
