"""Emits to rooms on every node from a process that serves no Socket.IO clients
(a worker): python-socketio's write-only manager, publishing through the
channel's `ChannelPublisher`.

python-socketio's builds the message (its emit's format, binary attachments
included), so the hub's listeners read it as any other; its own Redis manager
would publish on a pooled redis-py client and wait for each reply, and replace
its client after an outage without closing the old one.
"""

from __future__ import annotations

from typing import Any

from socketio.async_pubsub_manager import AsyncPubSubManager

from hub.fanout.channel_publisher import ChannelPublisher, encoded


class ChannelEmitter(AsyncPubSubManager):
    """A write-only manager: `emit` publishes, nothing is listened to."""

    def __init__(self, url: str, channel: str, client_name: str) -> None:
        super().__init__(channel=channel, write_only=True)
        self._publisher = ChannelPublisher(url, channel, client_name)

    async def _publish(self, data: Any) -> None:
        await self._publisher.publish(encoded(data))

    async def close(self) -> None:
        """Give Redis a moment to answer what was published, then close."""
        await self._publisher.close()
