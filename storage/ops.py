"""Idempotent client writes: the first ack of (user, op_id) is kept and replayed."""

from __future__ import annotations

import uuid
from typing import Any

from protocol.errors import InvalidPayload
from storage.db import Connection


async def claim(
    conn: Connection, user_id: uuid.UUID, op_id: uuid.UUID, event: str, fingerprint: bytes
) -> Any | None:
    """Claim op_id inside the writing transaction; returns the earlier ack if it was done.

    A concurrent writer of the same op_id waits on the unique key until the first
    one commits (and then reads its ack) or rolls back (and then claims it itself).
    `fingerprint` identifies the payload: an op_id reused for a different write is
    refused rather than answered with another write's ack.
    """
    claimed = await conn.fetchval(
        """INSERT INTO processed_ops (user_id, op_id, event, fingerprint) VALUES ($1, $2, $3, $4)
           ON CONFLICT DO NOTHING RETURNING true""",
        user_id,
        op_id,
        event,
        fingerprint,
    )
    if claimed:
        return None
    row = await conn.fetchrow(
        "SELECT event, fingerprint, ack FROM processed_ops WHERE user_id = $1 AND op_id = $2",
        user_id,
        op_id,
    )
    if row["event"] != event or row["fingerprint"] != fingerprint:
        raise InvalidPayload("op_id was already used for a different write", {"field": "op_id"})
    return row["ack"]


async def record(conn: Connection, user_id: uuid.UUID, op_id: uuid.UUID, ack: Any) -> None:
    await conn.execute(
        "UPDATE processed_ops SET ack = $3 WHERE user_id = $1 AND op_id = $2", user_id, op_id, ack
    )


async def prune(conn: Connection, older_than_seconds: int) -> int:
    result = await conn.execute(
        "DELETE FROM processed_ops WHERE created_at < now() - make_interval(secs => $1)",
        float(older_than_seconds),
    )
    return int(result.split()[-1])
