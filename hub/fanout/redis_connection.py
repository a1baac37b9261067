"""A Redis connection of its own for the Socket.IO channel's publisher and listener."""

from __future__ import annotations

from redis.asyncio import Connection, ConnectionPool

# How long opening the connection may take (TCP, TLS, AUTH, SELECT, CLIENT SETNAME)
# before the attempt counts as failed: messages waiting for it are not held longer.
CONNECT_TIMEOUT = 5.0

# The wait before the listener subscribes again, or the publisher tries to connect
# again, after Redis was lost: doubling from the first to the last. python-socketio's
# doubles up to 60 s: after an outage of 10 s its node heard the other nodes again 5 s
# after Redis was back, after one of 16 s, 15 s after.
RETRY_FIRST = 0.25
RETRY_MAX = 1.0


async def open_connection(url: str, client_name: str) -> Connection:
    """A connected redis-py connection outside any pool, with every option the URL
    gives (redis://, rediss:// and unix://, credentials, database, TLS settings).

    A pool would hand out a connection per command and check it back in; the
    channel keeps one connection per role for as long as it works, writes to it
    without waiting for replies, and makes a new one when it breaks. No
    socket_timeout: a read waits for the next message however long that is, and
    redis-py would wrap every write in a task of its own to time it. RESP2: its
    messages are plain replies on every Redis version, where RESP3 (redis-py 8's
    default) makes them push notifications redis-py hands to a handler of its own."""
    pool = ConnectionPool.from_url(
        url,
        client_name=client_name,
        protocol=2,
        socket_connect_timeout=CONNECT_TIMEOUT,
        socket_timeout=None,
    )
    connection = pool.make_connection()
    await connection.connect()
    return connection
