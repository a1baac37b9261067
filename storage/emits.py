"""Who emits an event to its room: exactly one of the hub and the bridge.

The hub emits its own task events right after commit; the bridge relays every
event it reads from Kafka. Both claim the event_id first, so an event is emitted
once, and still emitted by the bridge when the hub could not (Redis refused the
publish, or the node died between commit and emit).

While Redis is down no claim can be made. The hub then emits anyway
(`unclaimed_if_down`): the publish to other nodes fails too, but this node's
clients get the event live instead of waiting for Redis. The claim stays free,
so the bridge emits the event again once Redis is back, and clients drop the
seq they already have. The bridge does not emit unclaimed: its batch fails and
is retried, so it never commits an offset for an event nobody emitted.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis

from storage import outages
from storage.keys import RedisKeys

log = logging.getLogger(__name__)

# Longer than any redelivery of a committed-late Kafka batch.
CLAIM_TTL_SECONDS = 24 * 3600


async def emit_once(
    redis: Redis,
    keys: RedisKeys,
    event_id: uuid.UUID,
    emit: Callable[[], Awaitable[None]],
    *,
    unclaimed_if_down: bool = False,
) -> bool:
    """Claim the event, then run `emit`; a failed emit gives the claim back. False if
    someone had emitted it already. With `unclaimed_if_down`, Redis being down runs
    `emit` without a claim (see the module's docstring); otherwise it raises."""
    key = keys.emitted(event_id)
    try:
        claimed = await redis.set(key, "1", nx=True, ex=CLAIM_TTL_SECONDS)
    except Exception as exc:
        if not (unclaimed_if_down and outages.is_outage(exc)):
            raise
        # the Socket.IO manager warns once that Redis is gone; a line per event would drown it
        log.debug("emitting without a claim: Redis is down", extra={"event_id": str(event_id)})
        await emit()
        return True
    if not claimed:
        return False
    try:
        await emit()
    except BaseException:
        await redis.delete(key)
        raise
    return True
