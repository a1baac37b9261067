"""This node's heartbeat and the reaper of dead nodes, as one owned task.

It covers the connections of every Socket.IO server of the node (JSON and
msgpack); the presence events of what it clears or registers again are published
by the storage scripts on the channel both servers share.

A Redis outage does not end the loop. It warns once and keeps beating; the first
beat that gets through makes Redis match the node again (`_resync`): an outage
loses what the node could not write meanwhile (closed connections, joins) and
may lose the last second of writes before it (Redis's AOF syncs every second),
and the node's own key may have expired. A presence write that failed between
beats asks for the same. Reaping waits a beat longer: the other nodes' keys may
have expired during the outage too.
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
from storage import outages

log = logging.getLogger(__name__)


def _stopping() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


async def _resync(settings: Settings, namespaces: HubNamespaces) -> None:
    """Put back this node's live connections and joins, and take off what it no
    longer holds."""
    for each in namespaces:
        await presence.register_again(each)
    gone = await presence.forget_closed(namespaces, settings.node_id)
    log.warning(
        "this node's presence is in Redis again",
        extra={"connections": len(namespaces.local_sids()), "closed_meanwhile": gone},
    )


async def _beat_and_reap(settings: Settings, namespaces: HubNamespaces) -> None:
    ns = namespaces.primary
    store = ns.deps.presence
    next_reap = 0.0
    failing = False  # since a beat or a reap failed for an outage
    while True:
        try:
            local_sids = namespaces.local_sids()
            alive = await store.heartbeat(settings.node_id, settings.node_ttl, sorted(local_sids))
            if not alive and local_sids:
                log.warning("this node's heartbeat had lapsed; registering its connections again")
            if failing or store.unsynced or (not alive and local_sids):
                # cleared first: a write failing while this runs asks again
                store.unsynced = False
                try:
                    await _resync(settings, namespaces)
                except BaseException:
                    store.unsynced = True
                    raise
            if failing:
                failing = False
                # The other nodes could not beat either, and their keys may have expired
                # meanwhile: reaping them before they have had a beat of their own would
                # announce every person on them gone, and back a moment later.
                next_reap = max(next_reap, time.monotonic() + settings.heartbeat_interval + 1)
                log.warning("heartbeat and reaping work again")
            if time.monotonic() >= next_reap:
                next_reap = time.monotonic() + settings.reap_interval
                await presence.reap_dead_nodes(ns)
        except Exception as exc:
            if _stopping():
                pass
            elif outages.is_outage(exc):
                if not failing:
                    log.warning(
                        "heartbeat or reaping failed: a dependency is unreachable; beating "
                        "on, and this node's presence is put right once it works again",
                        extra={"error": outages.describe(exc)},
                    )
                failing = True
            else:
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
