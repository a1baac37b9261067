"""The chat events of the Python client, as `TaskhubClient.chat`.

    joined = await hub.chat.join(channel_id)
    hub.on("chat:message", lambda message: print(message.sender_name, message.body))
    await hub.chat.send("Hello", channel_id=channel_id)

A joined channel is followed like a joined board: its `chat:message` events
reach the handlers once, and after a reconnect the channel is joined again and
what was sent meanwhile is delivered first. A DM needs no join (it reaches the
user's own room); `send(..., to_user_id=...)` opens it on first use.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import msgspec

from protocol.event_stream import EventStream
from protocol.events import ClientEvent
from protocol.models import Channel, ChatMessage
from protocol.payloads import (
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
    Payload,
)
from protocol.replies import ChannelJoined, ChannelRead, HistoryPage, MessageSent

Call = Callable[[str, Payload | Mapping[str, Any]], Awaitable[Any]]


class _Channels(msgspec.Struct):
    channels: list[Channel]


class _Created(msgspec.Struct):
    channel: Channel


class _Typed(msgspec.Struct):
    sent: bool


def _uuid(value: uuid.UUID | str) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(value)


class ChatApi:
    def __init__(self, call: Call, events: EventStream) -> None:
        self._call = call
        self._events = events

    async def channels(self) -> list[Channel]:
        """Your channels and DMs with their unread counts."""
        return msgspec.convert(
            await self._call(ClientEvent.CHAT_CHANNELS, ChatChannels()), _Channels
        ).channels

    async def create(
        self,
        name: str,
        *,
        board_id: uuid.UUID | str | None = None,
        member_ids: Sequence[uuid.UUID | str] = (),
    ) -> Channel:
        payload = ChatCreate(
            name=name,
            board_id=_uuid(board_id) if board_id is not None else None,
            member_ids=[_uuid(m) for m in member_ids],
        )
        return msgspec.convert(await self._call(ClientEvent.CHAT_CREATE, payload), _Created).channel

    async def join(self, channel_id: uuid.UUID | str, limit: int = 50) -> ChannelJoined:
        """Enter the channel's room and follow it; the reply holds its newest messages."""
        payload = ChatJoin(channel_id=_uuid(channel_id), limit=limit)
        joined = msgspec.convert(await self._call(ClientEvent.CHAT_JOIN, payload), ChannelJoined)
        self._events.followed_channel(joined)
        return joined

    async def leave(self, channel_id: uuid.UUID | str) -> None:
        self._events.left_channel(_uuid(channel_id))
        await self._call(ClientEvent.CHAT_LEAVE, ChatLeave(channel_id=_uuid(channel_id)))

    async def send(
        self,
        body: str,
        *,
        channel_id: uuid.UUID | str | None = None,
        to_user_id: uuid.UUID | str | None = None,
        client_msg_id: uuid.UUID | None = None,
    ) -> ChatMessage:
        """To a channel or a person; a `client_msg_id` is made up when not given, so a
        resend after a dropped connection stores the message once."""
        payload = ChatSend(
            body=body,
            channel_id=_uuid(channel_id) if channel_id is not None else None,
            to_user_id=_uuid(to_user_id) if to_user_id is not None else None,
            client_msg_id=client_msg_id,
        )
        return msgspec.convert(
            await self._call(ClientEvent.CHAT_SEND, payload), MessageSent
        ).message

    async def edit(self, message_id: uuid.UUID | str, body: str) -> ChatMessage:
        payload = ChatEdit(message_id=_uuid(message_id), body=body)
        return msgspec.convert(
            await self._call(ClientEvent.CHAT_EDIT, payload), MessageSent
        ).message

    async def delete(self, message_id: uuid.UUID | str) -> ChatMessage:
        payload = ChatDelete(message_id=_uuid(message_id))
        return msgspec.convert(
            await self._call(ClientEvent.CHAT_DELETE, payload), MessageSent
        ).message

    async def history(
        self, channel_id: uuid.UUID | str, before: int | None = None, limit: int = 50
    ) -> HistoryPage:
        payload = ChatHistory(channel_id=_uuid(channel_id), before=before, limit=limit)
        return msgspec.convert(await self._call(ClientEvent.CHAT_HISTORY, payload), HistoryPage)

    async def typing(self, channel_id: uuid.UUID | str, typing: bool = True) -> bool:
        """False when the hub throttled it (the others heard you a moment ago)."""
        payload = ChatTyping(channel_id=_uuid(channel_id), typing=typing)
        return msgspec.convert(await self._call(ClientEvent.CHAT_TYPING, payload), _Typed).sent

    async def read(self, channel_id: uuid.UUID | str, seq: int) -> ChannelRead:
        payload = ChatRead(channel_id=_uuid(channel_id), seq=seq)
        return msgspec.convert(await self._call(ClientEvent.CHAT_READ, payload), ChannelRead)
