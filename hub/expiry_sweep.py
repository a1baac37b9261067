"""The one task per node that closes connections whose token expired
(handlers/expiry.py) or whose login ended, and takes connections out of boards
their user was removed from (handlers/revocation.py).

It only runs those sweeps over every Socket.IO server of the node, owned by the
app's cleanup context like the heartbeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time

from handlers import expiry, revocation
from handlers.socket_hub import HubNamespaces
from hub import maintenance
from storage import outages

log = logging.getLogger(__name__)

# How late after its token's `exp` a connection may close; also how often an idle
# node wakes for it. See handlers.expiry.Expiries for why a sweep and not timers.
SWEEP_INTERVAL = 1.0
# How often the node's connections are checked against their logins and board
# memberships (two queries per Socket.IO server): a logout, a deactivation or a
# removed membership takes effect within this, even when its notice was lost.
REVALIDATE_EVERY = 3  # sweeps
# Seconds between two warnings while a dependency stays down.
OUTAGE_WARN_EVERY = 60.0


async def _sweep(namespaces: HubNamespaces) -> None:
    quiet_until = 0.0  # no outage warning again before this (time.monotonic())
    for count in itertools.count(1):
        await asyncio.sleep(SWEEP_INTERVAL)
        now = time.time()  # a token's `exp` is wall-clock time
        for ns in namespaces:
            try:
                await expiry.close_expired(ns, now)
                if count % REVALIDATE_EVERY == 0:
                    await revocation.close_ended(ns)
                    await revocation.evict_removed(ns)
            except Exception as exc:
                if not outages.is_outage(exc):
                    log.exception("closing expired or ended connections failed; retrying")
                elif time.monotonic() >= quiet_until:
                    # PostgreSQL or Redis is down: not a bug, so no traceback, and said
                    # once a minute rather than at every sweep
                    quiet_until = time.monotonic() + OUTAGE_WARN_EVERY
                    log.warning(
                        "closing expired or ended connections waits for a dependency",
                        extra={"error": outages.describe(exc)},
                    )


def running(namespaces: HubNamespaces) -> contextlib.AbstractAsyncContextManager[None]:
    return maintenance.owned(_sweep(namespaces), "token-expiry-sweep")
