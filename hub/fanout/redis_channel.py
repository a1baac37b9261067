"""The Socket.IO channel on Redis, one per process, shared by the process's servers.

A hub node serves Socket.IO twice (JSON and msgpack, hub/app.py), and a room holds
clients of both. python-socketio's AsyncRedisManager would give each server its
own publisher and subscription: every emit went out through Redis and came back
to the sibling server, and both read and decoded every message. Here the servers'
managers are members of one channel: an emit is handed to the sibling in the
process, and published once for the other nodes; one subscription reads what
they publish, decodes it once and hands it to every member.

The messages are python-socketio's (JSON, with the publishing manager's
host_id), so the workers' emitter (channel_emitter.py), the presence scripts
(storage/presence.py) and any process emitting through python-socketio's own
Redis manager reach the members as before. Anything else published on the
channel, a pickle included, is ignored unread, as python-socketio 5.14 and later
do.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Protocol

from hub.fanout.channel_listener import HEALTH_INTERVAL, ChannelListener
from hub.fanout.channel_publisher import MAX_UNANSWERED_BYTES, ChannelPublisher, encoded
from hub.fanout.redis_connection import CONNECT_TIMEOUT

log = logging.getLogger(__name__)


class ChannelMember(Protocol):
    """What the channel needs of a server's manager (`HubRedisManager`)."""

    host_id: str

    async def receive(self, message: dict[str, Any]) -> None:
        """Apply a message another manager published (python-socketio's format)."""

    def channel_regained(self) -> None:
        """The channel is subscribed again after a loss: messages may have been missed."""

    async def close(self) -> None:
        """Stop: the channel no longer hands it anything, nor publishes for it."""


class SocketIOChannel:
    """The process's publisher and subscription on the Socket.IO channel `name`."""

    def __init__(
        self,
        url: str,
        name: str,
        *,
        publisher_name: str,
        listener_name: str,
        max_unanswered_bytes: int = MAX_UNANSWERED_BYTES,
        connect_timeout: float = CONNECT_TIMEOUT,
        health_interval: float = HEALTH_INTERVAL,
    ) -> None:
        self.name = name
        self._members: list[ChannelMember] = []
        self._local_hosts: set[str] = set()
        # the names the two connections give themselves (CLIENT SETNAME)
        self._publisher = ChannelPublisher(
            url,
            name,
            publisher_name,
            max_unanswered_bytes=max_unanswered_bytes,
            connect_timeout=connect_timeout,
        )
        self._listener = ChannelListener(
            url,
            name,
            listener_name,
            self._deliver,
            self._regained,
            connect_timeout=connect_timeout,
            health_interval=health_interval,
        )

    def join(self, member: ChannelMember) -> None:
        self._members.append(member)
        self._local_hosts.add(member.host_id)

    def listen(self) -> None:
        """Subscribe, once for the process (each member's manager asks when it starts)."""
        self._listener.start()

    @property
    def subscribed(self) -> bool:
        return self._listener.subscribed.is_set()

    async def wait_subscribed(self) -> None:
        await self._listener.subscribed.wait()

    async def send(self, origin: ChannelMember, message: dict[str, Any]) -> None:
        """`message` from `origin` to every other member here, then to the other nodes.

        The members here get it as the other nodes do, decoded from the JSON
        published (a tuple is a list, a dict's keys are strings), so a client of
        the sibling server gets what one on another node gets. A callback for a
        member here (one server's client acked an emit of the other) is not
        published: it would come back and be handed over twice."""
        payload = encoded(message)
        if len(self._members) > 1:
            here = json.loads(payload)
            for member in self._members:
                if member is not origin:
                    await self._hand(member, here)
        if message["method"] == "callback" and message.get("host_id") in self._local_hosts:
            return
        await self._publisher.publish(payload)

    async def _deliver(self, payload: bytes) -> None:
        try:
            message = json.loads(payload)
        except (ValueError, RecursionError):
            return  # not python-socketio's JSON: a pickle, say
        if not isinstance(message, dict):
            return
        method, host = message.get("method"), message.get("host_id")
        # python-socketio's listener takes a message without a host_id as another's
        if not isinstance(method, str) or not isinstance(host, str | None):
            return
        # a member's own message was handed over in the process before it was
        # published; a callback names the member it returns to, not its sender
        if method != "callback" and host in self._local_hosts:
            return
        for member in self._members:
            await self._hand(member, message)

    async def _hand(self, member: ChannelMember, message: dict[str, Any]) -> None:
        try:
            await member.receive(message)
        except Exception:
            log.exception(
                "applying a Socket.IO channel message failed", extra={"method": message["method"]}
            )

    def _regained(self) -> None:
        for member in self._members:
            member.channel_regained()

    async def close(self) -> None:
        """Stop listening, then the members (their catch-ups), then give Redis a
        moment to answer what was published."""
        try:
            await self._listener.close()
            for member in self._members:
                await member.close()
        finally:
            await self._publisher.close()
