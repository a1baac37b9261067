"""Bot tokens at connect: who the token speaks for, and why it is refused.

The sibling of `accounts.authenticate` (people's JWTs). A refusal names its
reason (`invalid_token`, `token_revoked`, `token_expired`, `account_inactive`)
so a bot's operator knows whether to fix a typo or mint a new token.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from handlers import accounts
from handlers.deps import Deps
from protocol.errors import Unauthorized
from protocol.models import User
from storage import api_tokens, users


@dataclass(frozen=True)
class BotLogin:
    user: User
    token_id: uuid.UUID
    scopes: frozenset[str]
    expires_at: datetime  # its connections are closed then (handlers/expiry.py)


def token_revoked() -> Unauthorized:
    """Why a revoked token is refused at connect, and why its connections are closed."""
    return Unauthorized("api token was revoked", {"reason": "token_revoked"})


async def authenticate(deps: Deps, secret: str) -> BotLogin:
    async with deps.pool.acquire() as conn:
        found = await api_tokens.find(conn, secret)
        if found is None:
            raise Unauthorized("api token is not valid", {"reason": "invalid_token"})
        token = found.token
        if token.revoked_at is not None:
            raise token_revoked()
        if found.expired:
            raise Unauthorized(
                f"api token expired at {token.expires_at.isoformat()}; create a new one",
                {"reason": "token_expired"},
            )
        user = await users.get(conn, token.bot_id)
    if user is None or not user.is_active:
        raise accounts.account_inactive()
    return BotLogin(
        user=user,
        token_id=token.id,
        scopes=frozenset(s.value for s in token.scopes),
        expires_at=token.expires_at,
    )


async def still_live(deps: Deps, token_id: uuid.UUID) -> bool:
    """Asked once more after a bot's connection is registered, to close the race
    with a revocation that swept the connections just before it appeared."""
    async with deps.pool.acquire() as conn:
        return await api_tokens.is_live(conn, token_id)
