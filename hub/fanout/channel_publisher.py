"""The Socket.IO channel's publisher: PUBLISH on one connection, without waiting.

python-socketio publishes each emit through a redis-py client and waits for
Redis's reply before the emit returns: measured on the N=100 fan-out, about 110 µs
of hub CPU per broadcast (the pool checkout, the command's coroutines, and a wake
of the emitting task for the reply), more than a tenth of the broadcast. Here a
PUBLISH is written to the connection and the emit goes on; a task of the
publisher's reads the replies as they come, in order.

Nothing sent is forgotten until Redis answered it. When the connection breaks,
the messages it had not answered are sent again, in order, on the next one: Redis
may have taken some of them before it broke, so one can reach the other nodes
twice, as python-socketio's own second try could (a board's events carry their
seq). The next connection is made at once after one that had worked for a while,
else after a wait that doubles up to RETRY_MAX. When Redis cannot be reached,
what waited for the connection is dropped with one warning per outage, as
before: each node catches its clients up when its listener subscribes again
(`after_gap`). While Redis is down, a new connection is tried at most every
RETRY_MAX seconds, so an emit never waits out a connect that will fail.

When Redis is slow to answer (more than MAX_UNANSWERED_BYTES sent and not
answered), an emit waits for room, as python-socketio's waited for its reply;
after STALL_WAIT it goes on without publishing, with a warning.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from typing import Any

from redis.asyncio import Connection
from redis.exceptions import ResponseError

from hub.fanout.redis_connection import (
    CONNECT_TIMEOUT,
    RETRY_FIRST,
    RETRY_MAX,
    open_connection,
    stream_writer,
)
from storage.redis_client import OutageLog

log = logging.getLogger(__name__)

# Bytes of messages sent and not yet answered (or waiting for a connection) past
# which an emit waits for Redis to catch up: a stalled Redis must not make the
# node buffer emits without end.
MAX_UNANSWERED_BYTES = 32 * 1024 * 1024
# How long an emit waits for that room before it goes on without publishing.
STALL_WAIT = 5.0

WHILE_DOWN = "emits reach this node's clients only until it is back"


def encoded(message: dict[str, Any]) -> bytes:
    """A python-socketio channel message as it is published: compact JSON."""
    return json.dumps(message, separators=(",", ":")).encode()


class ChannelPublisher:
    """PUBLISH on `channel`, pipelined on one connection (see the module)."""

    def __init__(
        self,
        url: str,
        channel: str,
        client_name: str,
        *,
        max_unanswered_bytes: int = MAX_UNANSWERED_BYTES,
        connect_timeout: float = CONNECT_TIMEOUT,
    ) -> None:
        self._url = url
        self._client_name = client_name
        self._max_bytes = max_unanswered_bytes
        self._connect_timeout = connect_timeout
        name = channel.encode()
        self._head = b"*3\r\n$7\r\nPUBLISH\r\n$%d\r\n%b\r\n" % (len(name), name)
        self._connection: Connection | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._connected_at = 0.0
        self._replies: asyncio.Task[None] | None = None
        self._connecting: asyncio.Task[None] | None = None
        # sent on the connection, oldest first: each reply answers the leftmost
        self._unanswered: deque[bytes] = deque()
        # to send once the connection being made is there
        self._waiting: deque[bytes] = deque()
        self._pending_bytes = 0  # of both
        self._retry_at = 0.0
        self._retry_wait = RETRY_FIRST
        self._outage = OutageLog(log, "publishing on the Socket.IO Redis channel")
        self._stalled = False  # an emit waits for room (`_room`)
        self._room = asyncio.Event()
        self._disconnecting: set[asyncio.Task[None]] = set()
        self._closed = False

    def _command(self, payload: bytes) -> bytes:
        return b"%b$%d\r\n%b\r\n" % (self._head, len(payload), payload)

    async def publish(self, payload: bytes) -> None:
        """Send `payload`; returns once it is written (or dropped), not answered."""
        if self._closed:
            log.warning("emit after the Socket.IO channel closed, not published")
            return
        if self._pending_bytes + len(payload) > self._max_bytes and self._pending_bytes:
            if not await self._room_for(len(payload)):
                return
        writer = self._writer
        if writer is None:
            if self._connecting is None:
                if asyncio.get_running_loop().time() < self._retry_at:
                    return  # Redis is down: the outage warning said what this means
                self._connecting = asyncio.create_task(self._connect(), name="channel-publisher")
            self._waiting.append(payload)
            self._pending_bytes += len(payload)
            return
        self._unanswered.append(payload)
        self._pending_bytes += len(payload)
        # no drain: the bound above is the backpressure (see redis_connection.stream_writer)
        writer.write(self._command(payload))

    async def _room_for(self, size: int) -> bool:
        """Wait until Redis answered enough; False if it did not within STALL_WAIT."""
        if not self._stalled:
            log.warning(
                "Redis has not answered %d bytes of the Socket.IO channel's messages: "
                "emits wait for it",
                self._pending_bytes,
            )
        try:
            async with asyncio.timeout(STALL_WAIT):
                while self._pending_bytes + size > self._max_bytes and self._pending_bytes:
                    if self._closed:
                        return False
                    self._stalled = True
                    self._room.clear()
                    await self._room.wait()
        except TimeoutError:
            log.warning(
                "an emit waited %g s for Redis on the Socket.IO channel: it reaches this "
                "node's clients only",
                STALL_WAIT,
            )
            return False
        return True

    def _forget(self, size: int) -> None:
        """`size` bytes were answered or dropped: room for emits that wait."""
        self._pending_bytes -= size
        if self._stalled and self._pending_bytes <= self._max_bytes // 2:
            self._stalled = False
            self._room.set()
            log.warning("Redis caught up with the Socket.IO channel's messages")

    async def _connect(self, delay: float = 0.0) -> None:
        if delay:
            await asyncio.sleep(delay)
        try:
            connection = await open_connection(
                self._url, self._client_name, timeout=self._connect_timeout
            )
        except Exception as exc:
            self._connecting = None
            self._retry_at = asyncio.get_running_loop().time() + self._retry_wait
            self._retry_wait = min(self._retry_wait * 2, RETRY_MAX)
            dropped = sum(len(payload) for payload in self._waiting)
            self._waiting.clear()
            self._forget(dropped)
            self._outage.failed(exc, WHILE_DOWN)
            return
        self._connecting = None
        self._outage.recovered()
        self._connection = connection
        self._writer = writer = stream_writer(connection)
        self._connected_at = asyncio.get_running_loop().time()
        self._replies = asyncio.create_task(self._read_replies(connection), name="channel-replies")
        if self._waiting:
            waiting, self._waiting = self._waiting, deque()
            self._unanswered.extend(waiting)
            writer.writelines([self._command(payload) for payload in waiting])

    async def _read_replies(self, connection: Connection) -> None:
        while True:
            try:
                await connection.read_response()
            except ResponseError as exc:
                # refused by Redis (an ACL, say): sending it again would be refused too
                log.warning("Redis refused a PUBLISH on the Socket.IO channel: %s", exc)
            except Exception as exc:
                self._lost(connection, exc)
                return
            if self._unanswered:
                self._forget(len(self._unanswered.popleft()))
            else:
                log.warning("Redis answered a PUBLISH the Socket.IO channel did not send")

    def _lost(self, connection: Connection, exc: BaseException) -> None:
        """The connection broke: what it left unanswered goes first on the next."""
        if connection is not self._connection:
            return
        self._connection = None
        self._writer = None
        if self._replies is not None and self._replies is not asyncio.current_task():
            self._replies.cancel()
        self._replies = None
        self._closing(connection)
        self._unanswered.extend(self._waiting)
        self._waiting, self._unanswered = self._unanswered, deque()
        loop = asyncio.get_running_loop()
        if loop.time() - self._connected_at >= RETRY_MAX:
            self._retry_wait = RETRY_FIRST
            delay = 0.0
        else:  # a connection that breaks as soon as it is made is not made again at once
            delay = self._retry_wait
            self._retry_wait = min(self._retry_wait * 2, RETRY_MAX)
        if self._closed or not self._waiting:
            return
        log.info(
            "the Socket.IO channel's publisher lost its connection; sending again",
            extra={"unanswered": len(self._waiting), "error": repr(exc), "after": delay},
        )
        if self._connecting is None:
            self._connecting = asyncio.create_task(self._connect(delay), name="channel-publisher")

    def _closing(self, connection: Connection) -> None:
        task = asyncio.create_task(_disconnect(connection))
        self._disconnecting.add(task)
        task.add_done_callback(self._disconnecting.discard)

    @property
    def unanswered(self) -> int:
        """Messages not yet answered by Redis, those waiting for a connection included."""
        return len(self._unanswered) + len(self._waiting)

    async def close(self, *, within: float = 2.0) -> None:
        """Wait up to `within` seconds for Redis to answer what was sent, then close."""
        self._closed = True
        self._room.set()  # emits that wait for room go on without publishing
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while self.unanswered and (self._connection or self._connecting):
            if loop.time() > deadline:
                break
            await asyncio.sleep(0.01)
        if self.unanswered:
            log.warning(
                "the Socket.IO channel closed with messages Redis had not answered",
                extra={"unanswered": self.unanswered},
            )
        for task in (self._connecting, self._replies):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        connection, self._connection, self._writer = self._connection, None, None
        if connection is not None:
            await _disconnect(connection)
        await asyncio.gather(*self._disconnecting, return_exceptions=True)


async def _disconnect(connection: Connection) -> None:
    """Close a connection the publisher is done with; a broken one closes too."""
    with contextlib.suppress(Exception):
        await connection.disconnect(nowait=True)
