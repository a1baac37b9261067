"""Bot accounts on the wire: token scopes, the token format, REST bodies and shapes.

A bot is a user with role `bot` that connects with an API token instead of a
password. The token carries scopes; a socket event that needs a scope the
token lacks is `forbidden` (see `ClientEventSpec.scope` in protocol/catalog.py).
"""

from __future__ import annotations

import secrets
import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated

import msgspec
from msgspec import Meta

from protocol.errors import InvalidPayload
from protocol.models import BoardRole, UserRole
from protocol.payloads import Name, Payload

# Every API token starts with this, so the hub (and secret scanners) can tell it
# from a JWT access token at a glance.
API_TOKEN_PREFIX = "thb_"


def new_secret() -> str:
    """A fresh API token: the prefix and 256 random bits, URL-safe."""
    return API_TOKEN_PREFIX + secrets.token_urlsafe(32)


DEFAULT_TOKEN_DAYS = 90
MAX_TOKEN_DAYS = 365


class Scope(StrEnum):
    CHAT_READ = "chat:read"
    CHAT_WRITE = "chat:write"
    TASKS_READ = "tasks:read"
    TASKS_WRITE = "tasks:write"


def is_api_token(token: str) -> bool:
    return token.startswith(API_TOKEN_PREFIX)


TokenName = Annotated[str, Meta(min_length=1, max_length=100)]
Scopes = Annotated[list[Scope], Meta(min_length=1, max_length=len(Scope))]
TokenDays = Annotated[int, Meta(ge=1, le=MAX_TOKEN_DAYS)]


class BotCreate(Payload):
    """`POST /api/bots`: with `board_id`, the bot joins that board as `role` (editor)."""

    name: Name
    board_id: uuid.UUID | None = None
    role: BoardRole | None = None

    def validate(self) -> None:
        if not self.name.strip():
            raise InvalidPayload("name must not be blank", details={"field": "name"})
        if self.role is not None and self.board_id is None:
            raise InvalidPayload("role needs a board_id", details={"field": "role"})
        if self.role == BoardRole.OWNER:
            raise InvalidPayload(
                "a bot cannot own a board; use editor or viewer", details={"field": "role"}
            )


class TokenCreate(Payload):
    """`POST /api/bots/{id}/tokens`: a token with `scopes` for `expires_in_days` days."""

    name: TokenName
    scopes: Scopes
    expires_in_days: TokenDays = DEFAULT_TOKEN_DAYS

    def validate(self) -> None:
        if not self.name.strip():
            raise InvalidPayload("name must not be blank", details={"field": "name"})
        if len(set(self.scopes)) != len(self.scopes):
            raise InvalidPayload("scopes must not repeat", details={"field": "scopes"})


class Bot(msgspec.Struct, kw_only=True):
    """A bot account; `email` is made up (under `.invalid`) and is what add-member takes."""

    id: uuid.UUID
    email: str
    name: str
    role: UserRole
    is_active: bool
    created_by: uuid.UUID | None
    created_at: datetime


class ApiToken(msgspec.Struct, kw_only=True):
    """A bot's token as listed; the secret itself is shown once, at creation."""

    id: uuid.UUID
    bot_id: uuid.UUID
    name: str
    scopes: list[Scope]
    expires_at: datetime
    revoked_at: datetime | None
    created_by: uuid.UUID | None
    created_at: datetime
