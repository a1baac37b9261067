"""Tokens that expire while connected: the connection is closed with `token_expired`
at its token's `exp`, unless `auth:refresh` handed it a newer token first.

A token is checked at connect only; without this, a connection outlives its token
by as long as it stays up. Bot tokens expire too (in days), so their connections
are tracked the same way.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from handlers import accounts
from protocol.errors import Forbidden, Unauthorized
from protocol.payloads import AuthRefresh
from storage.users import LiveLogin

if TYPE_CHECKING:
    from handlers.socket_hub import Caller, HubNamespace

log = logging.getLogger(__name__)


class Expiries:
    """When each local connection of one namespace must close, in epoch seconds.

    The hub's sweep (hub/expiry_sweep.py) asks `due` once a second, for every
    namespace of the node, instead of a `loop.call_later` timer per connection:
    a timer's callback cannot await the emit and disconnect of a close, so each
    expiry would start a task nobody owns, while one sweep is one task that the
    app's cleanup context starts and stops. A heap makes a sweep cost only what
    is due; the price is closing up to a second after `exp`.

    A refresh or a close leaves the old heap entry behind (a heap cannot remove
    from its middle); `due` skips entries that no longer match, and the heap is
    rebuilt when such stale entries outnumber the live ones, so a bot token of
    90 days leaves nothing behind for 90 days after its connection closed.
    """

    def __init__(self) -> None:
        self._deadlines: dict[str, float] = {}
        self._heap: list[tuple[float, str]] = []

    def __len__(self) -> int:
        return len(self._deadlines)

    def track(self, sid: str, expires_at: float) -> None:
        self._deadlines[sid] = expires_at
        heapq.heappush(self._heap, (expires_at, sid))

    def extend(self, sid: str, expires_at: float) -> bool:
        """Move a tracked connection's deadline (a refresh); False if it is gone."""
        if sid not in self._deadlines:
            return False  # closed meanwhile: tracking it again would leak it
        self.track(sid, expires_at)
        self._compact()
        return True

    def forget(self, sid: str) -> None:
        self._deadlines.pop(sid, None)
        self._compact()

    def due(self, now: float) -> list[str]:
        """Take the connections whose deadline has passed; they are forgotten."""
        taken: list[str] = []
        while self._heap and self._heap[0][0] <= now:
            expires_at, sid = heapq.heappop(self._heap)
            if self._deadlines.get(sid) == expires_at:
                del self._deadlines[sid]
                taken.append(sid)
        return taken

    def _compact(self) -> None:
        if len(self._heap) > 2 * len(self._deadlines) + 64:
            self._heap = [(at, sid) for sid, at in self._deadlines.items()]
            heapq.heapify(self._heap)


def token_expired() -> Unauthorized:
    return Unauthorized(
        "the token expired; send auth:refresh with a new one before it does, or reconnect",
        {"reason": "token_expired"},
    )


async def close_expired(ns: HubNamespace, now: float) -> int:
    """Close this namespace's connections whose token expired; returns how many.

    All at once: a thousand tokens issued in the same second must not close one
    round trip after another.
    """
    due = ns.expiries.due(now)
    results = await asyncio.gather(
        *(ns.close(sid, token_expired()) for sid in due), return_exceptions=True
    )
    for sid, result in zip(due, results, strict=True):
        if isinstance(result, Exception):
            log.error("closing an expired connection failed", exc_info=result, extra={"sid": sid})
    return len(due)


async def auth_refresh(ns: HubNamespace, caller: Caller, payload: AuthRefresh) -> dict[str, Any]:
    """Give the connection the new token's expiry, checked as at connect.

    Another user's token is `forbidden` rather than `unauthorized`: the token is
    good, but a connection is its user's for its whole life (its rooms, presence
    and the events it already received are theirs), so it cannot change hands.
    A bot token's connection is refused too: its scopes and revocation are tied
    to the token it connected with.
    """
    if caller.token_id is not None:
        raise Forbidden("a bot token's connection cannot be refreshed; connect with the new token")
    user, claims = await accounts.authenticate(ns.deps, payload.access_token)
    if user.id != caller.user_id:
        raise Forbidden("this access token is another user's")
    if not ns.expiries.extend(caller.sid, claims.expires_at):
        raise Unauthorized("not connected")
    # a token of another login of the same user (a second tab's): the connection
    # now ends with that login (handlers/revocation.py)
    ns.logins[caller.sid] = LiveLogin(caller.sid, user.id, claims.session_id, None)
    return {
        "user_id": str(user.id),
        "expires_at": datetime.fromtimestamp(claims.expires_at, UTC).isoformat(),
    }
