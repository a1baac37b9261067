"""The hub's rate limits: which events count as what, and the refusal with its wait.

The buckets live in Redis (storage/rate_limits.py), so a user's budget is the
same whichever node their sockets are on. An event is charged before its payload
is parsed: garbage counts too, or a flood of invalid writes would be free.

While Redis is down the limits fail open, except for password logins: the
buckets are a guard, PostgreSQL holds the truth, and refusing every connect,
edit and chat message for as long as a cache is gone would turn its outage into
the hub's. A login is the exception: its limit is what stops password guessing,
so it is answered `unavailable` until the buckets are back.
"""

from __future__ import annotations

import math
import uuid

from handlers.deps import Deps
from protocol.catalog import CLIENT_EVENTS, Limit
from protocol.errors import RateLimited
from storage import outages

# Limits that refuse (`unavailable`) rather than let everything through while Redis is down.
FAIL_CLOSED = frozenset({Limit.LOGIN})

# The events each limit counts (the catalog says which, and the docs show it).
EVENT_LIMITS: dict[str, Limit] = {
    spec.event.value: spec.limit for spec in CLIENT_EVENTS.values() if spec.limit is not None
}


async def charge(
    deps: Deps,
    action: str,
    user_id: uuid.UUID | str | None,
    ip: str | None,
    *,
    in_turn: bool = False,
) -> None:
    """Count one `action` of this user from this address, or refuse it with
    `rate_limited` and `retry_after` (seconds, rounded up to a tenth).

    Both buckets are charged or neither, unless `in_turn`: then the address is
    charged first and stays charged when the user's bucket refuses (as two
    separate charges would, in one round trip).

    Redis being down lets the action through (one warning per outage), unless
    the limit is in FAIL_CLOSED: then the outage is raised, to be answered
    `unavailable`."""
    buckets = deps.limits.rates.buckets(action, user_id, ip)
    if not buckets:
        return
    limiter = deps.rate_limiter
    try:
        wait = await limiter.take(buckets, in_turn=in_turn)
    except Exception as exc:
        if action in FAIL_CLOSED or not outages.is_outage(exc):
            raise
        limiter.outage.failed(exc, "rate limits are not applied until it is back")
        return
    limiter.outage.recovered()
    if wait > 0:
        retry_after = math.ceil(wait * 10) / 10
        raise RateLimited(
            f"too many {action} requests; retry in {retry_after:g} s",
            {"action": action, "retry_after": retry_after},
        )


async def charge_event(deps: Deps, event: str, user_id: uuid.UUID, ip: str | None) -> None:
    """`charge` for a client event, when a limit counts it."""
    action = EVENT_LIMITS.get(event)
    if action is not None:
        await charge(deps, action, user_id, ip)


def over_connection_cap(deps: Deps, connections: int) -> RateLimited | None:
    """The refusal of a connect that would make the user's sockets more than the cap."""
    cap = deps.limits.max_connections_per_user
    if connections <= cap:
        return None
    return RateLimited(
        f"too many connections (at most {cap} per user)",
        {"reason": "too_many_connections", "limit": cap},
    )
