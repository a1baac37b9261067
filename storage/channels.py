"""Chat channels: a board's channel, channels people open, and DMs; who is in them.

A board's channel has no member rows: its members are the board's members, so
joining or leaving a board is joining or leaving its channel, with nothing to
keep in step. Another channel on a board needs both (a member removed from the
board loses its channels). A DM has exactly its two member rows.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import asyncpg

from protocol.errors import InvalidPayload, NotFound
from protocol.models import Channel, ChannelKind, PublicUser
from storage.db import Connection

_COLUMNS = "c.id, c.kind, c.name, c.board_id, c.is_board_channel, c.last_seq, c.created_at"


def _member_of(channel: str, user: str) -> str:
    """SQL that is true when `user` may read and write `channel` (both SQL expressions)."""
    return f"""(
        ({channel}.board_id IS NULL OR EXISTS (
            SELECT 1 FROM board_members bm
            WHERE bm.board_id = {channel}.board_id AND bm.user_id = {user}))
        AND ({channel}.is_board_channel OR EXISTS (
            SELECT 1 FROM channel_members cm
            WHERE cm.channel_id = {channel}.id AND cm.user_id = {user})))"""


def _channel(row: asyncpg.Record) -> Channel:
    values = dict(row)
    values["kind"] = ChannelKind(values["kind"])
    return Channel(**values)


def dm_key(a: uuid.UUID, b: uuid.UUID) -> str:
    first, second = sorted((str(a), str(b)))
    return f"{first}:{second}"


async def get(conn: Connection, channel_id: uuid.UUID) -> Channel:
    """The channel with its explicit members; NotFound if there is none."""
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM chat_channels c WHERE c.id = $1", channel_id)
    if row is None:
        raise NotFound("channel not found")
    (channel,) = await _with_members(conn, [_channel(row)])
    return channel


async def is_member(conn: Connection, channel_id: uuid.UUID, user_id: uuid.UUID) -> bool:
    found = await conn.fetchval(
        f"SELECT {_member_of('c', '$2')} FROM chat_channels c WHERE c.id = $1",
        channel_id,
        user_id,
    )
    return bool(found)


async def member_ids(conn: Connection, channel_id: uuid.UUID) -> list[uuid.UUID]:
    """Every user who is a member now (a board channel's come from the board)."""
    rows = await conn.fetch(
        f"""SELECT u.id FROM users u, chat_channels c
            WHERE c.id = $1 AND u.is_active AND {_member_of("c", "u.id")}""",
        channel_id,
    )
    return [r["id"] for r in rows]


async def board_channel(conn: Connection, board_id: uuid.UUID) -> Channel:
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM chat_channels c WHERE c.board_id = $1 AND c.is_board_channel",
        board_id,
    )
    if row is None:
        raise NotFound("board not found")
    return _channel(row)


async def for_user(conn: Connection, user_id: uuid.UUID, limit: int) -> list[Channel]:
    """The user's channels with their read marker and unread count, DMs last."""
    rows = await conn.fetch(
        f"""SELECT {_COLUMNS}, coalesce(r.last_read_seq, 0) AS last_read_seq,
                   (SELECT count(*) FROM chat_messages m
                    WHERE m.channel_id = c.id AND m.seq > coalesce(r.last_read_seq, 0)
                      AND m.deleted_at IS NULL AND m.sender_id IS DISTINCT FROM $1) AS unread
            FROM chat_channels c
            LEFT JOIN channel_reads r ON r.channel_id = c.id AND r.user_id = $1
            WHERE {_member_of("c", "$1")}
            ORDER BY c.kind, c.name, c.created_at, c.id
            LIMIT $2""",
        user_id,
        limit,
    )
    return await _with_members(conn, [_channel(r) for r in rows])


async def _with_members(conn: Connection, channels: list[Channel]) -> list[Channel]:
    """Fill in the explicit members (DMs and channels other than a board's)."""
    wanted = [c.id for c in channels if not c.is_board_channel]
    if not wanted:
        return channels
    rows = await conn.fetch(
        """SELECT cm.channel_id, u.id, u.name FROM channel_members cm
           JOIN users u ON u.id = cm.user_id
           WHERE cm.channel_id = ANY($1::uuid[]) ORDER BY cm.joined_at, u.id""",
        wanted,
    )
    members: dict[uuid.UUID, list[PublicUser]] = {}
    for row in rows:
        members.setdefault(row["channel_id"], []).append(PublicUser(id=row["id"], name=row["name"]))
    for channel in channels:
        channel.members = members.get(channel.id, [])
    return channels


async def create(
    conn: Connection,
    *,
    name: str,
    board_id: uuid.UUID | None,
    creator_id: uuid.UUID,
    member_ids: Sequence[uuid.UUID],
) -> Channel:
    """A channel of `creator_id` and `member_ids` (the caller checked who may be added)."""
    row = await conn.fetchrow(
        f"""INSERT INTO chat_channels AS c (kind, name, board_id, created_by)
            VALUES ('channel', $1, $2, $3) RETURNING {_COLUMNS}""",
        name,
        board_id,
        creator_id,
    )
    await _add_members(conn, row["id"], [creator_id, *member_ids])
    return await get(conn, row["id"])


async def find_or_create_dm(conn: Connection, a: uuid.UUID, b: uuid.UUID) -> Channel:
    """The one DM of two users; made on first use, and two first uses make one."""
    if a == b:
        raise InvalidPayload("a direct message needs another user", {"field": "to_user_id"})
    key = dm_key(a, b)
    row = await conn.fetchrow(
        f"""INSERT INTO chat_channels AS c (kind, dm_key, created_by) VALUES ('dm', $1, $2)
            ON CONFLICT (dm_key) DO NOTHING RETURNING {_COLUMNS}""",
        key,
        a,
    )
    if row is not None:
        await _add_members(conn, row["id"], [a, b])
        return await get(conn, row["id"])
    found = await conn.fetchval("SELECT id FROM chat_channels WHERE dm_key = $1", key)
    return await get(conn, found)


async def _add_members(conn: Connection, channel_id: uuid.UUID, users: Sequence[uuid.UUID]) -> None:
    await conn.execute(
        """INSERT INTO channel_members (channel_id, user_id)
           SELECT $1, u FROM unnest($2::uuid[]) AS u ON CONFLICT DO NOTHING""",
        channel_id,
        list(dict.fromkeys(users)),
    )


async def next_seq(conn: Connection, channel_id: uuid.UUID) -> int:
    """Hand out the channel's next message seq; the row lock orders the channel's
    writers until the transaction ends, and a rollback gives the number back."""
    seq = await conn.fetchval(
        "UPDATE chat_channels SET last_seq = last_seq + 1 WHERE id = $1 RETURNING last_seq",
        channel_id,
    )
    if seq is None:
        raise NotFound("channel not found")
    return int(seq)


async def lock(conn: Connection, channel_id: uuid.UUID) -> None:
    """Serialise the channel's writers: a check made now (was this message stored
    already?) still holds when the next seq is taken."""
    if await conn.fetchval("SELECT true FROM chat_channels WHERE id = $1 FOR UPDATE", channel_id):
        return
    raise NotFound("channel not found")


async def mark_read(
    conn: Connection, channel_id: uuid.UUID, user_id: uuid.UUID, seq: int
) -> tuple[int, int]:
    """Move the user's read marker forward to `seq` (never back, never past the last
    message); returns the marker and the unread count after it."""
    marker = await conn.fetchval(
        """INSERT INTO channel_reads AS r (channel_id, user_id, last_read_seq)
           SELECT $1, $2, least($3, c.last_seq) FROM chat_channels c WHERE c.id = $1
           ON CONFLICT (channel_id, user_id) DO UPDATE
               SET last_read_seq = greatest(r.last_read_seq, excluded.last_read_seq)
           RETURNING last_read_seq""",
        channel_id,
        user_id,
        seq,
    )
    return int(marker), await unread(conn, channel_id, user_id, int(marker))


async def read_marker(conn: Connection, channel_id: uuid.UUID, user_id: uuid.UUID) -> int:
    value = await conn.fetchval(
        "SELECT last_read_seq FROM channel_reads WHERE channel_id = $1 AND user_id = $2",
        channel_id,
        user_id,
    )
    return int(value or 0)


async def unread(conn: Connection, channel_id: uuid.UUID, user_id: uuid.UUID, after: int) -> int:
    value = await conn.fetchval(
        """SELECT count(*) FROM chat_messages
           WHERE channel_id = $1 AND seq > $3 AND deleted_at IS NULL
             AND sender_id IS DISTINCT FROM $2""",
        channel_id,
        user_id,
        after,
    )
    return int(value)


async def matching_members(
    conn: Connection, channel_id: uuid.UUID, handles: Sequence[str]
) -> list[uuid.UUID]:
    """Members whose handle is among `handles`: the name without spaces, or the part
    of the email before the @, compared case-insensitively."""
    if not handles:
        return []
    rows = await conn.fetch(
        f"""SELECT u.id FROM users u, chat_channels c
            WHERE c.id = $1 AND u.is_active AND {_member_of("c", "u.id")}
              AND (lower(replace(u.name, ' ', '')) = ANY($2::text[])
                   OR lower(split_part(u.email, '@', 1)) = ANY($2::text[]))""",
        channel_id,
        [h.lower() for h in handles],
    )
    return [r["id"] for r in rows]


async def ids_on_board(conn: Connection, board_id: uuid.UUID) -> list[uuid.UUID]:
    """The board's channel and the other channels of the board."""
    rows = await conn.fetch("SELECT id FROM chat_channels WHERE board_id = $1", board_id)
    return [r["id"] for r in rows]
