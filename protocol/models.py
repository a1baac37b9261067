"""Entities as they travel on the wire (server to client)."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

import msgspec


class TaskStatus(StrEnum):
    TODO = "todo"
    IN_PROGRESS = "in_progress"
    REVIEW = "review"
    DONE = "done"
    CANCELLED = "cancelled"


class TaskPriority(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    URGENT = "urgent"


class TeamRole(StrEnum):
    DEVELOPER = "developer"
    DESIGNER = "designer"
    TESTER = "tester"
    PROJECT_MANAGER = "project_manager"


class BoardRole(StrEnum):
    OWNER = "owner"
    EDITOR = "editor"
    VIEWER = "viewer"


class UserRole(StrEnum):
    USER = "user"
    ADMIN = "admin"
    BOT = "bot"


class User(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    email: str
    name: str
    role: UserRole
    team_role: TeamRole | None = None
    is_active: bool = True
    created_at: datetime


class PublicUser(msgspec.Struct, kw_only=True):
    """What other members of a board may see of a user."""

    id: uuid.UUID
    name: str


class Board(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    name: str
    owner_id: uuid.UUID
    seq: int
    created_at: datetime
    role: BoardRole | None = None


class Member(msgspec.Struct, kw_only=True):
    user_id: uuid.UUID
    email: str
    name: str
    role: BoardRole


class Task(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    board_id: uuid.UUID
    title: str
    description: str | None
    status: TaskStatus
    priority: TaskPriority
    assignee_id: uuid.UUID | None
    assigned_role: TeamRole | None
    creator_id: uuid.UUID
    tags: list[str]
    start_date: datetime | None
    due_date: datetime | None
    completed_at: datetime | None
    recurrence: str | None
    epic: str | None
    position: float
    is_delayed: bool
    deleted_at: datetime | None
    version: int
    created_at: datetime
    updated_at: datetime
    # the occurrence this one follows, for tasks made by completing a recurring task
    recurrence_of: uuid.UUID | None = None


class TaskEvent(msgspec.Struct, kw_only=True):
    """One entry of a board's ordered history, as `task:*` server events carry it."""

    event_id: uuid.UUID
    board_id: uuid.UUID
    seq: int
    type: str
    task_id: uuid.UUID
    actor_id: uuid.UUID | None
    task: Task
    changes: dict[str, Any]
    correlation_id: str | None
    occurred_at: datetime
    # "taskhub" for the hub's own writes; another service's name for events it
    # produced on Kafka that the bridge relayed into the board's history
    source: str = "taskhub"


class NotificationType(StrEnum):
    TASK_ASSIGNED = "task_assigned"
    TASK_DELAYED = "task_delayed"
    TASK_COMPLETED = "task_completed"
    TASK_STATUS_CHANGED = "task_status_changed"
    MENTION = "mention"
    REMINDER = "reminder"
    SYSTEM = "system"


class NotificationLevel(StrEnum):
    INFO = "info"
    WARNING = "warning"
    ALERT = "alert"


class Notification(msgspec.Struct, kw_only=True):
    """Something one user should see; `read_at` is null while unread.

    `event_id` names the event that caused it, so a redelivered event never
    notifies the same person twice.
    """

    id: uuid.UUID
    user_id: uuid.UUID
    type: NotificationType
    level: NotificationLevel
    title: str
    message: str
    task_id: uuid.UUID | None
    board_id: uuid.UUID | None
    event_id: uuid.UUID | None
    read_at: datetime | None
    created_at: datetime


class ReminderMethod(StrEnum):
    IN_APP = "in_app"
    EMAIL = "email"
    PUSH = "push"
    SMS = "sms"


class ReminderStatus(StrEnum):
    SCHEDULED = "scheduled"
    SENT = "sent"
    FAILED = "failed"
    DISMISSED = "dismissed"


class Reminder(msgspec.Struct, kw_only=True):
    """A reminder one user set on a task; `attempts` and `last_error` tell why one failed."""

    id: uuid.UUID
    task_id: uuid.UUID
    user_id: uuid.UUID
    remind_at: datetime
    method: ReminderMethod
    status: ReminderStatus
    attempts: int
    last_error: str | None
    sent_at: datetime | None
    created_at: datetime


class ChannelKind(StrEnum):
    CHANNEL = "channel"
    DM = "dm"


class MessageType(StrEnum):
    TEXT = "text"
    SYSTEM = "system"
    FILE = "file"


class Channel(msgspec.Struct, kw_only=True):
    """A chat channel as one member sees it.

    `members` lists a DM's two users and a channel's explicit members; a board's
    channel (`is_board_channel`) has the board's members, so it lists none.
    `unread` counts later messages of others than the viewer, not deleted.
    """

    id: uuid.UUID
    kind: ChannelKind
    name: str | None
    board_id: uuid.UUID | None
    is_board_channel: bool
    last_seq: int
    created_at: datetime
    members: list[PublicUser] = msgspec.field(default_factory=list)
    last_read_seq: int = 0
    unread: int = 0


class ChatMessage(msgspec.Struct, kw_only=True):
    """One message; a deleted one keeps its place (seq) with an empty body."""

    id: uuid.UUID
    channel_id: uuid.UUID
    seq: int
    sender_id: uuid.UUID | None
    sender_name: str | None
    body: str
    message_type: MessageType
    client_msg_id: uuid.UUID | None
    mentions: list[uuid.UUID]
    source: str
    edited_at: datetime | None
    deleted_at: datetime | None
    created_at: datetime


class TriageStatus(StrEnum):
    PENDING = "pending"
    IN_REVIEW = "in_review"
    RESOLVED = "resolved"
    REJECTED = "rejected"


class TriagePriority(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class TriageItem(msgspec.Struct, kw_only=True):
    """A reported problem waiting to become a task (or not), seed 004."""

    id: uuid.UUID
    board_id: uuid.UUID | None
    reporter_id: uuid.UUID
    title: str
    description: str
    status: TriageStatus
    assigned_to: uuid.UUID | None
    priority: TriagePriority
    category: str
    resolution: str | None
    resolved_at: datetime | None
    created_at: datetime
    updated_at: datetime


def to_wire(value: Any) -> Any:
    """Plain JSON/msgpack-ready builtins (UUIDs and datetimes as strings)."""
    return msgspec.to_builtins(value)
