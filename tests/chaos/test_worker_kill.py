"""The outbox relay and the notifier killed -9 over and over while edits stream in.

A kill between sending and committing is the case that matters (issue 7, point
7): the relay dies after the broker acknowledged a batch but before it marked the
rows published, so it publishes them again; the notifier dies after it wrote the
notifications of a batch but before it committed the offsets, so it is handed the
records again. Each must be applied once. The kills go on until both cases were
seen (a record twice on the topic; the notifier logging a redelivery), so the test
proves the window was hit rather than hoping for it.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
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
from tests.chaos.stack import Deployment, Process, until
from tests.workers.kafka_tools import read_topic

EDITORS = 4
# Kill rounds go on until both windows were hit, for at most this long.
KILLING_FOR_AT_MOST = 200.0


async def _count(deployed: Deployment, sql: str) -> int:
    conn = await asyncpg.connect(deployed.postgres.url)
    try:
        return int(await conn.fetchval(sql))
    finally:
        await conn.close()


async def _topic_ids(deployed: Deployment) -> list[str]:
    records = await read_topic(deployed.broker.bootstrap, f"chaos-{deployed.run}-task_events", 30)
    return [str(decode_task_event(r.value).event_id) for r in records]


def _redeliveries(notifier: Process) -> int:
    return notifier.log().count('"event already notified; redelivered"')


async def _kill_once(worker: Process, progress: Any, rng: random.Random) -> None:
    """Start the worker, let it get going, and kill -9 it at a random moment of its work."""
    before = await progress()
    await worker.start()
    await until(lambda: _moved(progress, before), 30, f"{worker.args[-1]} making progress")
    await asyncio.sleep(rng.uniform(0.0, 0.4))
    await worker.kill()


async def _moved(progress: Any, before: int) -> bool:
    return bool(await progress() != before)


@pytest.mark.timeout(420)
async def test_workers_killed_between_send_and_commit_apply_each_event_once(
    deployed: Deployment,
) -> None:
    node = await deployed.node("node-a")
    relay = await deployed.worker("outbox", OUTBOX_BATCH_SIZE="5", OUTBOX_POLL_INTERVAL="0.2")
    notifier = await deployed.worker("notifier")
    people, editors = await assigning_editors(node.url, EDITORS)
    stop = asyncio.Event()
    editing = [asyncio.create_task(editor.run(stop, pause=0.05)) for editor in editors]

    async def published() -> int:
        return await _count(
            deployed, "SELECT count(*) FROM task_events WHERE published_at IS NOT NULL"
        )

    async def notifications() -> int:
        return await _count(deployed, "SELECT count(*) FROM notifications")

    rng = random.Random(7)
    kills = 0
    began = time.monotonic()
    try:
        await until(lambda: all(len(e.acked) >= 3 for e in editors), 30, "edits before")
        await relay.kill()
        await notifier.kill()
        while time.monotonic() - began < KILLING_FOR_AT_MOST:
            await _kill_once(relay, published, rng)
            await _kill_once(notifier, notifications, rng)
            kills += 1
            ids = await _topic_ids(deployed)
            if len(ids) > len(set(ids)) and _redeliveries(notifier):
                break
    finally:
        stop.set()
        await asyncio.gather(*editing)
    await relay.start()
    await notifier.start()
    killing = time.monotonic() - began

    ids = await _topic_ids(deployed)
    twice_on_kafka = sum(n - 1 for n in Counter(ids).values())
    assert twice_on_kafka, f"{kills} kills of the relay never hit send-before-mark"
    assert _redeliveries(notifier), f"{kills} kills of the notifier never hit write-before-commit"

    history = await acked_edits_stored(deployed.postgres.url, people.board_id, editors)
    assert not [code for e in editors for code in e.refusals]

    await until(lambda: _all_published(deployed), 60, "every row published after the last restart")
    assert {event_id for _, event_id in history} <= set(await _topic_ids(deployed))

    # One notification per assignment, to the member it was handed to; never twice.
    notified = await notified_once_each(deployed.postgres.url, editors, within=60)
    print(
        f"\n{kills} kill -9 rounds of relay and notifier in {killing:.0f} s: "
        f"{twice_on_kafka} records published twice, {_redeliveries(notifier)} redelivered "
        f"events skipped by the notifier; {len(history)} events, {notified} notifications, "
        "each once"
    )
    await close_all([e.hub for e in editors])


async def _all_published(deployed: Deployment) -> bool:
    return await unpublished(deployed.postgres.url) == 0
