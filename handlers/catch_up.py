"""After this node lost the Socket.IO Redis channel: let its clients catch up.

While the channel was gone (Redis down or unreachable), whatever other nodes
emitted never reached this node, and Redis keeps nothing for a subscriber that
was away. Those events are stored, each with its board's seq, and a client that
sees a seq it lacks fetches the missing ones (`board:join` with `since_seq`).
A client only notices at the board's next event, though, and a board that fell
quiet during the outage would have none.

So, once subscribed again, the node sends each board room that has clients here
the board's newest event, to this node's clients only: one that is up to date
drops the seq it has, one that missed something sees the gap and catches up.
Clients drop repeated seqs anyway (an event racing a join arrives twice).
The newest seq is read after the channel is subscribed again: an event
committed later reaches this node through the channel.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from protocol.events import room_board, server_event_for
from protocol.models import to_wire
from storage import task_events

if TYPE_CHECKING:
    from handlers.socket_hub import HubNamespace

log = logging.getLogger(__name__)


async def after_lost_channel(ns: HubNamespace) -> int:
    """Send each joined board's newest event to this node's clients of the board;
    returns how many boards."""
    boards = {board for board, sids in ns.joined_boards().items() if sids}
    if not boards:
        return 0
    async with ns.deps.pool.acquire() as conn:
        newest = await task_events.newest(conn, sorted(boards))
    for event in newest:
        name = server_event_for(event.type)
        ns.deps.metrics.event_out(name)
        # this node's clients only: every other node sends its own
        await ns.emit(name, to_wire(event), room=room_board(event.board_id), ignore_queue=True)
    log.info(
        "sent joined boards their newest event after the channel gap", extra={"boards": len(newest)}
    )
    return len(newest)
