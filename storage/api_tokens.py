"""Bots' API tokens, stored as SHA-256 hashes with their scopes and expiry.

The secret is 256 random bits, so the fast hash of storage/sessions.py is
enough (no bcrypt) and a lookup by hash is one index probe. Neither the secret
nor its hash ever leaves this module.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

import asyncpg

from protocol.bots import ApiToken, Scope
from storage.db import Connection
from storage.sessions import hash_token

_COLUMNS = "id, user_id, name, scopes, expires_at, revoked_at, created_by, created_at"


def _token(row: asyncpg.Record) -> ApiToken:
    return ApiToken(
        id=row["id"],
        bot_id=row["user_id"],
        name=row["name"],
        scopes=[Scope(s) for s in row["scopes"]],
        expires_at=row["expires_at"],
        revoked_at=row["revoked_at"],
        created_by=row["created_by"],
        created_at=row["created_at"],
    )


@dataclass(frozen=True)
class FoundToken:
    """A token found by its secret; `expired` by the database's clock."""

    token: ApiToken
    expired: bool


async def create(
    conn: Connection,
    bot_id: uuid.UUID,
    secret: str,
    *,
    name: str,
    scopes: list[Scope],
    days: int,
    created_by: uuid.UUID,
) -> ApiToken:
    row = await conn.fetchrow(
        f"""INSERT INTO api_tokens (user_id, name, token_hash, scopes, expires_at, created_by)
            VALUES ($1, $2, $3, $4::text[], now() + $5::interval, $6)
            RETURNING {_COLUMNS}""",
        bot_id,
        name.strip(),
        hash_token(secret),
        sorted(s.value for s in scopes),
        timedelta(days=days),
        created_by,
    )
    return _token(row)


async def find(conn: Connection, secret: str) -> FoundToken | None:
    row = await conn.fetchrow(
        f"""SELECT {_COLUMNS}, expires_at <= now() AS expired
            FROM api_tokens WHERE token_hash = $1""",
        hash_token(secret),
    )
    return FoundToken(_token(row), row["expired"]) if row else None


async def is_live(conn: Connection, token_id: uuid.UUID) -> bool:
    """True while the token is neither revoked nor expired."""
    return bool(
        await conn.fetchval(
            """SELECT EXISTS (SELECT 1 FROM api_tokens WHERE id = $1
                   AND revoked_at IS NULL AND expires_at > now())""",
            token_id,
        )
    )


async def list_for_bot(conn: Connection, bot_id: uuid.UUID) -> list[ApiToken]:
    """Every token of the bot, revoked and expired ones too, newest first."""
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM api_tokens WHERE user_id = $1 ORDER BY created_at DESC, id",
        bot_id,
    )
    return [_token(r) for r in rows]


async def revoke(conn: Connection, bot_id: uuid.UUID, token_id: uuid.UUID) -> bool | None:
    """Revoke one of the bot's tokens.

    True when this call revoked it, False when it already was revoked, None when
    the bot has no such token. (`now()` is the transaction's start, so a
    revoked_at equal to it was set by this statement.)
    """
    row = await conn.fetchrow(
        """UPDATE api_tokens SET revoked_at = coalesce(revoked_at, now())
           WHERE id = $1 AND user_id = $2
           RETURNING revoked_at = now() AS revoked_now""",
        token_id,
        bot_id,
    )
    return bool(row["revoked_now"]) if row else None
