"""This node's heartbeat and the reaper of dead nodes, as one owned task.

It covers the connections of every Socket.IO server of the node (JSON and
msgpack); the presence events of what it clears or registers again are published
by the storage scripts on the channel both servers share.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

from handlers import presence
from handlers.socket_hub import HubNamespaces
from hub.config import Settings

log = logging.getLogger(__name__)


def _stopping() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


async def _beat_and_reap(settings: Settings, namespaces: HubNamespaces) -> None:
    ns = namespaces.primary
    next_reap = 0.0
    while True:
        try:
            local_sids = namespaces.local_sids()
            alive = await ns.deps.presence.heartbeat(
                settings.node_id, settings.node_ttl, sorted(local_sids)
            )
            if not alive and local_sids:
                log.warning("this node's heartbeat had lapsed; registering its connections again")
                for each in namespaces:
                    await presence.register_again(each)
            if time.monotonic() >= next_reap:
                next_reap = time.monotonic() + settings.reap_interval
                await presence.reap_dead_nodes(ns)
        except Exception:
            if not _stopping():
                log.exception("heartbeat or reaping failed; retrying")
        if _stopping():
            # redis-py may turn a cancellation that lands mid-write into a
            # ConnectionError; looping on would make stopping the app hang forever.
            raise asyncio.CancelledError
        await asyncio.sleep(min(settings.heartbeat_interval, settings.reap_interval))


@contextlib.asynccontextmanager
async def running(
    settings: Settings, namespaces: HubNamespaces
) -> AsyncIterator[asyncio.Task[None]]:
    """Run the loop while the app lives; on a clean stop, leave nothing behind."""
    ns = namespaces.primary
    # A previous process with this NODE_ID may have died with connections on record.
    await presence.reap_node(ns, settings.node_id)
    task = asyncio.create_task(_beat_and_reap(settings, namespaces), name="presence-heartbeat")
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        for each in namespaces:
            for sid in sorted(each.local_sids):
                with contextlib.suppress(Exception):
                    await presence.connection_closed(each, sid, settings.node_id)
        with contextlib.suppress(Exception):
            await ns.deps.presence.forget_node(settings.node_id)
