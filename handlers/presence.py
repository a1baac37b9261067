"""Board presence: who is on a board right now, and the `presence` events.

A user is on a board while at least one of their connections joined it; the
`joined` / `left` events fire on the first and the last connection only. The
Redis scripts of storage/presence.py publish them with the change itself, so
they reach every node in the order the changes happened; this module only
supplies the names.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import TYPE_CHECKING

from protocol.errors import Unauthorized
from protocol.events import ServerEvent, room_board, room_channel
from protocol.models import PublicUser
from storage import channels, users
from storage.presence import ConnectionGone, Departure

if TYPE_CHECKING:
    from handlers.socket_hub import HubNamespace

log = logging.getLogger(__name__)

# Connections cleared concurrently when reaping a node.
REAP_BATCH = 100


def announced(ns: HubNamespace, count: int = 1) -> None:
    """Count presence events the storage scripts published."""
    for _ in range(count):
        ns.deps.metrics.event_out(ServerEvent.PRESENCE)


async def users_on_board(ns: HubNamespace, board_id: uuid.UUID) -> list[PublicUser]:
    """Read from Redis alone: the names are kept with the presence (storage/presence.py)."""
    return await ns.deps.presence.users_on_board(board_id)


async def _names(ns: HubNamespace, user_ids: set[uuid.UUID]) -> dict[uuid.UUID, str]:
    if not user_ids:
        return {}
    async with ns.deps.pool.acquire() as conn:
        return {u.id: u.name for u in await users.public(conn, sorted(user_ids))}


def _departed(ns: HubNamespace, departures: list[Departure]) -> None:
    announced(ns, sum(1 for d in departures if d.user_gone))


async def connection_closed(ns: HubNamespace, sid: str, node_id: str) -> None:
    try:
        name = (await ns.caller(sid)).name
    except Exception:  # no session left: the events go out without the name
        name = ""
    _departed(ns, await ns.deps.presence.remove_connection(sid, node_id, name=name))


async def reap_node(ns: HubNamespace, node: str) -> int:
    """Clear every connection `node` left in Redis; returns how many."""
    on_record = await ns.deps.presence.node_connections(node)
    sids = list(on_record)
    for start in range(0, len(sids), REAP_BATCH):
        batch = sids[start : start + REAP_BATCH]
        # names first: the removal itself announces the departures
        names = await _names(ns, {on_record[sid] for sid in batch})
        removed = await asyncio.gather(
            *(
                ns.deps.presence.remove_connection(sid, node, name=names.get(on_record[sid], ""))
                for sid in batch
            )
        )
        _departed(ns, [d for departures in removed for d in departures])
    await ns.deps.presence.forget_node(node)
    return len(sids)


async def reap_dead_nodes(ns: HubNamespace) -> int:
    """Clear what nodes whose heartbeat expired left behind; returns connections reaped."""
    presence = ns.deps.presence
    reaped = 0
    for node in await presence.dead_nodes():
        if node == ns.deps.node_id or not await presence.claim_reap(node):
            continue
        count = await reap_node(ns, node)
        reaped += count
        log.warning("reaped a dead node", extra={"node": node, "connections": count})
    return reaped


async def register_again(ns: HubNamespace) -> None:
    """After this node was presumed dead (a stall longer than NODE_TTL), put its live
    connections and their board joins back, announcing those that were reported gone.

    A connection can close while this runs. on_disconnect drops its sid from
    `local_sids` before it removes the record, so a sid still local once its
    record is back will be removed by that on_disconnect, after the add; a sid no
    longer local may have been removed before the add, and is removed again here
    rather than left behind as a ghost on the board.
    """
    for sid in sorted(ns.local_sids):
        if sid not in ns.local_sids:
            continue
        try:
            caller = await ns.caller(sid)
        except (Unauthorized, KeyError):  # its session went with the connection
            continue
        await ns.deps.presence.add_connection(
            sid, caller.user_id, ns.deps.node_id, token_id=caller.token_id
        )
        if sid not in ns.local_sids:
            _departed(
                ns, await ns.deps.presence.remove_connection(sid, ns.deps.node_id, name=caller.name)
            )
            continue
        for room in ns.rooms(sid):
            if not room.startswith("board:"):
                continue
            board_id = uuid.UUID(room.removeprefix("board:"))
            try:
                joined = await ns.deps.presence.join_board(
                    sid, caller.user_id, board_id, name=caller.name
                )
                if joined.first:
                    announced(ns)
            except ConnectionGone:
                break  # closed while we were re-registering


async def evict_from_board(ns: HubNamespace, user_id: uuid.UUID, board_id: uuid.UUID) -> None:
    """A removed member stops hearing the board, and its chat channels, at once, on
    every node."""
    room = room_board(board_id)
    async with ns.deps.pool.acquire() as conn:
        chat_rooms = [room_channel(c) for c in await channels.ids_on_board(conn, board_id)]
        (user,) = await users.public(conn, [user_id]) or [PublicUser(id=user_id, name="")]
    for sid in await ns.deps.presence.connections_of(user_id):
        await ns.leave_room(sid, room)
        for chat_room in chat_rooms:
            await ns.leave_room(sid, chat_room)
        if await ns.deps.presence.leave_board(sid, user_id, board_id, name=user.name):
            announced(ns)
