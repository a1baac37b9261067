"""Access that ends while connected. A login that ends (a logout, a reused refresh
token, a deactivated account or a revoked API token) closes the connections it
let in; a board membership that ends takes the member's connections out of the
board's rooms. Both on every node, within one sweep interval.

Each node checks its own connections, all in one query each, every REVALIDATE
seconds (hub/expiry_sweep.py), rather than only being told by whoever ended the
access: a logout on another node, a deactivation or a membership an operator
removed in SQL, and a notice lost while Redis was down all come out the same
way, for the price of two queries per node every few seconds. (A member removed
through the API is also evicted at once, through Redis: presence.evict_from_board.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

from handlers import accounts, bot_auth, presence
from protocol.errors import HubError
from storage import boards, outages, users

if TYPE_CHECKING:
    from handlers.socket_hub import HubNamespace

log = logging.getLogger(__name__)


_ENDED: dict[str, Callable[[], HubError]] = {
    "account_inactive": accounts.account_inactive,
    "session_revoked": accounts.session_revoked,
    "token_revoked": bot_auth.token_revoked,
}


@contextlib.asynccontextmanager
async def left_to_sweep(what: str, **extra: str) -> AsyncIterator[None]:
    """Around the immediate effect, carried by Redis, of access that ended and was
    committed: while Redis is down it is left to the sweeps of this module, which
    do the same on every node within REVALIDATE seconds, so the request that ended
    the access still succeeds instead of answering `unavailable` for a change made."""
    try:
        yield
    except Exception as exc:
        if not outages.is_outage(exc):
            raise
        log.warning(
            "%s waits for the next sweep: a dependency is down",
            what,
            extra={**extra, "error": outages.describe(exc)},
        )


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


async def evict_removed(ns: HubNamespace) -> int:
    """Take this namespace's connections out of the boards their user is no longer a
    member of; returns how many (connection, board) pairs were evicted."""
    joined = [
        (sid, login.user_id, board_id)
        for board_id, sids in ns.joined_boards().items()
        for sid in sids
        if (login := ns.logins.get(sid)) is not None
    ]
    if not joined:
        return 0
    async with ns.deps.pool.acquire() as conn:
        gone = await boards.not_members(conn, ((board, user) for _, user, board in joined))
    evicted = 0
    for board_id, user_id in sorted(gone):
        sids = [sid for sid, user, board in joined if (board, user) == (board_id, user_id)]
        await presence.evict(ns, user_id, board_id, sids)
        evicted += len(sids)
        log.info(
            "membership ended: connections taken out of the board",
            extra={"board_id": str(board_id), "user_id": str(user_id), "connections": len(sids)},
        )
    return evicted
