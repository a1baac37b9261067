"""Periodic housekeeping of this node: forget op_id acks older than their window."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Coroutine
from typing import Any

from storage import ops, outages
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
        except Exception as exc:
            if outages.is_outage(exc):
                log.warning(
                    "pruning op_id acks waits for the database",
                    extra={"error": outages.describe(exc)},
                )
            else:
                log.exception("pruning op_id acks failed; retrying later")
        await asyncio.sleep(PRUNE_EVERY_SECONDS)


@contextlib.asynccontextmanager
async def owned(loop: Coroutine[Any, Any, None], name: str) -> AsyncIterator[None]:
    """Run a node's periodic loop while the context lives; cancel and await it after."""
    task = asyncio.create_task(loop, name=name)
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def running(pool: Pool) -> contextlib.AbstractAsyncContextManager[None]:
    return owned(_prune_forever(pool), "prune-op-acks")
