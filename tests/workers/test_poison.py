"""A record that can never be handled is skipped; the ones behind it still are."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable

from protocol.records import encode
from tests.support import Hub
from tests.workers.kafka_tools import foreign_event, produce


async def test_a_poison_record_does_not_stall_the_audit_trail(
    start_hub: Callable[..., Awaitable[Hub]],
) -> None:
    hub = await start_hub(EMBEDDED_WORKERS="audit")
    board_id, task_id = str(uuid.uuid4()), str(uuid.uuid4())
    # valid JSON and a valid envelope, but PostgreSQL cannot store a NUL in text
    poison = foreign_event(
        board_id, task_id, changes={"title": {"before": "a\u0000", "after": "b"}}
    )
    good = foreign_event(board_id, task_id)
    await produce(
        hub.settings.kafka_bootstrap_servers,
        hub.settings.kafka_topic_prefix + "task_events",
        [encode(poison), encode(good)],
        key=task_id.encode(),
    )
    conn = await hub.db()
    try:
        for _ in range(300):
            stored = {r["event_id"] for r in await conn.fetch("SELECT event_id FROM event_logs")}
            if good.event_id in stored:
                break
            await asyncio.sleep(0.1)
    finally:
        await conn.close()
    assert stored == {good.event_id}
