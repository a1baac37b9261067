"""The audit trail's wire shapes: what an `audit_events` record carries, and an entry.

Account and membership changes reach the audit worker as records of topic
`audit_events` (the general outbox envelope, `OutboxRecord`); its `payload` is an
`AuditPayload`. Task events need no payload of their own: the worker reads them
from `task_events`. Both end as `AuditEntry` rows, which is what admins read.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

import msgspec
from msgspec import Meta

AUDIT_TOPIC = "audit_events"


class AuditType(StrEnum):
    """Audit types written by the hub itself; task types come from `task_events`."""

    USER_REGISTERED = "user.registered"
    USER_LOGIN = "user.login"
    USER_LOGOUT = "user.logout"
    # bot accounts are users, so their records share the `user.` retention
    BOT_CREATED = "user.bot_created"
    API_TOKEN_CREATED = "user.api_token_created"
    API_TOKEN_REVOKED = "user.api_token_revoked"
    BOARD_MEMBER_ADDED = "board.member_added"
    BOARD_MEMBER_REMOVED = "board.member_removed"


class EntityType(StrEnum):
    TASK = "task"
    USER = "user"
    BOARD = "board"


class AuditMetadata(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Where an action came from (seed 001's `metadata`), as far as the hub knows it."""

    ip: Annotated[str, Meta(max_length=100)] | None = None
    user_agent: Annotated[str, Meta(max_length=500)] | None = None
    session_id: uuid.UUID | None = None


class AuditPayload(msgspec.Struct, kw_only=True, forbid_unknown_fields=False):
    """The `payload` of an `audit_events` record.

    `data` is what the action changed (the member added and their role, ...);
    it becomes the entry's `payload`, kept apart from who did it and from where.
    """

    actor_id: uuid.UUID | None = None
    entity_type: EntityType
    entity_id: uuid.UUID | None = None
    metadata: AuditMetadata = msgspec.field(default_factory=AuditMetadata)
    data: dict[str, Any] = msgspec.field(default_factory=dict)


class AuditEntry(msgspec.Struct, kw_only=True):
    """One row of the audit trail, as `GET /api/admin/audit` returns it."""

    id: int
    event_id: uuid.UUID
    type: str
    actor_id: uuid.UUID | None
    entity_type: str
    entity_id: uuid.UUID | None
    payload: dict[str, Any]
    metadata: dict[str, Any]
    correlation_id: str | None
    created_at: datetime
