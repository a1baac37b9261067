"""Who emits an event to its room: exactly one of the hub and the bridge.

The hub emits its own task events right after commit; the bridge relays every
event it reads from Kafka. Both claim the event_id first, so an event is emitted
once, and still emitted by the bridge when the hub could not (Redis refused the
publish, or the node died between commit and emit).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis

from storage.keys import RedisKeys

# Longer than any redelivery of a committed-late Kafka batch.
CLAIM_TTL_SECONDS = 24 * 3600


async def emit_once(
    redis: Redis, keys: RedisKeys, event_id: uuid.UUID, emit: Callable[[], Awaitable[None]]
) -> bool:
    """Claim the event, then run `emit`; a failed emit gives the claim back. False if
    someone had emitted it already."""
    key = keys.emitted(event_id)
    if not await redis.set(key, "1", nx=True, ex=CLAIM_TTL_SECONDS):
        return False
    try:
        await emit()
    except BaseException:
        await redis.delete(key)
        raise
    return True
