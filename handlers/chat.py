"""Chat events: channels and DMs, messages, history, typing, read markers.

Only members read or write a channel (storage/channels.py says who they are).
A message is stored and put on the outbox in one transaction, then emitted to
the channel's room once (a claim on its event_id, shared with the bridge). A
channel's room is `channel:{id}`, entered with `chat:join` (and with
`board:join` for the board's channel); a DM goes to the `user:{id}` rooms of
its two users, so it reaches every tab without a join.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import asyncpg

from protocol import correlation
from protocol.errors import Forbidden, InvalidPayload, NotFound
from protocol.events import (
    CHAT_SERVER_EVENTS,
    ChatEventType,
    ServerEvent,
    chat_rooms,
    room_channel,
    room_user_chat,
)
from protocol.models import BoardRole, Channel, ChannelKind, ChatMessage, to_wire
from protocol.payloads import (
    CHANNELS_LIMIT,
    TYPING_EVERY_MS,
    ChatChannels,
    ChatCreate,
    ChatDelete,
    ChatEdit,
    ChatHistory,
    ChatJoin,
    ChatLeave,
    ChatRead,
    ChatSend,
    ChatTyping,
)
from storage import boards, channels, chat_messages, users
from storage.db import Connection, transaction

if TYPE_CHECKING:
    from handlers.socket_hub import Caller, HubNamespace, Turn

# `@name`: a member's name without spaces, or the part of their email before the @
_MENTION = re.compile(r"(?<![\w@])@([\w.\-]{1,64})")


def mention_handles(body: str) -> list[str]:
    return list(dict.fromkeys(m.rstrip(".-") for m in _MENTION.findall(body)))


async def require_member(conn: Connection, channel_id: uuid.UUID, user_id: uuid.UUID) -> Channel:
    channel = await channels.get(conn, channel_id)
    if not await channels.is_member(conn, channel_id, user_id):
        raise Forbidden("you are not a member of this channel")
    return channel


async def _emit(
    ns: HubNamespace,
    event_id: uuid.UUID,
    type: ChatEventType,
    message: ChatMessage,
    channel: Channel,
    turn: Turn | None = None,
) -> None:
    await ns.emit_claimed(
        event_id, CHAT_SERVER_EVENTS[type], to_wire(message), chat_rooms(channel), turn
    )


async def chat_channels(ns: HubNamespace, caller: Caller, payload: ChatChannels) -> dict[str, Any]:
    async with ns.deps.pool.acquire() as conn:
        found = await channels.for_user(conn, caller.user_id, CHANNELS_LIMIT)
    return {"channels": to_wire(found)}


async def _check_new_members(
    conn: Connection, creator: uuid.UUID, board_id: uuid.UUID | None, members: list[uuid.UUID]
) -> None:
    """A board's channel takes the board's members; another, people the creator
    shares a board with (nobody is pulled into a stranger's channel)."""
    for user_id in dict.fromkeys(members):
        if user_id == creator:
            continue
        if board_id is not None:
            allowed = await boards.role_of(conn, board_id, user_id) is not None
        else:
            allowed = await boards.share_a_board(conn, creator, user_id)
        if not allowed:
            raise InvalidPayload(
                "every member must share the board with you",
                {"field": "member_ids", "user_id": str(user_id)},
            )


async def chat_create(ns: HubNamespace, caller: Caller, payload: ChatCreate) -> dict[str, Any]:
    async with transaction(ns.deps.pool) as conn:
        if payload.board_id is not None:
            role = await boards.role_of(conn, payload.board_id, caller.user_id)
            if role is None:
                if not await boards.exists(conn, payload.board_id):
                    raise NotFound("board not found")
                raise Forbidden("you are not a member of this board")
        await _check_new_members(conn, caller.user_id, payload.board_id, payload.member_ids)
        channel = await channels.create(
            conn,
            name=payload.name.strip(),
            board_id=payload.board_id,
            creator_id=caller.user_id,
            member_ids=payload.member_ids,
        )
    wire = to_wire(channel)
    await ns.emit_to(
        ServerEvent.CHAT_CHANNEL, wire, [room_user_chat(m.id) for m in channel.members]
    )
    return {"channel": wire}


async def chat_join(ns: HubNamespace, caller: Caller, payload: ChatJoin) -> dict[str, Any]:
    """Enter the room first, then read: a message racing the join arrives twice at
    worst (the client drops seqs it has), never not at all."""
    async with ns.deps.pool.acquire() as conn:
        channel = await require_member(conn, payload.channel_id, caller.user_id)
    if channel.kind == ChannelKind.CHANNEL:
        await ns.enter_room(caller.sid, room_channel(channel.id))
    return await channel_snapshot(ns, caller, channel.id, payload.limit)


async def channel_snapshot(
    ns: HubNamespace, caller: Caller, channel_id: uuid.UUID, limit: int
) -> dict[str, Any]:
    """The channel, its newest messages and the caller's unread count, in one snapshot."""
    async with transaction(ns.deps.pool, isolation="repeatable_read", readonly=True) as conn:
        channel = await require_member(conn, channel_id, caller.user_id)
        messages = await chat_messages.history(conn, channel_id, None, limit)
        marker = await channels.read_marker(conn, channel_id, caller.user_id)
        channel.last_read_seq = marker
        channel.unread = await channels.unread(conn, channel_id, caller.user_id, marker)
    return {"channel": to_wire(channel), "messages": to_wire(messages)}


async def chat_leave(ns: HubNamespace, caller: Caller, payload: ChatLeave) -> dict[str, Any]:
    await ns.leave_room(caller.sid, room_channel(payload.channel_id))
    return {"channel_id": str(payload.channel_id)}


async def _target_channel(conn: Connection, caller: Caller, payload: ChatSend) -> Channel:
    """The channel a send writes to, locked until the transaction ends (its writers'
    order, and what makes "was this message stored already?" still true at insert).

    The caller's membership of a channel is checked once, after the lock, so a
    removal that committed while the send waited is seen. A DM's two members are
    its senders by construction; a first DM is made here and rolls back with a
    refused send (a reused `client_msg_id` leaves no empty DM).
    """
    if payload.channel_id is not None:
        await channels.lock(conn, payload.channel_id)
        return await require_member(conn, payload.channel_id, caller.user_id)
    assert payload.to_user_id is not None  # the payload checked: one of the two
    other = await users.get(conn, payload.to_user_id)
    if other is None or not other.is_active:
        raise NotFound("user not found")
    if not await boards.share_a_board(conn, caller.user_id, other.id):
        raise Forbidden("you can message people you share a board with")
    channel = await channels.find_or_create_dm(conn, caller.user_id, other.id)
    await channels.lock(conn, channel.id)
    return channel


def _reused_client_msg_id() -> InvalidPayload:
    return InvalidPayload("client_msg_id was used for another channel", {"field": "client_msg_id"})


async def chat_send(ns: HubNamespace, caller: Caller, payload: ChatSend) -> dict[str, Any]:
    """Store (once per `client_msg_id`), publish, emit, in one transaction. A resend
    gets the stored message back and emits nothing: the first send did."""
    turn: Turn | None = None
    try:
        async with transaction(ns.deps.pool) as conn:
            channel = await _target_channel(conn, caller, payload)
            if payload.client_msg_id is not None:
                earlier = await chat_messages.by_client_msg_id(
                    conn, caller.user_id, payload.client_msg_id
                )
                if earlier is not None:
                    if earlier.channel_id != channel.id:
                        raise _reused_client_msg_id()
                    return {"message": to_wire(earlier), "duplicate": True}
            mentioned = await channels.matching_members(
                conn, channel.id, mention_handles(payload.body)
            )
            seq = await channels.next_seq(conn, channel.id)
            try:
                message = await chat_messages.insert(
                    conn,
                    channel_id=channel.id,
                    seq=seq,
                    sender_id=caller.user_id,
                    body=payload.body,
                    client_msg_id=payload.client_msg_id,
                    mentions=[u for u in mentioned if u != caller.user_id],
                    correlation_id=correlation.current(),
                )
            except asyncpg.UniqueViolationError:
                # the same client_msg_id, sent to another channel at the same moment
                raise _reused_client_msg_id() from None
            event_id = await chat_messages.publish(
                conn, ChatEventType.MESSAGE, message, correlation.current()
            )
            # before commit: this node emits the channel's messages in seq order
            turn = ns.emit_turn(channel.id)
        if payload.to_user_id is not None and message.seq == 1:
            # a DM exists only from its first message on: both learn of it first
            await ns.emit_to(
                ServerEvent.CHAT_CHANNEL,
                to_wire(channel),
                [room_user_chat(m.id) for m in channel.members],
            )
        await _emit(ns, event_id, ChatEventType.MESSAGE, message, channel, turn)
    finally:
        if turn is not None:
            turn.release()
    return {"message": to_wire(message), "duplicate": False}


# Checks who may change a live message (raising Forbidden), then changes it in the
# transaction; None when it is gone meanwhile.
Change = Callable[[Connection, ChatMessage, Channel], Awaitable[ChatMessage | None]]


async def _change_message(
    ns: HubNamespace, caller: Caller, message_id: uuid.UUID, type: ChatEventType, change: Change
) -> dict[str, Any]:
    """Change a live message of a channel the caller is in; publish and emit the change."""
    async with transaction(ns.deps.pool) as conn:
        message = await chat_messages.get(conn, message_id)
        if message is None or message.deleted_at is not None:
            raise NotFound("message not found")
        channel = await require_member(conn, message.channel_id, caller.user_id)
        changed = await change(conn, message, channel)
        if changed is None:
            raise NotFound("message not found")
        event_id = await chat_messages.publish(conn, type, changed, correlation.current())
    await _emit(ns, event_id, type, changed, channel)
    return {"message": to_wire(changed)}


async def chat_edit(ns: HubNamespace, caller: Caller, payload: ChatEdit) -> dict[str, Any]:
    async def edit(conn: Connection, message: ChatMessage, _: Channel) -> ChatMessage | None:
        if message.sender_id != caller.user_id:
            raise Forbidden("only the sender can edit a message")
        return await chat_messages.edit(conn, message.id, payload.body)

    return await _change_message(ns, caller, payload.message_id, ChatEventType.EDITED, edit)


async def chat_delete(ns: HubNamespace, caller: Caller, payload: ChatDelete) -> dict[str, Any]:
    """The sender deletes their message; a board's owner any message of the board's channels."""

    async def delete(
        conn: Connection, message: ChatMessage, channel: Channel
    ) -> ChatMessage | None:
        if message.sender_id != caller.user_id:
            owner = channel.board_id is not None and (
                await boards.role_of(conn, channel.board_id, caller.user_id) == BoardRole.OWNER
            )
            if not owner:
                raise Forbidden("only the sender or a board owner can delete a message")
        return await chat_messages.soft_delete(conn, message.id)

    return await _change_message(ns, caller, payload.message_id, ChatEventType.DELETED, delete)


async def chat_history(ns: HubNamespace, caller: Caller, payload: ChatHistory) -> dict[str, Any]:
    """One page, newest first; `next` is the `before` of the following page (null at the start)."""
    async with transaction(ns.deps.pool, readonly=True) as conn:
        await require_member(conn, payload.channel_id, caller.user_id)
        page = await chat_messages.history(conn, payload.channel_id, payload.before, payload.limit)
    following = page[-1].seq if len(page) == payload.limit and page[-1].seq > 1 else None
    return {"messages": to_wire(page), "next": following}


async def chat_typing(ns: HubNamespace, caller: Caller, payload: ChatTyping) -> dict[str, Any]:
    """Tell the others; not stored. `typing: true` goes out at most every
    TYPING_EVERY_MS per person and channel; `false` always, and lets the next
    `true` through at once."""
    async with ns.deps.pool.acquire() as conn:
        channel = await require_member(conn, payload.channel_id, caller.user_id)
    key = ns.deps.keys.typing(channel.id, caller.user_id)
    if payload.typing:
        sent = bool(await ns.deps.redis.set(key, "1", nx=True, px=TYPING_EVERY_MS))
    else:
        await ns.deps.redis.delete(key)
        sent = True
    if sent:
        data = {
            "channel_id": str(channel.id),
            "user_id": str(caller.user_id),
            "name": caller.name,
            "typing": payload.typing,
        }
        await ns.emit_to(ServerEvent.CHAT_TYPING, data, chat_rooms(channel), skip_sid=caller.sid)
    return {"sent": sent}


async def chat_read(ns: HubNamespace, caller: Caller, payload: ChatRead) -> dict[str, Any]:
    """Move the read marker; every tab of the caller hears the new unread count."""
    async with transaction(ns.deps.pool) as conn:
        await require_member(conn, payload.channel_id, caller.user_id)
        marker, unread = await channels.mark_read(
            conn, payload.channel_id, caller.user_id, payload.seq
        )
    data = {"channel_id": str(payload.channel_id), "last_read_seq": marker, "unread": unread}
    await ns.emit_to(ServerEvent.CHAT_UNREAD, data, room_user_chat(caller.user_id))
    return data
