"""Users: accounts of people, admins and bots."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from protocol.bots import Bot
from protocol.errors import Conflict
from protocol.models import PublicUser, User
from storage.db import Connection

_USER_COLUMNS = "id, email::text AS email, name, role, team_role, is_active, created_at"


def _user(row: asyncpg.Record) -> User:
    return User(**{k: row[k] for k in User.__struct_fields__})


async def create(conn: Connection, email: str, name: str, password_hash: str) -> User:
    try:
        row = await conn.fetchrow(
            f"""INSERT INTO users (email, name, password_hash) VALUES ($1, $2, $3)
                RETURNING {_USER_COLUMNS}""",
            email.strip(),
            name.strip(),
            password_hash,
        )
    except asyncpg.UniqueViolationError:
        raise Conflict("an account with this email already exists") from None
    return _user(row)


_BOT_COLUMNS = "id, email::text AS email, name, role, is_active, created_by, created_at"


async def create_bot(conn: Connection, name: str, created_by: uuid.UUID) -> Bot:
    """A bot account: no password (it cannot log in), an address nobody can own.

    The address is made from the bot's id under `.invalid` (RFC 2606), so it can
    collide neither with a person's nor with another bot's.
    """
    bot_id = uuid.uuid4()
    row = await conn.fetchrow(
        f"""INSERT INTO users (id, email, name, role, created_by)
            VALUES ($1, $2, $3, 'bot', $4)
            RETURNING {_BOT_COLUMNS}""",
        bot_id,
        f"bot-{bot_id.hex}@bots.invalid",
        name.strip(),
        created_by,
    )
    return Bot(**dict(row))


async def get_bot(conn: Connection, bot_id: uuid.UUID) -> Bot | None:
    row = await conn.fetchrow(
        f"SELECT {_BOT_COLUMNS} FROM users WHERE id = $1 AND role = 'bot'", bot_id
    )
    return Bot(**dict(row)) if row else None


async def bot_named(conn: Connection, name: str, created_by: uuid.UUID) -> Bot | None:
    """A bot someone made, by its name (the demo finds its own bot again)."""
    row = await conn.fetchrow(
        f"""SELECT {_BOT_COLUMNS} FROM users
            WHERE role = 'bot' AND name = $1 AND created_by = $2 ORDER BY created_at LIMIT 1""",
        name,
        created_by,
    )
    return Bot(**dict(row)) if row else None


async def get(conn: Connection, user_id: uuid.UUID) -> User | None:
    row = await conn.fetchrow(f"SELECT {_USER_COLUMNS} FROM users WHERE id = $1", user_id)
    return _user(row) if row else None


async def get_with_login(
    conn: Connection, user_id: uuid.UUID, session_id: uuid.UUID | None
) -> tuple[User, bool] | None:
    """The user, and whether the login `session_id` names is still live (True without
    one), in one round trip: every socket connect pays for this, so the session check
    rides on the user lookup instead of a second query (see sessions.family_is_live,
    whose condition this repeats)."""
    row = await conn.fetchrow(
        f"""SELECT {_USER_COLUMNS},
                   ($2::uuid IS NULL OR EXISTS (
                       SELECT 1 FROM sessions s WHERE s.family_id = $2
                       AND s.revoked_at IS NULL AND s.expires_at > now())) AS login_live
            FROM users WHERE id = $1""",
        user_id,
        session_id,
    )
    return (_user(row), bool(row["login_live"])) if row else None


@dataclass(frozen=True, slots=True)
class LiveLogin:
    """What a connection was let in on: its user, and the person's login (a refresh
    token family) or the bot's API token."""

    sid: str
    user_id: uuid.UUID
    login_id: uuid.UUID | None
    token_id: uuid.UUID | None


async def ended_logins(conn: Connection, logins: Sequence[LiveLogin]) -> dict[str, str]:
    """Of these connections, those whose user was deactivated, whose login ended
    (logged out, refresh token reused) or whose API token was revoked: sid -> the
    reason (`account_inactive`, `session_revoked`, `token_revoked`). One query for
    all of a node's connections, with the conditions of get_with_login and
    api_tokens.is_live."""
    if not logins:
        return {}
    rows = await conn.fetch(
        """SELECT sid, reason FROM (
             SELECT c.sid, CASE
               WHEN u.id IS NULL OR NOT u.is_active THEN 'account_inactive'
               WHEN c.login_id IS NOT NULL AND NOT EXISTS (
                   SELECT 1 FROM sessions s WHERE s.family_id = c.login_id
                   AND s.revoked_at IS NULL AND s.expires_at > now()) THEN 'session_revoked'
               WHEN c.token_id IS NOT NULL AND NOT EXISTS (
                   SELECT 1 FROM api_tokens t WHERE t.id = c.token_id
                   AND t.revoked_at IS NULL) THEN 'token_revoked'
             END AS reason
             FROM unnest($1::text[], $2::uuid[], $3::uuid[], $4::uuid[])
                  AS c(sid, user_id, login_id, token_id)
             LEFT JOIN users u ON u.id = c.user_id
           ) checked WHERE reason IS NOT NULL""",
        [login.sid for login in logins],
        [login.user_id for login in logins],
        [login.login_id for login in logins],
        [login.token_id for login in logins],
    )
    return {row["sid"]: row["reason"] for row in rows}


async def get_credentials(conn: Connection, email: str) -> tuple[User, str | None] | None:
    """The user and password hash for a login; emails compare case-insensitively."""
    row = await conn.fetchrow(
        f"SELECT {_USER_COLUMNS}, password_hash FROM users WHERE email = $1", email.strip()
    )
    return (_user(row), row["password_hash"]) if row else None


async def get_by_email(conn: Connection, email: str) -> User | None:
    row = await conn.fetchrow(f"SELECT {_USER_COLUMNS} FROM users WHERE email = $1", email.strip())
    return _user(row) if row else None


async def set_active(conn: Connection, user_id: uuid.UUID, active: bool) -> None:
    await conn.execute(
        "UPDATE users SET is_active = $2, updated_at = now() WHERE id = $1", user_id, active
    )


async def public(conn: Connection, user_ids: list[uuid.UUID]) -> list[PublicUser]:
    rows = await conn.fetch(
        "SELECT id, name FROM users WHERE id = ANY($1::uuid[]) ORDER BY name, id", user_ids
    )
    return [PublicUser(id=r["id"], name=r["name"]) for r in rows]
