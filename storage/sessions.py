"""Refresh-token sessions, stored as SHA-256 hashes.

A login starts a family; each refresh rotates to a new row of the same family.
Presenting a token that was already rotated means it leaked, so the whole
family is revoked.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from storage.db import Connection


def hash_token(token: str) -> bytes:
    # Refresh tokens are 256 random bits, so a fast hash is enough (no bcrypt).
    return hashlib.sha256(token.encode()).digest()


@dataclass(frozen=True)
class SessionRow:
    id: uuid.UUID
    family_id: uuid.UUID
    user_id: uuid.UUID
    expires_at: datetime
    rotated_at: datetime | None
    revoked_at: datetime | None
    expired: bool = False


async def create(
    conn: Connection,
    user_id: uuid.UUID,
    token: str,
    ttl: int,
    *,
    family_id: uuid.UUID | None = None,
    user_agent: str | None = None,
    ip: str | None = None,
) -> SessionRow:
    row = await conn.fetchrow(
        """INSERT INTO sessions (family_id, user_id, token_hash, expires_at, user_agent, ip)
           VALUES (coalesce($1, gen_random_uuid()), $2, $3, now() + $4::interval, $5, $6::inet)
           RETURNING id, family_id, user_id, expires_at, rotated_at, revoked_at""",
        family_id,
        user_id,
        hash_token(token),
        timedelta(seconds=ttl),
        user_agent,
        ip,
    )
    return SessionRow(**dict(row))


async def find_for_update(conn: Connection, token: str) -> SessionRow | None:
    row = await conn.fetchrow(
        """SELECT id, family_id, user_id, expires_at, rotated_at, revoked_at,
                  expires_at <= now() AS expired
           FROM sessions WHERE token_hash = $1 FOR UPDATE""",
        hash_token(token),
    )
    return SessionRow(**dict(row)) if row else None


async def mark_rotated(conn: Connection, session_id: uuid.UUID) -> None:
    await conn.execute("UPDATE sessions SET rotated_at = now() WHERE id = $1", session_id)


async def revoke_family(conn: Connection, family_id: uuid.UUID) -> None:
    await conn.execute(
        "UPDATE sessions SET revoked_at = now() WHERE family_id = $1 AND revoked_at IS NULL",
        family_id,
    )


async def family_is_live(conn: Connection, family_id: uuid.UUID) -> bool:
    """True while the login has a token that is neither revoked nor expired."""
    return bool(
        await conn.fetchval(
            """SELECT EXISTS (SELECT 1 FROM sessions WHERE family_id = $1
                   AND revoked_at IS NULL AND expires_at > now())""",
            family_id,
        )
    )
