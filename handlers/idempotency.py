"""Writes that a client may resend: one transaction, applied once per op_id.

Clients resend unacknowledged writes after a reconnect with the same `op_id`;
the first ack is kept with the write and replayed to the resend.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import msgspec

from protocol.payloads import Payload
from storage import ops
from storage.db import Connection, Pool, transaction

T = TypeVar("T")


def fingerprint(payload: Payload) -> bytes:
    """What makes two writes the same write (request_id is only a tracing label)."""
    return hashlib.sha256(
        msgspec.json.encode(msgspec.structs.replace(payload, request_id=None))
    ).digest()


async def apply_once(
    pool: Pool,
    user_id: uuid.UUID,
    op_id: uuid.UUID | None,
    event: str,
    payload: Payload,
    apply: Callable[[Connection], Awaitable[tuple[Any, T]]],
) -> tuple[Any, T | None]:
    """Run `apply` in a transaction unless this op_id was done; returns (ack, result).

    `apply` returns the ack to keep and a result for the caller (what to emit after
    commit); a replay returns the kept ack and None.
    """
    async with transaction(pool) as conn:
        if op_id is not None:
            earlier = await ops.claim(conn, user_id, op_id, event, fingerprint(payload))
            if earlier is not None:
                return earlier, None
        ack, result = await apply(conn)
        if op_id is not None:
            await ops.record(conn, user_id, op_id, ack)
    return ack, result
