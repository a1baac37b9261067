"""Every client event with its payload and what its ack carries; every server event.

The handlers' routing table and docs/PROTOCOL.md are both built from this, so
the documentation cannot drift from what the server accepts.
"""

from __future__ import annotations

from dataclasses import dataclass

from protocol.events import ClientEvent, ServerEvent
from protocol.payloads import (
    BoardJoin,
    BoardLeave,
    NotificationsList,
    NotificationsRead,
    Payload,
    PresenceList,
    ReminderCreate,
    ReminderDismiss,
    ReminderList,
    TaskCreate,
    TaskDelete,
    TaskMove,
    TaskUpdate,
)

_REMINDER = (
    "the reminder: `id`, `task_id`, `user_id`, `remind_at`, `method`, `status` (`scheduled`, "
    "`sent`, `failed`, `dismissed`), `attempts`, `last_error`, `sent_at`, `created_at`"
)

_TASK_EVENT_ACK = (
    "the task event: `event_id`, `board_id`, `seq`, `type`, `task_id`, `actor_id`, "
    "`task` (the task after the write), `changes` (`{field: {before, after}}`), "
    "`correlation_id`, `occurred_at`"
)


@dataclass(frozen=True)
class ClientEventSpec:
    event: ClientEvent
    payload: type[Payload]
    summary: str
    ack: str
    errors: tuple[str, ...]


@dataclass(frozen=True)
class ServerEventSpec:
    event: ServerEvent
    room: str
    summary: str


CLIENT_EVENTS: dict[ClientEvent, ClientEventSpec] = {
    spec.event: spec
    for spec in (
        ClientEventSpec(
            ClientEvent.BOARD_JOIN,
            BoardJoin,
            "Enter a board's room. With `since_seq`, get the events missed since that seq "
            "(when at most `CATCH_UP_WINDOW` behind, 10,000 by default) instead of the "
            "full snapshot; `mode` says which one the reply holds.",
            "`board`, `seq` (the board's current seq), `mode` (`snapshot` or `events`), "
            "`tasks` (snapshot: live tasks) or `events` (events after `since_seq`, in seq "
            "order), `presence` (users on the board now), `unread_notifications` (the "
            "caller's unread notification count)",
            ("forbidden", "not_found", "invalid_payload"),
        ),
        ClientEventSpec(
            ClientEvent.BOARD_LEAVE,
            BoardLeave,
            "Leave a board's room.",
            "`board_id`",
            ("invalid_payload",),
        ),
        ClientEventSpec(
            ClientEvent.PRESENCE_LIST,
            PresenceList,
            "Who is on the board right now (any member may ask).",
            "`board_id`, `users` (`[{id, name}]`)",
            ("forbidden", "not_found", "invalid_payload"),
        ),
        ClientEventSpec(
            ClientEvent.TASK_CREATE,
            TaskCreate,
            "Create a task (owners and editors). Without `position` it goes to the end "
            "of its column.",
            _TASK_EVENT_ACK,
            ("forbidden", "not_found", "invalid_payload"),
        ),
        ClientEventSpec(
            ClientEvent.TASK_UPDATE,
            TaskUpdate,
            "Edit fields of a task seen at `base_version`. When the task moved on, the "
            "edit is merged if none of its fields changed since; otherwise "
            "`version_conflict` with `details.task` (current) and "
            "`details.conflicting_fields`.",
            _TASK_EVENT_ACK,
            ("forbidden", "not_found", "invalid_payload", "version_conflict"),
        ),
        ClientEventSpec(
            ClientEvent.TASK_MOVE,
            TaskMove,
            "Drag a card: a new `position` and optionally a new `status` column; "
            "the same merge rules as `task:update`.",
            _TASK_EVENT_ACK,
            ("forbidden", "not_found", "invalid_payload", "version_conflict"),
        ),
        ClientEventSpec(
            ClientEvent.TASK_DELETE,
            TaskDelete,
            "Soft-delete a task. With `base_version`, refused with `version_conflict` "
            "if the task changed since.",
            _TASK_EVENT_ACK,
            ("forbidden", "not_found", "invalid_payload", "version_conflict"),
        ),
        ClientEventSpec(
            ClientEvent.NOTIFICATIONS_LIST,
            NotificationsList,
            "The caller's notifications, unread first, then newest first; `limit` per page "
            "(at most 100, 50 by default). For the next page send `before` = the `next` of "
            "this reply. A notification read while paging may be listed once more among the "
            "read ones; none is skipped.",
            "`notifications` (`[{id, user_id, type, level, title, message, task_id, board_id, "
            "event_id, read_at, created_at}]`), `next` (cursor of the next page, or null), "
            "`unread` (the caller's unread count)",
            ("invalid_payload",),
        ),
        ClientEventSpec(
            ClientEvent.NOTIFICATIONS_READ,
            NotificationsRead,
            "Mark notifications read: `ids` (at most 500 of the caller's own; others' and "
            "unknown ids change nothing) or `all: true`, exactly one of the two. Every "
            "connection of the caller then gets `notifications:unread`.",
            "`unread` (the caller's unread count after the change)",
            ("invalid_payload",),
        ),
        ClientEventSpec(
            ClientEvent.REMINDERS_CREATE,
            ReminderCreate,
            "Set a reminder for yourself on a task of a board you belong to (any role). "
            "`remind_at` carries a timezone and lies in the future; `method` is `in_app` "
            "(default: a `notification` of type `reminder`), `email`, `push` or `sms`. "
            "It fires once, at its time.",
            _REMINDER,
            ("forbidden", "not_found", "invalid_payload"),
        ),
        ClientEventSpec(
            ClientEvent.REMINDERS_LIST,
            ReminderList,
            "Your reminders on a task, soonest first (other members' stay private).",
            f"`task_id`, `reminders` (each as in `reminders:create`: {_REMINDER})",
            ("forbidden", "not_found", "invalid_payload"),
        ),
        ClientEventSpec(
            ClientEvent.REMINDERS_DISMISS,
            ReminderDismiss,
            "Dismiss one of your reminders so it does not fire; dismissing again is "
            "harmless. A reminder already sent cannot be dismissed (`invalid_payload`); "
            "another user's reminder is `not_found`.",
            _REMINDER,
            ("not_found", "invalid_payload"),
        ),
    )
}

SERVER_EVENTS: tuple[ServerEventSpec, ...] = (
    ServerEventSpec(
        ServerEvent.TASK_CREATED,
        "board:{id}",
        "A task was created; the same body as the ack. Completing a recurring task also "
        "creates its next occurrence (`task.recurrence_of` = the completed task), sent "
        "right after the completion's `task:updated`, in seq order.",
    ),
    ServerEventSpec(
        ServerEvent.TASK_UPDATED,
        "board:{id}",
        "A task was edited or moved; `type` says how (`task.updated`, `task.assigned`, "
        "`task.status_changed`, `task.completed`, or `task.delayed`: its due date passed "
        "before it was done; sent once, by the scheduler).",
    ),
    ServerEventSpec(ServerEvent.TASK_DELETED, "board:{id}", "A task was soft-deleted."),
    ServerEventSpec(
        ServerEvent.PRESENCE,
        "board:{id}",
        "`{board_id, user: {id, name}, state}` with state `joined` (first connection of "
        "the user on the board) or `left` (last one gone, also when its node died).",
    ),
    ServerEventSpec(
        ServerEvent.NOTIFICATION,
        "user:{id}",
        "A new notification for this user, the same shape as in `notifications:list` "
        "(reaches every connection of the user).",
    ),
    ServerEventSpec(
        ServerEvent.NOTIFICATIONS_UNREAD,
        "user:{id}",
        "`{unread}`: the user's unread count changed on one of their connections.",
    ),
)
