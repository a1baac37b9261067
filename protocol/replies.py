"""What acks and a few server events carry, as structs a client decodes into.

Entities (a task, a notification, ...) are in protocol/models.py; these are the
envelopes around them. Unknown fields are ignored, so a hub that adds a field
does not break older clients.
"""

from __future__ import annotations

import uuid
from typing import Literal

import msgspec

from protocol.models import (
    Board,
    Channel,
    ChatMessage,
    Member,
    Notification,
    PublicUser,
    Reminder,
    Task,
    TaskEvent,
)


class BoardJoined(msgspec.Struct, kw_only=True):
    """The ack of `board:join`: the whole board (`mode="snapshot"`: `tasks`) or the
    events after `since_seq` (`mode="events"`: `events`), as of board seq `seq`."""

    board: Board
    seq: int
    mode: Literal["snapshot", "events"]
    tasks: list[Task] = msgspec.field(default_factory=list)
    events: list[TaskEvent] = msgspec.field(default_factory=list)
    presence: list[PublicUser] = msgspec.field(default_factory=list)
    unread_notifications: int = 0
    # the board's chat channel, whose room the join entered (absent without chat:read)
    channel_id: uuid.UUID | None = None


class MembersListed(msgspec.Struct, kw_only=True):
    board_id: uuid.UUID
    members: list[Member]


class PresenceListed(msgspec.Struct, kw_only=True):
    board_id: uuid.UUID
    users: list[PublicUser]


class NotificationsPage(msgspec.Struct, kw_only=True):
    """The ack of `notifications:list`; pass `next` as `before` for the next page."""

    notifications: list[Notification]
    next: str | None
    unread: int


class UnreadCount(msgspec.Struct, kw_only=True):
    """The ack of `notifications:read` and the `notifications:unread` server event."""

    unread: int


class RemindersListed(msgspec.Struct, kw_only=True):
    task_id: uuid.UUID
    reminders: list[Reminder]


class PresenceChange(msgspec.Struct, kw_only=True):
    """The `presence` server event: the first connection of a user joined a board, or
    the last one left it."""

    board_id: uuid.UUID
    user: PublicUser
    state: Literal["joined", "left"]


class ChannelJoined(msgspec.Struct, kw_only=True):
    """The ack of `chat:join`: the channel and its newest messages, newest first."""

    channel: Channel
    messages: list[ChatMessage]


class HistoryPage(msgspec.Struct, kw_only=True):
    """The ack of `chat:history`; pass `next` as `before` for older messages."""

    messages: list[ChatMessage]
    next: int | None


class MessageSent(msgspec.Struct, kw_only=True):
    """The ack of `chat:send`; `duplicate` when the `client_msg_id` was stored before."""

    message: ChatMessage
    duplicate: bool = False


class ChannelRead(msgspec.Struct, kw_only=True):
    """The ack of `chat:read` and the `chat:unread` server event."""

    channel_id: uuid.UUID
    last_read_seq: int
    unread: int


class Typing(msgspec.Struct, kw_only=True):
    """The `chat:typing` server event."""

    channel_id: uuid.UUID
    user_id: uuid.UUID
    name: str
    typing: bool
