"""`session:{user_id}` in Redis: the live logins of a user, for other services.

PostgreSQL stays the truth (`sessions`); this hash is a 24 h cache that other
processes read without touching the database.

Writing it is best effort: it happens after the login, refresh or logout was
committed, and Redis being down must not turn that success into a failure. A
refresh answered `unavailable` after its rotation was committed would be sent
again with the spent refresh token, which reads as token theft and revokes the
whole login. So an outage is logged (a warning, no traceback) and the request
goes on; a login missing from the cache, or a revoked one still in it,
stays so until the user's next login or its TTL.
"""

from __future__ import annotations

import json
import logging
import uuid
from datetime import UTC, datetime

from redis.asyncio import Redis

from storage import outages
from storage.keys import RedisKeys

log = logging.getLogger(__name__)

SESSION_TTL_SECONDS = 24 * 3600


async def remember(
    redis: Redis,
    keys: RedisKeys,
    user_id: uuid.UUID,
    family_id: uuid.UUID,
    *,
    user_agent: str | None,
    ip: str | None,
) -> None:
    value = json.dumps({"since": datetime.now(UTC).isoformat(), "user_agent": user_agent, "ip": ip})
    key = keys.session(user_id)
    try:
        async with redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, str(family_id), value)
            pipe.expire(key, SESSION_TTL_SECONDS)
            await pipe.execute()
    except Exception as exc:
        _not_cached(exc, "remember", user_id)


async def forget(redis: Redis, keys: RedisKeys, user_id: uuid.UUID, family_id: uuid.UUID) -> None:
    try:
        await redis.hdel(keys.session(user_id), str(family_id))
    except Exception as exc:
        _not_cached(exc, "forget", user_id)


def _not_cached(exc: Exception, what: str, user_id: uuid.UUID) -> None:
    if not outages.is_outage(exc):
        raise exc
    log.warning(
        "session cache not written: Redis is unreachable",
        extra={"write": what, "user_id": str(user_id), "error": outages.describe(exc)},
    )
