"""The Socket.IO channel's subscription: one connection per process.

python-socketio gives each server a redis-py PubSub, so a node with its two
servers (JSON and msgpack) read and decoded every message twice, through
PubSub's listen machinery; measured on the N=100 fan-out, about 80 µs of hub CPU
per broadcast. Here one connection per process reads the messages with redis-py's
parser and hands each payload to the channel, which decodes it once.

A Redis that stops answering without closing the connection (a partition, a
frozen server) would look like a quiet channel for ever, and nothing would make
the node's clients catch up afterwards: a channel quiet for HEALTH_INTERVAL is
sent a PING, and one that heard nothing, the PONG included, for twice that is
given up, so the listener subscribes again and `regained` runs as after any loss.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from redis.asyncio import Connection

from hub.fanout.redis_connection import (
    CONNECT_TIMEOUT,
    RETRY_FIRST,
    RETRY_MAX,
    open_connection,
    stream_writer,
)
from storage import outages

log = logging.getLogger(__name__)

HEALTH_INTERVAL = 5.0
PING = b"*1\r\n$4\r\nPING\r\n"


class ChannelListener:
    """Subscribed to `channel` for as long as it runs, subscribing again after a loss.

    `deliver` gets each message's payload, in order; the next is read once it
    returned, so a slow delivery leaves the rest in the socket and in Redis's
    output buffer, as with redis-py's PubSub. `regained` is called once the channel
    is subscribed again after it was lost: what other nodes published meanwhile
    never came. It warns once per outage, not per attempt.
    """

    def __init__(
        self,
        url: str,
        channel: str,
        client_name: str,
        deliver: Callable[[bytes], Awaitable[None]],
        regained: Callable[[], None],
        *,
        connect_timeout: float = CONNECT_TIMEOUT,
        health_interval: float = HEALTH_INTERVAL,
    ) -> None:
        self._url = url
        self._connect_timeout = connect_timeout
        self._health_interval = health_interval
        self._heard = 0  # replies read: the watchdog sees whether it moved
        self._channel = channel
        self._client_name = client_name
        self._deliver = deliver
        self._regained = regained
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        # set each time the channel is subscribed (tests and start-up wait for it)
        self.subscribed = asyncio.Event()

    def start(self) -> None:
        if self._task is None and not self._closed:
            self._task = asyncio.create_task(self._run(), name="channel-listener")
            self._task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[None]) -> None:
        self.subscribed.clear()
        if not task.cancelled() and task.exception() is not None:
            log.error("the Socket.IO Redis listener failed", exc_info=task.exception())
        elif not self._closed:
            log.error("the Socket.IO Redis listener stopped: other nodes' emits no longer arrive")

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        wait = RETRY_FIRST
        lost_at: float | None = None
        while True:
            connection: Connection | None = None
            try:
                connection = await open_connection(
                    self._url, self._client_name, timeout=self._connect_timeout
                )
                await connection.send_command("SUBSCRIBE", self._channel, check_health=False)
                async with asyncio.timeout(self._connect_timeout):
                    await connection.read_response()  # the subscription's confirmation
                self.subscribed.set()
                if lost_at is not None:
                    log.warning(
                        "the Socket.IO Redis channel is subscribed again",
                        extra={"lost_for_seconds": round(loop.time() - lost_at, 1)},
                    )
                    lost_at = None
                    self._regained()
                wait = RETRY_FIRST
                watchdog = asyncio.create_task(
                    self._watch(stream_writer(connection).transport), name="channel-watchdog"
                )
                try:
                    await self._read(connection)
                finally:
                    watchdog.cancel()
            except Exception as exc:
                self.subscribed.clear()
                if self._closed:
                    # redis-py turned the listener's cancellation into a ConnectionError
                    raise asyncio.CancelledError from None
                if lost_at is None:
                    lost_at = loop.time()
                    log.warning(
                        "lost the Socket.IO Redis channel: other nodes' emits do not reach "
                        "this node's clients until it is back; subscribing again every %g s",
                        RETRY_MAX,
                        extra={"error": outages.describe(exc)},
                    )
                await asyncio.sleep(wait)
                wait = min(wait * 2, RETRY_MAX)
            finally:
                if connection is not None:
                    with contextlib.suppress(Exception):
                        await connection.disconnect(nowait=True)

    async def _read(self, connection: Connection) -> None:
        deliver = self._deliver
        while True:
            reply = await connection.read_response()
            self._heard += 1
            # a message is [b"message", channel, payload]; nothing else comes here
            if type(reply) is list and len(reply) == 3 and reply[0] == b"message":
                await deliver(reply[2])

    async def _watch(self, transport: asyncio.WriteTransport) -> None:
        """PING a quiet channel; cut a connection that heard nothing for twice
        HEALTH_INTERVAL (the read then fails, as when Redis closes it). Quiet is
        judged by the count of replies, not by times: uvloop's clock counts whole
        milliseconds, and a PONG within the millisecond of its PING would look
        like no answer."""
        clock = asyncio.get_running_loop().time
        seen, quiet_since, pinged = self._heard, clock(), False
        while True:
            await asyncio.sleep(self._health_interval / 2)
            if transport.is_closing():
                return  # the read fails, or already did
            if self._heard != seen:
                seen, quiet_since, pinged = self._heard, clock(), False
                continue
            quiet = clock() - quiet_since
            if quiet >= 2 * self._health_interval:
                log.warning(
                    "the Socket.IO Redis channel heard nothing, not even a PONG, for %.0f s",
                    quiet,
                )
                transport.abort()
                return
            if quiet >= self._health_interval and not pinged:
                pinged = True
                transport.write(PING)

    async def close(self, *, within: float = 5.0) -> None:
        """Cancel the listener until it ends: redis-py can turn a cancellation that
        lands mid-read into a ConnectionError, which the loop takes for an outage
        unless it is closed; the next cancel lands in its wait before the retry."""
        self._closed = True
        self.subscribed.clear()
        listener, self._task = self._task, None
        if listener is None:
            return
        deadline = asyncio.get_running_loop().time() + within
        while not listener.done():
            if asyncio.get_running_loop().time() > deadline:
                log.warning("the Socket.IO Redis listener did not stop; leaving it")
                return
            listener.cancel()
            await asyncio.wait({listener}, timeout=0.1)
