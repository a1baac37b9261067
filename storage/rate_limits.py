"""Rate limits in Redis, shared by every node.

Each limit is a GCRA bucket (the "generic cell rate algorithm": a token bucket
kept as one timestamp per key): `count` actions per `seconds`, at most `count`
of them at once. One key per (limit, subject), holding the moment the bucket is
empty again; it expires when the bucket is full, so an idle subject costs
nothing. The clock is Redis's own (TIME), so nodes with skewed clocks agree.

A request is usually checked against two buckets at once (the user's and the
IP's): one script checks both and takes from both only when both allow it, so a
refused request does not use up the budget of the other.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

from redis.asyncio import Redis

from storage.keys import RedisKeys
from storage.redis_client import OutageLog

log = logging.getLogger(__name__)

# KEYS: one bucket each. ARGV[1]: '1' to charge the buckets in turn (each one
# that has room is charged, up to the first that has none), '0' for all or none;
# then, for each key, its emission interval and its burst span (both in
# microseconds). Returns 0 when every bucket had room (and each was charged),
# else the microseconds until the refusing one(s) would have room.
_TAKE = """
redis.replicate_commands()
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local in_turn = ARGV[1] == '1'
local wait = 0
local next_full = {}
for i, key in ipairs(KEYS) do
  local interval = tonumber(ARGV[2 * i])
  local span = tonumber(ARGV[2 * i + 1])
  local tat = tonumber(redis.call('GET', key) or '0')
  if tat < now then tat = now end
  local after = tat + interval
  local early = after - span - now
  if in_turn then
    if early > 0 then return early end
    redis.call('SET', key, string.format('%d', after), 'PX', math.ceil((after - now) / 1000))
  else
    if early > wait then wait = early end
    next_full[i] = after
  end
end
if in_turn then return 0 end
if wait > 0 then return wait end
for i, key in ipairs(KEYS) do
  local ttl = math.ceil((next_full[i] - now) / 1000)
  redis.call('SET', key, string.format('%d', next_full[i]), 'PX', ttl)
end
return 0
"""


@dataclass(frozen=True, slots=True)
class Rate:
    """`count` actions per `seconds`, up to `count` at once."""

    count: int
    seconds: float

    def __str__(self) -> str:
        return f"{self.count}/{self.seconds:g}s"


@dataclass(frozen=True, slots=True)
class Bucket:
    """One limit applied to one subject: `name` says which limit (`write:user`),
    `subject` whom (a user id, an IP address)."""

    name: str
    subject: str
    rate: Rate


class RateLimiter:
    def __init__(self, redis: Redis, keys: RedisKeys) -> None:
        self._keys = keys
        self._take = redis.register_script(_TAKE)
        # what the callers say while Redis is down (they decide what then happens)
        self.outage = OutageLog(log, "rate limits")

    async def take(self, buckets: Sequence[Bucket], *, in_turn: bool = False) -> float:
        """Charge one action to every bucket, or to none: 0.0 when allowed, else the
        seconds to wait before all of them would allow it.

        `in_turn` charges them as separate checks one after the other would, in
        one round trip: each bucket with room is charged until one has none (those
        before it stay charged), and the wait is that one's."""
        if not buckets:
            return 0.0
        args: list[int] = [1 if in_turn else 0]
        for bucket in buckets:
            interval = bucket.rate.seconds * 1_000_000 / bucket.rate.count
            args += [math.ceil(interval), math.ceil(bucket.rate.seconds * 1_000_000)]
        wait = await self._take(
            keys=[self._keys.rate_limit(b.name, b.subject) for b in buckets], args=args
        )
        return int(wait) / 1_000_000


@dataclass(frozen=True, slots=True)
class RateLimits:
    """Each action's limit per user and per IP address; None switches one off.

    The defaults leave room for a person on several tabs and for a bot at work,
    and stop a script in a loop: a person moves a card about once a second at
    most, a chat burst is a few messages.
    """

    connect_user: Rate | None = Rate(30, 60)
    connect_ip: Rate | None = Rate(120, 60)
    write_user: Rate | None = Rate(20, 1)
    write_ip: Rate | None = Rate(100, 1)
    chat_user: Rate | None = Rate(20, 10)
    chat_ip: Rate | None = Rate(100, 10)
    # per email address tried (whether or not it has an account), and per address
    login_user: Rate | None = Rate(10, 300)
    login_ip: Rate | None = Rate(30, 60)

    def buckets(self, action: str, user_id: object | None, ip: str | None) -> list[Bucket]:
        """The buckets one `action` (`connect`, `write`, `chat`: protocol.catalog.Limit)
        of this user, from this address, is charged to (the user's alone, or the
        address's alone, when the other is None)."""
        per_user: Rate | None = getattr(self, f"{action}_user")
        per_ip: Rate | None = getattr(self, f"{action}_ip")
        found = []
        # the address first: charged in turn, it pays even when the user is refused
        if per_ip is not None and ip:
            found.append(Bucket(f"{action}:ip", ip, per_ip))
        if per_user is not None and user_id is not None:
            found.append(Bucket(f"{action}:user", str(user_id), per_user))
        return found
