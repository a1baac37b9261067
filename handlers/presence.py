"""Board presence: who is on a board right now, and the `presence` events.

A user is on a board while at least one of their connections joined it; the
`joined` / `left` events fire on the first and the last connection only. The
Redis scripts of storage/presence.py publish them with the change itself, so
they reach every node in the order the changes happened; this module only
supplies the names.

While Redis is down, presence is best effort: a connection that closes is not
taken off its boards (its close goes on, and nothing is logged as a bug), and a
connect or a join is answered `unavailable`. The heartbeat then makes Redis
match the node again as soon as Redis is back (`register_again`, `forget_closed`),
so no one is shown who left, and no one who stayed is missing.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING

from protocol.errors import Unauthorized
from protocol.events import ServerEvent, board_of_room, room_board, room_channel
from protocol.models import PublicUser
from storage import channels, outages, users
from storage.presence import ConnectionGone, Departure

if TYPE_CHECKING:
    from collections.abc import Iterable

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
    """Take a closed connection off its boards; with Redis down, leave it to the
    heartbeat's `forget_closed` (the presence is marked unsynced)."""
    try:
        name = (await ns.caller(sid)).name
    except Exception:  # no session left: the events go out without the name
        name = ""
    try:
        departures = await ns.deps.presence.remove_connection(sid, node_id, name=name)
    except Exception as exc:
        if not outages.is_outage(exc):
            raise
        log.info(
            "a closed connection stays on record until Redis is back",
            extra={"sid": sid, "error": outages.describe(exc)},
        )
        return
    _departed(ns, departures)


async def _remove_all(ns: HubNamespace, node: str, on_record: dict[str, uuid.UUID]) -> None:
    """Remove these connections of `node` (sid -> user_id), announcing who left."""
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


async def reap_node(ns: HubNamespace, node: str) -> int:
    """Clear every connection `node` left in Redis; returns how many."""
    on_record = await ns.deps.presence.node_connections(node)
    await _remove_all(ns, node, on_record)
    await ns.deps.presence.forget_node(node)
    return len(on_record)


def _holds(ns: HubNamespace, sid: str) -> bool:
    """Whether this namespace's server still knows the sid: connecting (its record is
    written before it counts as connected), connected, or in its disconnect handler
    (which removes the record itself)."""
    return ns.server.manager.eio_sid_from_sid(sid, ns.namespace) is not None


async def forget_closed(namespaces: Iterable[HubNamespace], node: str) -> int:
    """Remove the connections Redis lists for this node that the node no longer holds
    (they closed while Redis was down, or Redis lost their removal); returns how many.

    Redis is read before the servers are asked: a connection is recorded only after
    its server knows it, so one that connects meanwhile is never taken for closed.
    """
    found = list(namespaces)
    on_record = await found[0].deps.presence.node_connections(node)
    gone = {
        sid: user for sid, user in on_record.items() if not any(_holds(ns, sid) for ns in found)
    }
    if gone:
        await _remove_all(found[0], node, gone)
    return len(gone)


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
    """After this node was presumed dead (a stall longer than NODE_TTL), or Redis was
    down (and may have lost writes, or missed them), put its live connections and
    their board joins back, announcing those that were reported gone, and take each
    off the boards it has left meanwhile.

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
        try:
            for board_id in sorted(joined_boards(ns, sid)):
                joined = await ns.deps.presence.join_board(
                    sid, caller.user_id, board_id, name=caller.name
                )
                if joined.first:
                    announced(ns)
        except ConnectionGone:
            continue  # closed while we were re-registering
        # boards left while a leave could not be recorded. Redis first, the rooms
        # after: a join enters its room before it is recorded, so a join racing this
        # is never undone; a leave racing this finds nothing left to remove.
        recorded = await ns.deps.presence.boards_of(sid)
        for board_id in sorted(recorded - joined_boards(ns, sid)):
            if await ns.deps.presence.leave_board(sid, caller.user_id, board_id, name=caller.name):
                announced(ns)


def joined_boards(ns: HubNamespace, sid: str) -> set[uuid.UUID]:
    """The boards whose rooms the connection is in: the ones it has joined."""
    return {board for board in map(board_of_room, ns.rooms(sid)) if board is not None}


async def evict_from_board(ns: HubNamespace, user_id: uuid.UUID, board_id: uuid.UUID) -> None:
    """A removed member stops hearing the board, and its chat channels, at once, on
    every node."""
    await evict(ns, user_id, board_id, await ns.deps.presence.connections_of(user_id))


async def evict(
    ns: HubNamespace, user_id: uuid.UUID, board_id: uuid.UUID, sids: Iterable[str]
) -> None:
    """Take these connections of `user_id` out of the board's room and its chat rooms,
    then out of its presence.

    Every room first: leaving a room of a connection on this node needs no Redis,
    so while Redis is down they still stop hearing the board; the presence record
    left behind is removed by the heartbeat's resync once Redis is back (the
    failed write marks the presence unsynced).
    """
    sids = list(sids)
    room = room_board(board_id)
    async with ns.deps.pool.acquire() as conn:
        chat_rooms = [room_channel(c) for c in await channels.ids_on_board(conn, board_id)]
        (user,) = await users.public(conn, [user_id]) or [PublicUser(id=user_id, name="")]
    for sid in sids:
        await ns.leave_room(sid, room)
        for chat_room in chat_rooms:
            await ns.leave_room(sid, chat_room)
    for sid in sids:
        try:
            left = await ns.deps.presence.leave_board(sid, user_id, board_id, name=user.name)
        except Exception as exc:
            if not outages.is_outage(exc):
                raise
            log.info(
                "an evicted connection stays on the board's presence until Redis is back",
                extra={"sid": sid, "board_id": str(board_id), "error": outages.describe(exc)},
            )
            continue
        if left:
            announced(ns)
