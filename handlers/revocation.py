"""Logins that end while connected: a logout, a reused refresh token (its whole
login is revoked), a deactivated account or a revoked API token close the open
connections they let in, on every node, within one sweep interval.

Each node checks its own connections, all in one query, every REVALIDATE
seconds (hub/expiry_sweep.py), rather than being told by whoever ended the
login: a logout on another node, a deactivation an operator made in SQL, and a
notice lost while Redis was down all come out the same way, for the price of
one query per node every few seconds.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from handlers import accounts, bot_auth
from protocol.errors import HubError
from storage import users

if TYPE_CHECKING:
    from handlers.socket_hub import HubNamespace

log = logging.getLogger(__name__)


_ENDED: dict[str, Callable[[], HubError]] = {
    "account_inactive": accounts.account_inactive,
    "session_revoked": accounts.session_revoked,
    "token_revoked": bot_auth.token_revoked,
}


async def close_ended(ns: HubNamespace) -> int:
    """Close this namespace's connections whose login ended; returns how many."""
    logins = list(ns.logins.values())
    if not logins:
        return 0
    async with ns.deps.pool.acquire() as conn:
        ended = await users.ended_logins(conn, logins)
    for sid in ended:
        ns.logins.pop(sid, None)  # closed once, even if the next sweep comes first
    sids = list(ended)
    results = await asyncio.gather(
        *(ns.close(sid, _ENDED[ended[sid]]()) for sid in sids), return_exceptions=True
    )
    for sid, result in zip(sids, results, strict=True):
        if isinstance(result, Exception):
            log.error(
                "closing a connection whose login ended failed", exc_info=result, extra={"sid": sid}
            )
    return len(sids)
