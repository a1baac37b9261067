"""Board presence: who is on a board right now, and the `presence` events.

A user is on a board while at least one of their connections joined it; the
`joined` / `left` events fire on the first and the last connection only.
"""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING, Any

from protocol.events import ServerEvent, room_board
from protocol.models import PublicUser, to_wire
from storage import users
from storage.presence import Departure

if TYPE_CHECKING:
    from handlers.socket_hub import HubNamespace

log = logging.getLogger(__name__)


async def announce(
    ns: HubNamespace,
    board_id: uuid.UUID,
    user_id: uuid.UUID,
    name: str,
    state: str,
    skip_sid: str | None = None,
) -> None:
    """Tell the board that a person `joined` or `left` it."""
    event: dict[str, Any] = {
        "board_id": str(board_id),
        "user": to_wire(PublicUser(id=user_id, name=name)),
        "state": state,
    }
    await ns.emit_to(ServerEvent.PRESENCE, event, room_board(board_id), skip_sid=skip_sid)


async def users_on_board(ns: HubNamespace, board_id: uuid.UUID) -> list[PublicUser]:
    ids = await ns.deps.presence.users_on_board(board_id)
    if not ids:
        return []
    async with ns.deps.pool.acquire() as conn:
        return await users.public(conn, ids)


async def announce_departures(ns: HubNamespace, departures: list[Departure]) -> None:
    gone = [d for d in departures if d.user_gone]
    if not gone:
        return
    async with ns.deps.pool.acquire() as conn:
        names = {u.id: u.name for u in await users.public(conn, sorted({d.user_id for d in gone}))}
    for d in gone:
        await announce(ns, d.board_id, d.user_id, names.get(d.user_id, ""), "left")


async def connection_closed(ns: HubNamespace, sid: str, node_id: str) -> None:
    departures = await ns.deps.presence.remove_connection(sid, node_id)
    await announce_departures(ns, departures)


async def reap_dead_nodes(ns: HubNamespace) -> int:
    """Clear what nodes whose heartbeat expired left behind; returns connections reaped."""
    presence = ns.deps.presence
    reaped = 0
    for node in await presence.dead_nodes():
        if node == ns.deps.node_id or not await presence.claim_reap(node):
            continue
        sids = await presence.node_connections(node)
        for sid in sids:
            await announce_departures(ns, await presence.remove_connection(sid, node))
        await presence.forget_node(node)
        reaped += len(sids)
        log.warning("reaped a dead node", extra={"node": node, "connections": len(sids)})
    return reaped
