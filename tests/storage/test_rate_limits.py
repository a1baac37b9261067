"""Rate limit buckets in a real Redis, as two nodes share them."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from storage.keys import RedisKeys
from storage.rate_limits import Bucket, Rate, RateLimiter


@pytest.fixture
def keys() -> RedisKeys:
    return RedisKeys(prefix=f"test:{uuid.uuid4().hex[:12]}:")


@pytest.fixture
async def two_nodes(
    services: dict[str, str], keys: RedisKeys
) -> AsyncIterator[tuple[RateLimiter, RateLimiter]]:
    """Two limiters on their own Redis connections, over one key prefix."""
    first, second = Redis.from_url(services["REDIS_URL"]), Redis.from_url(services["REDIS_URL"])
    try:
        yield RateLimiter(first, keys), RateLimiter(second, keys)
    finally:
        await first.aclose()
        await second.aclose()


async def test_a_burst_of_count_then_one_per_interval_across_nodes(
    two_nodes: tuple[RateLimiter, RateLimiter],
) -> None:
    a, b = two_nodes
    bucket = [Bucket("write:user", "u1", Rate(5, 1))]
    # five at once, from either node
    waits = [await (a if n % 2 else b).take(bucket) for n in range(5)]
    assert waits == [0.0] * 5
    refused = await a.take(bucket)
    assert 0 < refused <= 0.2  # one more is allowed every 1/5 s
    assert await b.take(bucket) > 0  # a refusal charged nothing, and the other node agrees
    await asyncio.sleep(refused + 0.01)
    assert await b.take(bucket) == 0.0
    assert await a.take(bucket) > 0
    # another subject has its own bucket
    assert await a.take([Bucket("write:user", "u2", Rate(5, 1))]) == 0.0


async def test_a_request_refused_by_one_bucket_charges_neither(
    two_nodes: tuple[RateLimiter, RateLimiter],
) -> None:
    a, _ = two_nodes
    user = Bucket("chat:user", "u1", Rate(1, 60))
    ip = Bucket("chat:ip", "10.0.0.1", Rate(2, 60))
    assert await a.take([user, ip]) == 0.0
    wait = await a.take([user, ip])
    assert 59 < wait <= 60  # the user's bucket is empty for a minute
    # the IP was charged once only: another user from it still gets its one request
    other = Bucket("chat:user", "u2", Rate(1, 60))
    assert await a.take([other, ip]) == 0.0
    assert await a.take([Bucket("chat:user", "u3", Rate(1, 60)), ip]) > 0


async def test_buckets_charged_in_turn_keep_what_the_first_took(
    two_nodes: tuple[RateLimiter, RateLimiter],
) -> None:
    """As two separate charges, address then user, would: a user refused still
    cost the address, and an address refused charges the user nothing."""
    a, b = two_nodes
    ip = Bucket("connect:ip", "10.0.0.2", Rate(3, 60))
    user = Bucket("connect:user", "u1", Rate(1, 60))
    assert await a.take([ip, user], in_turn=True) == 0.0
    wait = await b.take([ip, user], in_turn=True)
    assert 59 < wait <= 60  # the user's bucket refused...
    # ...after the address paid: one place left of its three
    assert await a.take([ip, Bucket("connect:user", "u2", Rate(1, 60))], in_turn=True) == 0.0
    third = Bucket("connect:user", "u3", Rate(1, 60))
    assert await a.take([ip, third], in_turn=True) > 0
    # the address refused before the user was looked at: u3 still has its place
    assert await a.take([third]) == 0.0


async def test_an_idle_bucket_leaves_no_key(
    services: dict[str, str], keys: RedisKeys, two_nodes: tuple[RateLimiter, RateLimiter]
) -> None:
    a, _ = two_nodes
    await a.take([Bucket("connect:user", "u1", Rate(10, 0.5))])
    redis = Redis.from_url(services["REDIS_URL"])
    try:
        ttl_ms = await redis.pttl(keys.rate_limit("connect:user", "u1"))
        assert 0 < ttl_ms <= 50  # full again after one interval (0.5 s / 10)
    finally:
        await redis.aclose()
