"""A batch that failed because the database went away is retried, never skipped as
poison: also when the error raised is only the consequence of the dropped
connection (asyncpg's InterfaceError "connection is closed" from a rollback on it)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import asyncpg
from aiokafka import ConsumerRecord

from workers.kafka import _handle


def _record() -> ConsumerRecord:
    return ConsumerRecord(
        topic="t",
        partition=0,
        offset=7,
        timestamp=0,
        timestamp_type=0,
        key=None,
        value=b"{}",
        checksum=None,
        serialized_key_size=0,
        serialized_value_size=2,
        headers=(),
    )


def _after_a_dropped_connection() -> asyncpg.InterfaceError:
    try:
        try:
            raise asyncpg.ConnectionDoesNotExistError(
                "connection was closed in the middle of operation"
            )
        except asyncpg.ConnectionDoesNotExistError:
            # implicitly chained (__context__), as asyncpg raises it
            raise asyncpg.InterfaceError(  # noqa: B904
                "cannot call Transaction.rollback(): the underlying connection is closed"
            )
    except asyncpg.InterfaceError as exc:
        return exc


async def test_a_batch_cut_by_a_database_crash_is_retried_not_skipped() -> None:
    handled: list[Sequence[ConsumerRecord]] = []
    failures = [_after_a_dropped_connection()]

    async def handle(records: Sequence[ConsumerRecord]) -> None:
        if failures:
            raise failures.pop()
        handled.append(records)

    record = _record()
    assert await _handle(handle, [record], asyncio.Event(), "test") is True
    assert handled == [[record]]  # handled on the retry, not logged and skipped
