"""Every client event with its payload and what its ack carries; every server event.

The handlers' routing table and docs/PROTOCOL.md are both built from this, so
the documentation cannot drift from what the server accepts.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from protocol.bots import Scope
from protocol.events import ClientEvent, ServerEvent
from protocol.payloads import (
    CHANNELS_LIMIT,
    TYPING_EVERY_MS,
    AuthRefresh,
    BoardJoin,
    BoardLeave,
    BoardMembers,
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
    TriageCreate,
)

_REMINDER = (
    "the reminder: `id`, `task_id`, `user_id`, `remind_at`, `method`, `status` (`scheduled`, "
    "`sent`, `failed`, `dismissed`), `attempts`, `last_error`, `sent_at`, `created_at`"
)

_CHANNEL = (
    "`id`, `kind` (`channel` or `dm`), `name` (null for a DM), `board_id`, "
    "`is_board_channel`, `last_seq`, `created_at`, `members` (`{id, name}`; empty for a "
    "board's channel, whose members are the board's), `last_read_seq`, `unread`"
)

_MESSAGE = (
    "`id`, `channel_id`, `seq` (per channel, from 1, no gaps), `sender_id`, `sender_name`, "
    "`body`, `message_type` (`text`, `system`, `file`), `client_msg_id`, `mentions` (user "
    "ids), `source`, `edited_at`, `deleted_at`, `created_at`"
)

_TASK_EVENT_ACK = (
    "the task event: `event_id`, `board_id`, `seq`, `type`, `task_id`, `actor_id`, "
    "`task` (the task after the write), `changes` (`{field: {before, after}}`), "
    "`correlation_id`, `occurred_at`"
)


class Limit(StrEnum):
    """The rate limits (per user and per address, RATE_LIMIT_* settings): what each
    counts. Over one, an event is answered `rate_limited` with
    `details.retry_after` (seconds) and does nothing."""

    CONNECT = "connect"  # a socket connect
    WRITE = "write"  # an event that changes boards, tasks or reminders
    CHAT = "chat"  # an event that writes chat
    LOGIN = "login"  # a password login over REST (per email and per address)


@dataclass(frozen=True)
class ClientEventSpec:
    event: ClientEvent
    payload: type[Payload]
    summary: str
    ack: str
    errors: tuple[str, ...]
    # The scope a bot token needs to send this event (checked by the dispatcher
    # before the handler runs); None: any connection may. People have every scope.
    scope: str | None = None
    # The rate limit this event counts against; None: not limited (reads, joins,
    # typing, which has its own throttle).
    limit: Limit | None = None
    # The payload field naming the room (a board or a channel) in which one
    # connection's events so marked are handled one at a time, in the order it sent
    # them, or WHOLE_CONNECTION; the hub otherwise handles a connection's events at
    # once. For the events whose outcome depends on the one before: a room's join
    # and leave, typing, a refresh's token.
    in_sent_order: str | None = None

    def __post_init__(self) -> None:
        if self.scope is not None:
            Scope(self.scope)  # a typo fails at import, not as an event no bot can send

    def error_codes(self) -> tuple[str, ...]:
        """The codes of the ack, with `forbidden` for a token that lacks the scope and
        `rate_limited` for a limited event."""
        codes = self.errors
        if self.scope is not None and "forbidden" not in codes:
            codes = ("forbidden", *codes)
        if self.limit is not None:
            codes = (*codes, "rate_limited")
        return codes


@dataclass(frozen=True)
class ServerEventSpec:
    event: ServerEvent
    room: str
    summary: str


WHOLE_CONNECTION = "*"
"""`in_sent_order` of an event ordered among all the connection's events so marked,
about no room: `auth:refresh`, whose last token sent is the one that rules."""

CLIENT_EVENTS: dict[ClientEvent, ClientEventSpec] = {
    spec.event: spec
    for spec in (
        ClientEventSpec(
            ClientEvent.AUTH_REFRESH,
            AuthRefresh,
            "Hand a live connection the new access token of its user, before the one it "
            "connected with expires: the connection then lives until the new token's "
            "`exp` instead of being closed with `token_expired`. The token is checked "
            "like a connect's (signature, expiry, an active user and a live login); a "
            "refused one changes nothing (`unauthorized` with `details.reason`, the "
            "connection keeps its current expiry). A token of another user is "
            "`forbidden`, and so is any token on a connection made with a bot token "
            "(reconnect with a new bot token instead).",
            "`user_id`, `expires_at` (when the connection will be closed now, unless "
            "refreshed again)",
            ("unauthorized", "forbidden", "invalid_payload"),
            in_sent_order=WHOLE_CONNECTION,
        ),
        ClientEventSpec(
            ClientEvent.BOARD_JOIN,
            BoardJoin,
            "Enter a board's room. With `since_seq`, get the events missed since that seq "
            "(when at most `CATCH_UP_WINDOW` behind, 10,000 by default) instead of the "
            "full snapshot; `mode` says which one the reply holds.",
            "`board`, `seq` (the board's current seq), `mode` (`snapshot` or `events`), "
            "`tasks` (snapshot: live tasks) or `events` (events after `since_seq`, in seq "
            "order), `presence` (users on the board now), `unread_notifications` (the "
            "caller's unread notification count), `channel_id` (the board's chat channel, "
            "whose room is joined too; absent for a bot token without `chat:read`)",
            ("forbidden", "not_found", "invalid_payload"),
            scope=Scope.TASKS_READ,
            in_sent_order="board_id",
        ),
        ClientEventSpec(
            ClientEvent.BOARD_LEAVE,
            BoardLeave,
            "Leave a board's room, and its channel's room that `board:join` entered.",
            "`board_id`",
            ("invalid_payload",),
            scope=Scope.TASKS_READ,
            in_sent_order="board_id",
        ),
        ClientEventSpec(
            ClientEvent.PRESENCE_LIST,
            PresenceList,
            "Who is on the board right now (any member may ask).",
            "`board_id`, `users` (`[{id, name}]`)",
            ("forbidden", "not_found", "invalid_payload"),
            scope=Scope.TASKS_READ,
        ),
        ClientEventSpec(
            ClientEvent.BOARD_MEMBERS,
            BoardMembers,
            "Who belongs to the board (any member may ask): for assignee pickers and bots.",
            "`board_id`, `members` (`[{user_id, email, name, role}]`, oldest first)",
            ("forbidden", "not_found", "invalid_payload"),
            scope=Scope.TASKS_READ,
        ),
        ClientEventSpec(
            ClientEvent.TASK_CREATE,
            TaskCreate,
            "Create a task (owners and editors). Without `position` it goes to the end "
            "of its column.",
            _TASK_EVENT_ACK,
            ("forbidden", "not_found", "invalid_payload"),
            scope=Scope.TASKS_WRITE,
            limit=Limit.WRITE,
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
            scope=Scope.TASKS_WRITE,
            limit=Limit.WRITE,
        ),
        ClientEventSpec(
            ClientEvent.TASK_MOVE,
            TaskMove,
            "Drag a card: a new `position` and optionally a new `status` column; "
            "the same merge rules as `task:update`.",
            _TASK_EVENT_ACK,
            ("forbidden", "not_found", "invalid_payload", "version_conflict"),
            scope=Scope.TASKS_WRITE,
            limit=Limit.WRITE,
        ),
        ClientEventSpec(
            ClientEvent.TASK_DELETE,
            TaskDelete,
            "Soft-delete a task. With `base_version`, refused with `version_conflict` "
            "if the task changed since.",
            _TASK_EVENT_ACK,
            ("forbidden", "not_found", "invalid_payload", "version_conflict"),
            scope=Scope.TASKS_WRITE,
            limit=Limit.WRITE,
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
            scope=Scope.TASKS_WRITE,
            limit=Limit.WRITE,
        ),
        ClientEventSpec(
            ClientEvent.REMINDERS_LIST,
            ReminderList,
            "Your reminders on a task, soonest first (other members' stay private).",
            f"`task_id`, `reminders` (each as in `reminders:create`: {_REMINDER})",
            ("forbidden", "not_found", "invalid_payload"),
            scope=Scope.TASKS_READ,
        ),
        ClientEventSpec(
            ClientEvent.REMINDERS_DISMISS,
            ReminderDismiss,
            "Dismiss one of your reminders so it does not fire; dismissing again is "
            "harmless. A reminder already sent cannot be dismissed (`invalid_payload`); "
            "another user's reminder is `not_found`.",
            _REMINDER,
            ("not_found", "invalid_payload"),
            scope=Scope.TASKS_WRITE,
            limit=Limit.WRITE,
        ),
        ClientEventSpec(
            ClientEvent.CHAT_CHANNELS,
            ChatChannels,
            f"Your channels: each board's channel (`is_board_channel`; its members are the "
            f"board's), channels you were added to, and your DMs; at most {CHANNELS_LIMIT}.",
            f"`channels`: each {_CHANNEL}",
            ("invalid_payload",),
            scope=Scope.CHAT_READ,
        ),
        ClientEventSpec(
            ClientEvent.CHAT_CREATE,
            ChatCreate,
            "Open a channel with `member_ids` (and you). With `board_id` (a board you are on) "
            "it belongs to that board and its members must be on the board; without, they "
            "must share a board with you. Every member's connections get `chat:channel`.",
            f"`channel`: {_CHANNEL}",
            ("forbidden", "not_found", "invalid_payload"),
            scope=Scope.CHAT_WRITE,
            limit=Limit.CHAT,
        ),
        ClientEventSpec(
            ClientEvent.CHAT_JOIN,
            ChatJoin,
            "Enter a channel's room to hear its messages live (a DM reaches your `user:{id}:chat` "
            "room without a join; `board:join` also joins the board's channel).",
            f"`channel` ({_CHANNEL}), `messages` (the newest `limit`, newest first: {_MESSAGE})",
            ("forbidden", "not_found", "invalid_payload"),
            scope=Scope.CHAT_READ,
            in_sent_order="channel_id",
        ),
        ClientEventSpec(
            ClientEvent.CHAT_LEAVE,
            ChatLeave,
            "Leave a channel's room.",
            "`channel_id`",
            ("invalid_payload",),
            scope=Scope.CHAT_READ,
            in_sent_order="channel_id",
        ),
        ClientEventSpec(
            ClientEvent.CHAT_SEND,
            ChatSend,
            "Send to a channel you are a member of, or to a person (`to_user_id`, someone "
            "you share a board with; your one DM with them is made on first use). A resend "
            "with the same `client_msg_id` stores nothing and acks the stored message "
            "(`duplicate: true`). `@name` (a member's name without spaces, or the part of "
            "their email before the @) sends them a `mention` notification.",
            f"`message` ({_MESSAGE}), `duplicate`",
            ("forbidden", "not_found", "invalid_payload"),
            scope=Scope.CHAT_WRITE,
            limit=Limit.CHAT,
        ),
        ClientEventSpec(
            ClientEvent.CHAT_EDIT,
            ChatEdit,
            "Change the text of your own message; the room gets `chat:edited`.",
            f"`message`: {_MESSAGE}",
            ("forbidden", "not_found", "invalid_payload"),
            scope=Scope.CHAT_WRITE,
            limit=Limit.CHAT,
        ),
        ClientEventSpec(
            ClientEvent.CHAT_DELETE,
            ChatDelete,
            "Delete your own message, or as a board's owner any message of its channels "
            "that you are in. "
            "The text is gone; the message keeps its seq with `deleted_at` set. The room "
            "gets `chat:deleted`.",
            f"`message`: {_MESSAGE}",
            ("forbidden", "not_found", "invalid_payload"),
            scope=Scope.CHAT_WRITE,
            limit=Limit.CHAT,
        ),
        ClientEventSpec(
            ClientEvent.CHAT_HISTORY,
            ChatHistory,
            "A page of a channel's messages, newest first, at most 100; deleted ones keep "
            "their place with an empty body.",
            f"`messages` ({_MESSAGE}), `next` (the `before` of the next page; null at the "
            f"first message)",
            ("forbidden", "not_found", "invalid_payload"),
            scope=Scope.CHAT_READ,
        ),
        ClientEventSpec(
            ClientEvent.CHAT_TYPING,
            ChatTyping,
            f"Say you are typing (or stopped). Not stored; the others hear `typing: true` at "
            f"most every {TYPING_EVERY_MS} ms per person and channel, `false` always.",
            "`sent` (false when throttled)",
            ("forbidden", "not_found", "invalid_payload"),
            scope=Scope.CHAT_WRITE,
            in_sent_order="channel_id",
        ),
        ClientEventSpec(
            ClientEvent.CHAT_READ,
            ChatRead,
            "You have read a channel up to `seq`; the marker never moves back. Every "
            "connection of yours gets `chat:unread`.",
            "`channel_id`, `last_read_seq`, `unread` (later messages of others, not deleted)",
            ("forbidden", "not_found", "invalid_payload"),
            scope=Scope.CHAT_READ,
        ),
        ClientEventSpec(
            ClientEvent.TRIAGE_CREATE,
            TriageCreate,
            "Report a problem on a board for triage (editors and owners; seed 004's "
            "triage items). It waits as `pending` until someone reviews it.",
            "`item`: `id`, `board_id`, `reporter_id`, `title`, `description`, `status`, "
            "`assigned_to`, `priority`, `category`, `resolution`, `resolved_at`, "
            "`created_at`, `updated_at`",
            ("forbidden", "not_found", "invalid_payload"),
            scope=Scope.TASKS_WRITE,
            limit=Limit.WRITE,
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
        "the user on the board) or `left` (last one gone, also when its node died, within "
        "`NODE_TTL` + `REAP_INTERVAL` (20 s by default), or shut down: then `joined` "
        "follows when the user's client is back on another node).",
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
    ServerEventSpec(
        ServerEvent.CHAT_MESSAGE,
        "channel:{id} (a DM: user:{id}:chat of both)",
        f"A new message: {_MESSAGE}. Also messages other services put on Kafka.",
    ),
    ServerEventSpec(
        ServerEvent.CHAT_EDITED,
        "channel:{id} (a DM: user:{id}:chat of both)",
        "A message's new text.",
    ),
    ServerEventSpec(
        ServerEvent.CHAT_DELETED,
        "channel:{id} (a DM: user:{id}:chat of both)",
        "A message was deleted: the message with an empty body and `deleted_at`.",
    ),
    ServerEventSpec(
        ServerEvent.CHAT_TYPING,
        "channel:{id} (a DM: user:{id}:chat of both)",
        "`{channel_id, user_id, name, typing}`; not to the connection that sent it.",
    ),
    ServerEventSpec(
        ServerEvent.CHAT_CHANNEL,
        "user:{id}:chat",
        "You were made a member of a new channel (by `chat:create`, or a DM by its first "
        f"message, sent before that message): {_CHANNEL}.",
    ),
    ServerEventSpec(
        ServerEvent.CHAT_UNREAD,
        "user:{id}:chat",
        "`{channel_id, last_read_seq, unread}`: your read marker moved on one of your connections.",
    ),
    ServerEventSpec(
        ServerEvent.CONNECTION_CLOSING,
        "this connection only",
        "The hub is about to close this connection on purpose, and why: "
        "`{code, message, details: {reason}}`, the shape of a refused connect's "
        "`connect_error`. The Socket.IO disconnect follows at once. Reasons: "
        "`token_expired` (the token expired while connected and no `auth:refresh` came), "
        "`token_revoked` (a bot token was revoked): do not reconnect with the same token. "
        "`server_shutdown` (code `unavailable`): the node is stopping, as in a deploy, "
        "and nothing is wrong with the connection or its token: reconnect to the same URL "
        "(a load balancer sends you to a live node) after a short random delay (up to a "
        "second, so that the node's clients do not all arrive at once), resend "
        "unacknowledged writes with their `op_id` and join your boards again with "
        "`since_seq`. Socket.IO clients do not reconnect by themselves after a server's "
        "disconnect (`io server disconnect`): call connect. Your board presence goes "
        "`left` when the node closes your last connection and `joined` when you are back.",
    ),
)
