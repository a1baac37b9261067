"""The Kafka broker stopped for 60 s under a steady stream of edits, and started again.

What must hold (issue 7, point 7): edits go on being acknowledged; no outbox row is
marked published without the broker's acknowledgement (`acks=all`); the backlog
drains once the broker is back; and the notifications equal the events, each once.
The embedded broker keeps its log in memory, so the restarted broker has forgotten
everything: the relay notices and publishes its recent rows again, and the
notifier reads them again, which is the harder case for "each once".
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg
import pytest

from protocol.records import decode_task_event
from tests.chaos.clients import (
    acked_edits_stored,
    assigning_editors,
    close_all,
    notified_once_each,
    unpublished,
)
from tests.chaos.stack import Deployment, until
from tests.workers.kafka_tools import read_topic

OUTAGE = 60.0
EDITORS = 4


async def _fetch(deployed: Deployment, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(deployed.postgres.url)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


@pytest.mark.timeout(300)
async def test_a_minute_without_kafka_loses_nothing_and_notifies_each_event_once(
    deployed: Deployment,
) -> None:
    node = await deployed.node("node-a")
    await deployed.worker("outbox", OUTBOX_POLL_INTERVAL="0.2")
    await deployed.worker("notifier")
    people, editors = await assigning_editors(node.url, EDITORS)
    stop = asyncio.Event()
    editing = [asyncio.create_task(editor.run(stop, pause=0.2)) for editor in editors]
    try:
        await until(lambda: all(len(e.acked) >= 3 for e in editors), 30, "edits before")
        await until(lambda: _none_unpublished(deployed), 30, "the relay publishing before")

        await asyncio.to_thread(deployed.broker.stop)
        stopped_at = time.monotonic()
        acked_at_stop = sum(len(e.acked) for e in editors)
        # What was committed from here on cannot have been acknowledged by a broker.
        await asyncio.sleep(2.0)
        fence = (await _fetch(deployed, "SELECT coalesce(max(id), 0) AS id FROM task_events"))[0]
        await asyncio.sleep(OUTAGE - (time.monotonic() - stopped_at))
        during = sum(len(e.acked) for e in editors) - acked_at_stop
        after_fence = await _fetch(
            deployed, "SELECT published_at FROM task_events WHERE id > $1", fence["id"]
        )
        assert after_fence, "no edit was committed while the broker was down"
        assert all(r["published_at"] is None for r in after_fence), (
            "a row was marked published while no broker was there to acknowledge it"
        )

        await asyncio.to_thread(deployed.broker.start)
        started_at = time.monotonic()
        await asyncio.sleep(3.0)  # edits go on across the restart
    finally:
        stop.set()
        await asyncio.gather(*editing)
    refusals = [code for e in editors for code in e.refusals]
    assert not refusals, f"edits were refused although only Kafka was down: {refusals}"
    await until(lambda: _none_unpublished(deployed), 90, "the backlog draining")
    drained = time.monotonic() - started_at

    history = await acked_edits_stored(deployed.postgres.url, people.board_id, editors)
    topic = await read_topic(deployed.broker.bootstrap, f"chaos-{deployed.run}-task_events", 30)
    on_kafka = {str(decode_task_event(r.value).event_id) for r in topic}
    assert {event_id for _, event_id in history} <= on_kafka

    # One notification per assignment, to the member it was handed to; never twice.
    notified = await notified_once_each(deployed.postgres.url, editors, within=60)
    print(
        f"\nkafka down {OUTAGE:.0f} s: {during} edits acked meanwhile, "
        f"{len(history)} events in all; backlog drained {drained:.1f} s after the broker "
        f"came back; {notified} notifications, one per assignment"
    )
    await close_all([e.hub for e in editors])


async def _none_unpublished(deployed: Deployment) -> bool:
    return await unpublished(deployed.postgres.url) == 0
