"""Wire names of every event, typed once."""

import uuid
from enum import StrEnum

from protocol.models import Channel, ChannelKind


class ClientEvent(StrEnum):
    BOARD_JOIN = "board:join"
    BOARD_LEAVE = "board:leave"
    TASK_CREATE = "task:create"
    TASK_UPDATE = "task:update"
    TASK_MOVE = "task:move"
    TASK_DELETE = "task:delete"
    PRESENCE_LIST = "presence:list"
    BOARD_MEMBERS = "board:members"
    NOTIFICATIONS_LIST = "notifications:list"
    NOTIFICATIONS_READ = "notifications:read"
    REMINDERS_CREATE = "reminders:create"
    REMINDERS_LIST = "reminders:list"
    REMINDERS_DISMISS = "reminders:dismiss"
    CHAT_CHANNELS = "chat:channels"
    CHAT_CREATE = "chat:create"
    CHAT_JOIN = "chat:join"
    CHAT_LEAVE = "chat:leave"
    CHAT_SEND = "chat:send"
    CHAT_EDIT = "chat:edit"
    CHAT_DELETE = "chat:delete"
    CHAT_HISTORY = "chat:history"
    CHAT_TYPING = "chat:typing"
    CHAT_READ = "chat:read"
    TRIAGE_CREATE = "triage:create"
    AUTH_REFRESH = "auth:refresh"


class ServerEvent(StrEnum):
    TASK_CREATED = "task:created"
    TASK_UPDATED = "task:updated"
    TASK_DELETED = "task:deleted"
    PRESENCE = "presence"
    NOTIFICATION = "notification"
    NOTIFICATIONS_UNREAD = "notifications:unread"
    CHAT_MESSAGE = "chat:message"
    CHAT_EDITED = "chat:edited"
    CHAT_DELETED = "chat:deleted"
    CHAT_TYPING = "chat:typing"
    CHAT_CHANNEL = "chat:channel"
    CHAT_UNREAD = "chat:unread"
    CONNECTION_CLOSING = "connection:closing"


# Names python-socketio and Engine.IO reserve; a client may never trigger them.
RESERVED_EVENTS = frozenset({"connect", "disconnect", "connect_error", "message"})


class TaskEventType(StrEnum):
    CREATED = "task.created"
    UPDATED = "task.updated"
    ASSIGNED = "task.assigned"
    STATUS_CHANGED = "task.status_changed"
    DELETED = "task.deleted"
    COMPLETED = "task.completed"
    DELAYED = "task.delayed"


def room_board(board_id: object) -> str:
    return f"board:{board_id}"


def board_of_room(room: object) -> uuid.UUID | None:
    """The board whose room `room_board` named this; None for any other room."""
    if not isinstance(room, str) or not room.startswith("board:"):
        return None
    try:
        return uuid.UUID(room.removeprefix("board:"))
    except ValueError:
        return None


def room_user(user_id: object) -> str:
    return f"user:{user_id}"


def room_user_chat(user_id: object) -> str:
    """A user's chat: their DMs and channel news. Apart from room_user because only
    connections allowed to read chat join it (a bot token without `chat:read`
    still hears its notifications)."""
    return f"user:{user_id}:chat"


def room_channel(channel_id: object) -> str:
    return f"channel:{channel_id}"


def chat_rooms(channel: Channel) -> list[str]:
    """Where a channel's events go: its room, or for a DM the chat rooms of its two
    users, so every tab of both that may read chat hears it without joining."""
    if channel.kind == ChannelKind.DM:
        return [room_user_chat(member.id) for member in channel.members]
    return [room_channel(channel.id)]


class ChatEventType(StrEnum):
    """Types of the records on topic `chat_messages`."""

    MESSAGE = "chat.message"
    EDITED = "chat.edited"
    DELETED = "chat.deleted"


CHAT_SERVER_EVENTS = {
    ChatEventType.MESSAGE: ServerEvent.CHAT_MESSAGE,
    ChatEventType.EDITED: ServerEvent.CHAT_EDITED,
    ChatEventType.DELETED: ServerEvent.CHAT_DELETED,
}


def server_event_for(event_type: str) -> ServerEvent:
    """The room event that carries a task event of this type."""
    if event_type == TaskEventType.CREATED:
        return ServerEvent.TASK_CREATED
    if event_type == TaskEventType.DELETED:
        return ServerEvent.TASK_DELETED
    return ServerEvent.TASK_UPDATED
