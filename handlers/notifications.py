"""`notifications:list` and `notifications:read`: a user's own notifications.

Every query is scoped to the caller, so no board check is needed: a user can
only ever see or change their own rows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from protocol.events import ServerEvent, room_user
from protocol.models import to_wire
from protocol.payloads import NotificationsList, NotificationsRead
from storage import notifications
from storage.db import transaction

if TYPE_CHECKING:
    from handlers.socket_hub import Caller, HubNamespace


async def notifications_list(
    ns: HubNamespace, caller: Caller, payload: NotificationsList
) -> dict[str, Any]:
    """One page and the unread count, read in one snapshot so they agree."""
    async with transaction(ns.deps.pool, isolation="repeatable_read", readonly=True) as conn:
        items, following = await notifications.page_for_user(
            conn, caller.user_id, before=payload.before, limit=payload.limit
        )
        unread = await notifications.unread_count(conn, caller.user_id)
    return {"notifications": to_wire(items), "next": following, "unread": unread}


async def notifications_read(
    ns: HubNamespace, caller: Caller, payload: NotificationsRead
) -> dict[str, Any]:
    """Mark read, then tell every connection of the user (other tabs, bots) the new count.

    The caller's own connection gets the push too, so a client can keep its
    badge from `notifications:unread` alone.
    """
    async with transaction(ns.deps.pool) as conn:
        await notifications.mark_read(conn, caller.user_id, None if payload.all else payload.ids)
        unread = await notifications.unread_count(conn, caller.user_id)
    await ns.emit_to(
        ServerEvent.NOTIFICATIONS_UNREAD, {"unread": unread}, room_user(caller.user_id)
    )
    return {"unread": unread}
