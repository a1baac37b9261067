"""`session:{user_id}` in Redis: the live logins of a user, for other services.

PostgreSQL stays the truth (`sessions`); this hash is a 24 h cache that other
processes read without touching the database.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

from redis.asyncio import Redis

from storage.keys import RedisKeys

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
    async with redis.pipeline(transaction=True) as pipe:
        pipe.hset(key, str(family_id), value)
        pipe.expire(key, SESSION_TTL_SECONDS)
        await pipe.execute()


async def forget(redis: Redis, keys: RedisKeys, user_id: uuid.UUID, family_id: uuid.UUID) -> None:
    await redis.hdel(keys.session(user_id), str(family_id))
