"""Periodic housekeeping of this node: forget op_id acks older than their window."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from storage import ops
from storage.db import Pool

log = logging.getLogger(__name__)

# How long a resent write is recognised by its op_id (documented in PROTOCOL.md).
OP_ACK_RETENTION_SECONDS = 24 * 3600
PRUNE_EVERY_SECONDS = 600


async def _prune_forever(pool: Pool) -> None:
    while True:
        try:
            async with pool.acquire() as conn:
                removed = await ops.prune(conn, OP_ACK_RETENTION_SECONDS)
            if removed:
                log.info("pruned op_id acks", extra={"removed": removed})
        except Exception:
            log.exception("pruning op_id acks failed; retrying later")
        await asyncio.sleep(PRUNE_EVERY_SECONDS)


@contextlib.asynccontextmanager
async def running(pool: Pool) -> AsyncIterator[None]:
    task = asyncio.create_task(_prune_forever(pool), name="prune-op-acks")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
