"""Client event payloads and their validation.

Every field has a type, a bound and a clear error; unknown fields are refused so
a typo in a client never silently does nothing.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

import msgspec
from msgspec import UNSET, Meta, UnsetType

from protocol.errors import InvalidPayload
from protocol.models import (
    BoardRole,
    ReminderMethod,
    TaskPriority,
    TaskStatus,
    TeamRole,
    TriagePriority,
)

Title = Annotated[str, Meta(min_length=1, max_length=255)]
Description = Annotated[str, Meta(max_length=20_000)]
Tag = Annotated[str, Meta(min_length=1, max_length=50)]
Tags = Annotated[list[Tag], Meta(max_length=20)]
Epic = Annotated[str, Meta(min_length=1, max_length=100)]
Recurrence = Annotated[str, Meta(min_length=1, max_length=100)]
Position = Annotated[float, Meta(ge=-1e15, le=1e15)]
Version = Annotated[int, Meta(ge=1, le=2**62)]
Seq = Annotated[int, Meta(ge=0, le=2**62)]
Instant = Annotated[datetime, Meta(tz=True)]
Email = Annotated[str, Meta(min_length=3, max_length=254)]
Name = Annotated[str, Meta(min_length=1, max_length=100)]
Password = Annotated[str, Meta(min_length=8, max_length=72)]
BoardName = Annotated[str, Meta(min_length=1, max_length=120)]
Limit = Annotated[int, Meta(ge=1, le=200)]

_CRON_FIELD = r"[0-9*/,\-A-Za-z?]+"
_RECURRENCE = re.compile(rf"^(daily|weekly|monthly|{_CRON_FIELD}( {_CRON_FIELD}){{4}})$")
# Deliberately simple: a real address check is the confirmation mail, not a regex.
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


# Client-chosen id of a request; it becomes the correlation id of everything the
# request causes (event rows, Kafka headers, audit records, log lines).
RequestId = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:\-]+$")]


class Strict(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Refuses unknown fields; nested parts of a payload use it directly."""

    def validate(self) -> None:
        """Checks across fields; raises InvalidPayload."""


class Payload(Strict, kw_only=True):
    """Base of every client payload (an event's whole argument or a REST body)."""

    request_id: RequestId | None = None


def _check_recurrence(value: str | UnsetType | None) -> None:
    if isinstance(value, str) and not _RECURRENCE.match(value):
        raise InvalidPayload(
            "recurrence must be daily, weekly, monthly or a 5-field cron expression",
            details={"field": "recurrence"},
        )


def _check_dates(start: Any, due: Any) -> None:
    if isinstance(start, datetime) and isinstance(due, datetime) and due < start:
        raise InvalidPayload(
            "due_date must not be before start_date", details={"field": "due_date"}
        )


# -- boards and presence ---------------------------------------------------


class BoardJoin(Payload):
    board_id: uuid.UUID
    since_seq: Seq | None = None


class AuthRefresh(Payload):
    """A new access token for the connection it is sent on (its user's, from
    `POST /api/auth/refresh` or a new login)."""

    access_token: Annotated[str, Meta(min_length=1, max_length=4096)]


class BoardLeave(Payload):
    board_id: uuid.UUID


class PresenceList(Payload):
    board_id: uuid.UUID


class BoardMembers(Payload):
    board_id: uuid.UUID


# -- tasks -------------------------------------------------------------------


class TaskChanges(Strict):
    """The editable fields of a task; an absent field is left as it is."""

    title: Title | UnsetType = UNSET
    description: Description | UnsetType | None = UNSET
    status: TaskStatus | UnsetType = UNSET
    priority: TaskPriority | UnsetType = UNSET
    assignee_id: uuid.UUID | UnsetType | None = UNSET
    assigned_role: TeamRole | UnsetType | None = UNSET
    tags: Tags | UnsetType = UNSET
    start_date: Instant | UnsetType | None = UNSET
    due_date: Instant | UnsetType | None = UNSET
    recurrence: Recurrence | UnsetType | None = UNSET
    epic: Epic | UnsetType | None = UNSET
    position: Position | UnsetType = UNSET

    def fields(self) -> dict[str, Any]:
        """The fields this edit sets, by name."""
        return {
            name: getattr(self, name)
            for name in self.__struct_fields__
            if getattr(self, name) is not UNSET
        }

    def validate(self) -> None:
        if not self.fields():
            raise InvalidPayload("changes must set at least one field")
        _check_recurrence(self.recurrence)
        _check_dates(self.start_date, self.due_date)


class TaskCreate(Payload):
    board_id: uuid.UUID
    title: Title
    description: Description | None = None
    status: TaskStatus = TaskStatus.TODO
    priority: TaskPriority = TaskPriority.MEDIUM
    assignee_id: uuid.UUID | None = None
    assigned_role: TeamRole | None = None
    tags: Tags = msgspec.field(default_factory=list)
    start_date: Instant | None = None
    due_date: Instant | None = None
    recurrence: Recurrence | None = None
    epic: Epic | None = None
    position: Position | None = None
    op_id: uuid.UUID | None = None

    def validate(self) -> None:
        _check_recurrence(self.recurrence)
        _check_dates(self.start_date, self.due_date)


class TaskUpdate(Payload):
    task_id: uuid.UUID
    base_version: Version
    changes: TaskChanges
    op_id: uuid.UUID | None = None

    def validate(self) -> None:
        self.changes.validate()


class TaskMove(Payload):
    task_id: uuid.UUID
    base_version: Version
    position: Position
    status: TaskStatus | UnsetType = UNSET
    op_id: uuid.UUID | None = None

    def as_changes(self) -> TaskChanges:
        return TaskChanges(status=self.status, position=self.position)


class TaskDelete(Payload):
    task_id: uuid.UUID
    base_version: Version | None = None
    op_id: uuid.UUID | None = None


# -- notifications -----------------------------------------------------------


NotificationCursor = Annotated[str, Meta(min_length=1, max_length=200)]
NotificationIds = Annotated[list[uuid.UUID], Meta(min_length=1, max_length=500)]


class NotificationsList(Payload):
    """`before`: the `next` cursor of the previous page; absent for the first page."""

    before: NotificationCursor | None = None
    limit: Annotated[int, Meta(ge=1, le=100)] = 50


class NotificationsRead(Payload):
    """Either `ids` (the caller's notifications to mark read) or `all: true`."""

    ids: NotificationIds | None = None
    all: bool | None = None

    def validate(self) -> None:
        if self.all is False:
            raise InvalidPayload("all may only be true", details={"field": "all"})
        if (self.ids is None) == (self.all is None):
            raise InvalidPayload("give exactly one of ids or all", details={"field": "ids"})


# -- reminders ---------------------------------------------------------------


class ReminderCreate(Payload):
    """A reminder for the caller; `remind_at` must carry a timezone and lie ahead."""

    task_id: uuid.UUID
    remind_at: Instant
    method: ReminderMethod = ReminderMethod.IN_APP
    op_id: uuid.UUID | None = None

    def validate(self) -> None:
        # checked against this server's clock; a reminder in the past would fire at once,
        # which is never what the client meant
        if self.remind_at <= datetime.now(UTC):
            raise InvalidPayload("remind_at must be in the future", details={"field": "remind_at"})


class ReminderList(Payload):
    task_id: uuid.UUID


class ReminderDismiss(Payload):
    reminder_id: uuid.UUID
    op_id: uuid.UUID | None = None


# -- chat --------------------------------------------------------------------

# what `chat:channels` returns at most
CHANNELS_LIMIT = 500
# a client sends `typing` on keystrokes; the room hears it at most this often per person
TYPING_EVERY_MS = 2000

ChannelName = Annotated[str, Meta(min_length=1, max_length=80)]
MessageBody = Annotated[str, Meta(min_length=1, max_length=10_000)]
PageSize = Annotated[int, Meta(ge=1, le=100)]


def _check_body(body: str) -> None:
    if not body.strip():
        raise InvalidPayload("body must not be blank", details={"field": "body"})


class ChatChannels(Payload):
    """The caller's channels and DMs, with unread counts."""


class ChatCreate(Payload):
    """A new channel; with `board_id`, a channel of that board (members must be on it)."""

    name: ChannelName
    board_id: uuid.UUID | None = None
    member_ids: Annotated[list[uuid.UUID], Meta(max_length=200)] = msgspec.field(
        default_factory=list
    )

    def validate(self) -> None:
        if not self.name.strip():
            raise InvalidPayload("name must not be blank", details={"field": "name"})


class ChatJoin(Payload):
    """Enter a channel's room; the reply holds the newest `limit` messages."""

    channel_id: uuid.UUID
    limit: PageSize = 50


class ChatLeave(Payload):
    channel_id: uuid.UUID


class ChatSend(Payload):
    """To a channel (`channel_id`), or to one person (`to_user_id`: their DM, made on
    first use). `client_msg_id` makes a resend store and show the message once."""

    body: MessageBody
    channel_id: uuid.UUID | None = None
    to_user_id: uuid.UUID | None = None
    client_msg_id: uuid.UUID | None = None

    def validate(self) -> None:
        if (self.channel_id is None) == (self.to_user_id is None):
            raise InvalidPayload(
                "give exactly one of channel_id or to_user_id", details={"field": "channel_id"}
            )
        _check_body(self.body)


class ChatEdit(Payload):
    message_id: uuid.UUID
    body: MessageBody

    def validate(self) -> None:
        _check_body(self.body)


class ChatDelete(Payload):
    message_id: uuid.UUID


class ChatHistory(Payload):
    """Newest first; `before` is the lowest seq of the previous page."""

    channel_id: uuid.UUID
    before: Annotated[int, Meta(ge=1, le=2**62)] | None = None
    limit: PageSize = 50


class ChatTyping(Payload):
    channel_id: uuid.UUID
    typing: bool = True


class ChatRead(Payload):
    """Everything up to `seq` is read (the marker never moves back)."""

    channel_id: uuid.UUID
    seq: Seq


# -- triage ------------------------------------------------------------------


class TriageCreate(Payload):
    board_id: uuid.UUID
    title: Annotated[str, Meta(min_length=1, max_length=200)]
    description: Description = ""
    priority: TriagePriority = TriagePriority.MEDIUM
    category: Annotated[str, Meta(min_length=1, max_length=50)] = "issue"


# -- REST bodies -------------------------------------------------------------


class Register(Payload):
    email: Email
    name: Name
    password: Password

    def validate(self) -> None:
        if not _EMAIL.match(self.email):
            raise InvalidPayload("email is not a valid address", details={"field": "email"})
        if not self.name.strip():
            raise InvalidPayload("name must not be blank", details={"field": "name"})
        if len(self.password.encode()) > 72:
            # bcrypt reads 72 bytes at most; a longer secret would be silently cut
            raise InvalidPayload(
                "password must be at most 72 bytes in UTF-8", details={"field": "password"}
            )


class Login(Payload):
    email: Annotated[str, Meta(max_length=254)]
    password: Annotated[str, Meta(max_length=1024)]


class RefreshRequest(Payload):
    refresh_token: Annotated[str, Meta(min_length=1, max_length=512)]


class LogoutRequest(Payload):
    refresh_token: Annotated[str, Meta(min_length=1, max_length=512)] | None = None


class BoardCreate(Payload):
    name: BoardName

    def validate(self) -> None:
        if not self.name.strip():
            raise InvalidPayload("name must not be blank", details={"field": "name"})


class MemberAdd(Payload):
    email: Email
    role: BoardRole = BoardRole.EDITOR


class TaskQuery(Payload):
    """Query string of `GET /api/boards/{id}/tasks` (values arrive as strings)."""

    status: TaskStatus | None = None
    assignee_id: uuid.UUID | None = None
    overdue: bool | None = None
    limit: Limit = 50
    after: Annotated[str, Meta(max_length=200)] | None = None


class AuditQuery(Payload):
    """Query string of `GET /api/admin/audit`; `type` ending in "." matches a prefix."""

    type: Annotated[str, Meta(min_length=1, max_length=100)] | None = None
    actor_id: uuid.UUID | None = None
    entity_type: Annotated[str, Meta(min_length=1, max_length=50)] | None = None
    entity_id: uuid.UUID | None = None
    correlation_id: Annotated[str, Meta(min_length=1, max_length=200)] | None = None
    since: Instant | None = None
    until: Instant | None = None
    limit: Limit = 50
    after: Annotated[str, Meta(max_length=200)] | None = None

    def validate(self) -> None:
        if self.since is not None and self.until is not None and self.until <= self.since:
            raise InvalidPayload("until must be after since", details={"field": "until"})


P = TypeVar("P", bound=Payload)


def check_text(raw: Any) -> None:
    """Refuse text no store can hold: NUL characters and lone surrogates."""
    pending = [raw]
    while pending:
        value = pending.pop()
        if isinstance(value, dict):
            pending.extend(value.keys())
            pending.extend(value.values())
        elif isinstance(value, list | tuple):
            pending.extend(value)
        elif isinstance(value, str):
            if "\x00" in value:
                raise InvalidPayload("text must not contain NUL characters")
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise InvalidPayload("text must be valid Unicode (no lone surrogates)") from None


def encoded_size(raw: Any) -> int:
    """Bytes of `raw` as JSON, the measure of the payload size limit."""
    try:
        return len(msgspec.json.encode(raw))
    except UnicodeEncodeError:
        raise InvalidPayload("text must be valid Unicode (no lone surrogates)") from None
    except TypeError:
        # msgpack clients can send what JSON has no form for (extension types,
        # timestamps); no payload field takes those
        raise InvalidPayload("payload holds a value of no JSON type") from None


def _check_instants(value: Strict, path: str = "$") -> None:
    """Refuse a time that has no UTC form: the calendar's first or last day with an
    offset that pushes it past year 1 or 9999. Stores and comparisons take UTC."""
    for name in value.__struct_fields__:
        field = getattr(value, name)
        if isinstance(field, Strict):
            _check_instants(field, f"{path}.{name}")
        elif isinstance(field, datetime):
            try:
                field.astimezone(UTC)
            except OverflowError:
                raise InvalidPayload(
                    f"{name} is out of range in UTC - at `{path}.{name}`",
                    details={"field": name},
                ) from None


def parse(kind: type[P], raw: Any, *, from_strings: bool = False) -> P:
    """Validate `raw` into `kind`, or raise InvalidPayload naming the bad field."""
    if not isinstance(raw, dict):
        raise InvalidPayload("payload must be an object")
    check_text(raw)
    try:
        value = msgspec.convert(raw, kind, strict=not from_strings)
    except msgspec.ValidationError as exc:
        raise InvalidPayload(str(exc)) from None
    _check_instants(value)
    value.validate()
    return value
