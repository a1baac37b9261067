"""The one task per node that closes connections whose token expired.

The expiry itself (who, when, and `auth:refresh`) is handlers/expiry.py; this
only runs its sweep over every Socket.IO server of the node, owned by the app's
cleanup context like the heartbeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from handlers import expiry
from handlers.socket_hub import HubNamespaces
from hub import maintenance

log = logging.getLogger(__name__)

# How late after its token's `exp` a connection may close; also how often an idle
# node wakes for it. See handlers.expiry.Expiries for why a sweep and not timers.
SWEEP_INTERVAL = 1.0


async def _sweep(namespaces: HubNamespaces) -> None:
    while True:
        await asyncio.sleep(SWEEP_INTERVAL)
        now = time.time()  # a token's `exp` is wall-clock time
        for ns in namespaces:
            try:
                await expiry.close_expired(ns, now)
            except Exception:
                log.exception("closing expired connections failed; retrying")


def running(namespaces: HubNamespaces) -> contextlib.AbstractAsyncContextManager[None]:
    return maintenance.owned(_sweep(namespaces), "token-expiry-sweep")
