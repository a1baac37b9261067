"""Wire names of every event, typed once."""

from enum import StrEnum


class ClientEvent(StrEnum):
    BOARD_JOIN = "board:join"
    BOARD_LEAVE = "board:leave"
    TASK_CREATE = "task:create"
    TASK_UPDATE = "task:update"
    TASK_MOVE = "task:move"
    TASK_DELETE = "task:delete"
    PRESENCE_LIST = "presence:list"
    NOTIFICATIONS_LIST = "notifications:list"
    NOTIFICATIONS_READ = "notifications:read"
    REMINDERS_CREATE = "reminders:create"
    REMINDERS_LIST = "reminders:list"
    REMINDERS_DISMISS = "reminders:dismiss"


class ServerEvent(StrEnum):
    TASK_CREATED = "task:created"
    TASK_UPDATED = "task:updated"
    TASK_DELETED = "task:deleted"
    PRESENCE = "presence"
    NOTIFICATION = "notification"
    NOTIFICATIONS_UNREAD = "notifications:unread"
    CHAT_MESSAGE = "chat:message"


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


def room_user(user_id: object) -> str:
    return f"user:{user_id}"


def room_channel(channel_id: object) -> str:
    return f"channel:{channel_id}"


def server_event_for(event_type: str) -> ServerEvent:
    """The room event that carries a task event of this type."""
    if event_type == TaskEventType.CREATED:
        return ServerEvent.TASK_CREATED
    if event_type == TaskEventType.DELETED:
        return ServerEvent.TASK_DELETED
    return ServerEvent.TASK_UPDATED
