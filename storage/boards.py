"""Boards and their members."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable
from dataclasses import dataclass

import asyncpg

from protocol.errors import Conflict, NotFound
from protocol.models import Board, BoardRole, Member
from storage.db import Connection

_BOARD = "b.id, b.name, b.owner_id, b.last_seq AS seq, b.created_at"


def _board(row: asyncpg.Record) -> Board:
    return Board(**{k: row[k] for k in Board.__struct_fields__ if k in row.keys()})


async def create(conn: Connection, name: str, owner_id: uuid.UUID) -> Board:
    row = await conn.fetchrow(
        f"""WITH b AS (INSERT INTO boards (name, owner_id) VALUES ($1, $2)
                       RETURNING id, name, owner_id, last_seq, created_at)
            SELECT {_BOARD}, 'owner' AS role FROM b""",
        name.strip(),
        owner_id,
    )
    await conn.execute(
        "INSERT INTO board_members (board_id, user_id, role) VALUES ($1, $2, 'owner')",
        row["id"],
        owner_id,
    )
    return _board(row)


async def list_for_user(conn: Connection, user_id: uuid.UUID) -> list[Board]:
    rows = await conn.fetch(
        f"""SELECT {_BOARD}, m.role FROM boards b
            JOIN board_members m ON m.board_id = b.id AND m.user_id = $1
            ORDER BY b.created_at, b.id""",
        user_id,
    )
    return [_board(r) for r in rows]


async def get_for_member(conn: Connection, board_id: uuid.UUID, user_id: uuid.UUID) -> Board | None:
    """The board with the caller's role, or None when it does not exist."""
    row = await conn.fetchrow(
        f"""SELECT {_BOARD}, m.role FROM boards b
            LEFT JOIN board_members m ON m.board_id = b.id AND m.user_id = $2
            WHERE b.id = $1""",
        board_id,
        user_id,
    )
    return _board(row) if row else None


@dataclass(frozen=True)
class Access:
    """What `board:join` needs to know before it enters the rooms."""

    role: BoardRole | None  # None: not a member
    channel_id: uuid.UUID | None  # the board's chat channel


async def access(conn: Connection, board_id: uuid.UUID, user_id: uuid.UUID) -> Access | None:
    """The caller's role and the board's chat channel, or None when the board does not
    exist: one round trip where the join made up to three (role, existence, channel)."""
    row = await conn.fetchrow(
        """SELECT m.role, c.id AS channel_id FROM boards b
           LEFT JOIN board_members m ON m.board_id = b.id AND m.user_id = $2
           LEFT JOIN chat_channels c ON c.board_id = b.id AND c.is_board_channel
           WHERE b.id = $1""",
        board_id,
        user_id,
    )
    if row is None:
        return None
    role = BoardRole(row["role"]) if row["role"] else None
    return Access(role=role, channel_id=row["channel_id"])


async def not_members(
    conn: Connection, pairs: Iterable[tuple[uuid.UUID, uuid.UUID]]
) -> set[tuple[uuid.UUID, uuid.UUID]]:
    """Of these (board, user) pairs, the ones that are not a membership (any more):
    one query for every board a node's connections have joined."""
    wanted = sorted(set(pairs))
    if not wanted:
        return set()
    rows = await conn.fetch(
        """SELECT p.board_id, p.user_id FROM unnest($1::uuid[], $2::uuid[]) AS p(board_id, user_id)
           WHERE NOT EXISTS (SELECT 1 FROM board_members m
                             WHERE m.board_id = p.board_id AND m.user_id = p.user_id)""",
        [board_id for board_id, _ in wanted],
        [user_id for _, user_id in wanted],
    )
    return {(row["board_id"], row["user_id"]) for row in rows}


async def role_of(conn: Connection, board_id: uuid.UUID, user_id: uuid.UUID) -> BoardRole | None:
    role = await conn.fetchval(
        "SELECT role FROM board_members WHERE board_id = $1 AND user_id = $2", board_id, user_id
    )
    return BoardRole(role) if role else None


async def exists(conn: Connection, board_id: uuid.UUID) -> bool:
    return bool(await conn.fetchval("SELECT EXISTS (SELECT 1 FROM boards WHERE id = $1)", board_id))


async def members(conn: Connection, board_id: uuid.UUID) -> list[Member]:
    rows = await conn.fetch(
        """SELECT u.id AS user_id, u.email::text AS email, u.name, m.role
           FROM board_members m JOIN users u ON u.id = m.user_id
           WHERE m.board_id = $1 ORDER BY m.created_at, u.id""",
        board_id,
    )
    return [Member(**dict(r)) for r in rows]


async def add_member(
    conn: Connection, board_id: uuid.UUID, user_id: uuid.UUID, role: BoardRole
) -> Member:
    try:
        row = await conn.fetchrow(
            """WITH m AS (INSERT INTO board_members (board_id, user_id, role) VALUES ($1, $2, $3)
                          RETURNING user_id, role)
               SELECT u.id AS user_id, u.email::text AS email, u.name, m.role
               FROM m JOIN users u ON u.id = m.user_id""",
            board_id,
            user_id,
            role.value,
        )
    except asyncpg.UniqueViolationError:
        raise Conflict("this user is already a member of the board") from None
    return Member(**dict(row))


async def remove_member(conn: Connection, board_id: uuid.UUID, user_id: uuid.UUID) -> None:
    removed = await conn.fetchval(
        "DELETE FROM board_members WHERE board_id = $1 AND user_id = $2 RETURNING role",
        board_id,
        user_id,
    )
    if removed is None:
        raise NotFound("no such member on this board")


async def lock(conn: Connection, board_id: uuid.UUID) -> None:
    """Serialise a board's writers until the transaction ends: two owners removing
    each other cannot leave it with none, and a check made under the lock (is this
    event kept already?) still holds when the next seq is taken.

    A task write locks its task and then its board (task_events.append), so a
    holder of this lock must not then UPDATE, DELETE or lock a task row: the two
    would wait on each other crosswise. Reading tasks, and inserting rows that
    reference them, is fine."""
    if await conn.fetchval("SELECT true FROM boards WHERE id = $1 FOR UPDATE", board_id) is None:
        raise NotFound("board not found")


async def lock_many(conn: Connection, board_ids: Collection[uuid.UUID]) -> None:
    """`lock` for several boards in one round trip, in id order, so two lockers of
    overlapping sets never wait on each other crosswise. A board that does not exist
    is simply not locked (nothing can be kept on it). `lock`'s rule on task rows
    holds here too."""
    await conn.execute(
        "SELECT true FROM boards WHERE id = ANY($1::uuid[]) ORDER BY id FOR UPDATE",
        sorted(set(board_ids)),
    )


async def count_owners(conn: Connection, board_id: uuid.UUID) -> int:
    return int(
        await conn.fetchval(
            "SELECT count(*) FROM board_members WHERE board_id = $1 AND role = 'owner'", board_id
        )
    )


async def share_a_board(conn: Connection, a: uuid.UUID, b: uuid.UUID) -> bool:
    """Whether two users are members of some board together (who may message whom)."""
    found = await conn.fetchval(
        """SELECT EXISTS (SELECT 1 FROM board_members x JOIN board_members y
                          ON y.board_id = x.board_id AND y.user_id = $2
                          WHERE x.user_id = $1)""",
        a,
        b,
    )
    return bool(found)
