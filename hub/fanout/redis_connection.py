"""A Redis connection of its own for the Socket.IO channel's publisher and listener."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from redis.asyncio import Connection
from redis.asyncio.connection import parse_url
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

# How long opening the connection may take (TCP, TLS, AUTH, SELECT, CLIENT SETNAME,
# and the listener's SUBSCRIBE) before the attempt counts as failed: a Redis that
# takes connections and answers nothing must not hold messages without end.
CONNECT_TIMEOUT = 5.0

# The wait before the listener subscribes again, or the publisher tries to connect
# again, after Redis was lost: doubling from the first to the last. python-socketio's
# doubles up to 60 s: after an outage of 10 s its node heard the other nodes again 5 s
# after Redis was back, after one of 16 s, 15 s after.
RETRY_FIRST = 0.25
RETRY_MAX = 1.0


async def open_connection(
    url: str, client_name: str, *, timeout: float = CONNECT_TIMEOUT
) -> Connection:
    """A connected redis-py connection outside any pool, with the URL's address,
    credentials, database and TLS settings (redis://, rediss://, unix://).

    A pool would hand out a connection per command and check it back in; the
    channel keeps one connection per role for as long as it works and makes a new
    one when it breaks, so these options are the channel's whatever the URL says:
    - RESP2: its messages are plain replies on every Redis version, where RESP3
      (redis-py 8's default) makes them push notifications for a handler of
      redis-py's own;
    - no socket_timeout: a read waits for the next message however long that is;
    - no retry of the connect: the publisher and the listener retry themselves."""
    options: dict[str, Any] = dict(parse_url(url))
    connection_class = options.pop("connection_class", Connection)
    options.update(
        client_name=client_name,
        protocol=2,
        socket_timeout=None,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
    )
    connection: Connection = connection_class(**options)
    try:
        async with asyncio.timeout(timeout):
            await connection.connect()
    except BaseException:
        with contextlib.suppress(Exception):
            await connection.disconnect(nowait=True)
        raise
    return connection


def stream_writer(connection: Connection) -> asyncio.StreamWriter:
    """The connection's writer, for the publisher to write to itself.

    redis-py's `send_packed_command` awaits the writer's drain in the caller, and
    disconnects the connection when that caller is cancelled there: one emit
    cancelled while Redis was slow would break the connection every emit shares
    (and what it had sent would be sent again). redis-py keeps the writer in
    `_writer` (4.x to 8.x; setup.cfg caps redis below 9, and
    tests/hub/test_redis_channel.py fails if it moves)."""
    writer: asyncio.StreamWriter | None = connection._writer
    if writer is None:
        raise ConnectionError("the connection is not open")
    return writer
