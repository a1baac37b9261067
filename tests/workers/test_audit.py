"""The audit worker against the real hub, PostgreSQL and Kafka broker.

Records reach it the way they do in production: REST views write outbox rows,
socket edits write task_events, the relay publishes both, and the worker files
them into event_logs. Malformed and repeated records come from a plain aiokafka
producer, as another service of ours could send them.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import msgspec
from aiokafka import AIOKafkaProducer

from hub.config import Settings
from hub.workers import embedded_workers
from protocol.records import OutboxRecord, TaskEventRecord, encode
from storage.db import create_pool
from tests.support import Account, Hub
from workers.audit import apply_retention

UA = "audit-test-agent/1.0"


async def wait_for_rows(
    conn: asyncpg.Connection, sql: str, *args: Any, count: int = 1, timeout: float = 20
) -> list[asyncpg.Record]:
    """Poll until `sql` returns at least `count` rows; the worker files asynchronously."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        rows = await conn.fetch(sql, *args)
        if len(rows) >= count:
            return rows
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{len(rows)} of {count} rows after {timeout}s: {sql} {args}")
        await asyncio.sleep(0.1)


def entry_sql(where: str) -> str:
    return f"SELECT * FROM event_logs WHERE {where} ORDER BY created_at, id"


@asynccontextmanager
async def producer(settings: Settings) -> AsyncIterator[AIOKafkaProducer]:
    client = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers, enable_idempotence=False, acks="all"
    )
    await client.start()
    try:
        yield client
    finally:
        await client.stop()


async def connect(dsn: str) -> asyncpg.Connection:
    """A connection that reads jsonb as Python values, as the hub's pool does."""
    conn = await asyncpg.connect(dsn)
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    return conn


def metadata(row: asyncpg.Record) -> dict[str, Any]:
    value: dict[str, Any] = row["metadata"]
    return value


async def test_account_board_and_task_changes_land_in_the_trail(
    start_hub: Callable[..., Any],
) -> None:
    hub: Hub = await start_hub(EMBEDDED_WORKERS="outbox,audit")
    conn = await connect(hub.settings.database_url)
    try:
        email = f"audited.{uuid.uuid4().hex[:8]}@example.com"
        status, reg = await hub.request(
            "POST",
            "/api/auth/register",
            json={"email": email, "name": "Audited", "password": "s3cret-pass"},
            headers={"X-Request-ID": "req-register-1", "User-Agent": UA},
        )
        assert status == 201, reg
        user_id = uuid.UUID(reg["user"]["id"])
        status, login = await hub.request(
            "POST",
            "/api/auth/login",
            json={"email": email, "password": "s3cret-pass"},
            headers={"X-Request-ID": "req-login-1", "User-Agent": UA},
        )
        assert status == 200, login
        token = login["access_token"]
        member = await hub.register("Member")
        status, board = await hub.request(
            "POST", "/api/boards", token=token, json={"name": "Audited board"}
        )
        assert status == 201, board
        board_id = uuid.UUID(board["id"])
        status, added = await hub.request(
            "POST",
            f"/api/boards/{board_id}/members",
            token=token,
            json={"email": member.email, "role": "editor"},
            headers={"X-Request-ID": "req-member-1", "User-Agent": UA},
        )
        assert status == 201, added
        status, _ = await hub.request(
            "DELETE",
            f"/api/boards/{board_id}/members/{member.id}",
            token=token,
            headers={"X-Request-ID": "req-member-2", "User-Agent": UA},
        )
        assert status == 204

        owner = Account(
            id=str(user_id),
            email=email,
            password="s3cret-pass",
            access_token=token,
            refresh_token=login["refresh_token"],
        )
        peer = await hub.peer(owner)
        try:
            created = await peer.call(
                "task:create",
                {"board_id": str(board_id), "title": "Audit me", "request_id": "req-task-1"},
            )
            assert created["ok"], created
            task = created["data"]["task"]
            updated = await peer.call(
                "task:update",
                {
                    "task_id": task["id"],
                    "base_version": task["version"],
                    "changes": {"title": "Audited"},
                    "request_id": "req-task-2",
                },
            )
            assert updated["ok"], updated
        finally:
            await peer.close()
        status, _ = await hub.request(
            "POST",
            "/api/auth/logout",
            token=token,
            headers={"X-Request-ID": "req-logout-1", "User-Agent": UA},
        )
        assert status == 204

        rows = await wait_for_rows(conn, entry_sql("actor_id = $1"), user_id, count=7)
        by_type = {r["type"]: r for r in rows}
        assert sorted(by_type) == [
            "board.member_added",
            "board.member_removed",
            "task.created",
            "task.updated",
            "user.login",
            "user.logout",
            "user.registered",
        ], [r["type"] for r in rows]
        assert len(rows) == 7

        expected_cid = {
            "user.registered": "req-register-1",
            "user.login": "req-login-1",
            "board.member_added": "req-member-1",
            "board.member_removed": "req-member-2",
            "user.logout": "req-logout-1",
            "task.created": "req-task-1",
            "task.updated": "req-task-2",
        }
        for kind, cid in expected_cid.items():
            assert by_type[kind]["correlation_id"] == cid, (kind, dict(by_type[kind]))

        for kind in ("user.registered", "user.login", "user.logout"):
            row = by_type[kind]
            assert (row["entity_type"], row["entity_id"]) == ("user", user_id)
            assert metadata(row)["ip"] == "127.0.0.1"
            assert metadata(row)["user_agent"] == UA
        assert metadata(by_type["user.registered"])["session_id"] == reg["session_id"]
        assert metadata(by_type["user.login"])["session_id"] == login["session_id"]
        assert metadata(by_type["user.logout"])["session_id"] == login["session_id"]

        for kind in ("board.member_added", "board.member_removed"):
            row = by_type[kind]
            assert (row["entity_type"], row["entity_id"]) == ("board", board_id)
            assert row["payload"]["user_id"] == member.id
            assert row["payload"]["role"] == "editor"
            assert metadata(row)["user_agent"] == UA
            assert metadata(row)["session_id"] == login["session_id"]

        for kind in ("task.created", "task.updated"):
            row = by_type[kind]
            assert (row["entity_type"], str(row["entity_id"])) == ("task", task["id"])
            assert row["payload"]["board_id"] == str(board_id)
            # the socket client the edit came from
            assert metadata(row)["ip"] == "127.0.0.1"
            assert metadata(row)["user_agent"]
        assert by_type["task.updated"]["payload"]["changes"]["title"] == {
            "before": "Audit me",
            "after": "Audited",
        }
        # Every task event of the board is in the trail, under its own event_id.
        events = await conn.fetch("SELECT event_id, created_at FROM task_events")
        filed = await conn.fetch(
            "SELECT event_id, created_at FROM event_logs WHERE entity_type = 'task'"
        )
        assert {tuple(r) for r in events} == {tuple(r) for r in filed}
    finally:
        await conn.close()


async def test_redelivered_records_are_filed_once(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings()
    task_record = TaskEventRecord(
        event_id=uuid.uuid4(),
        type="task.updated",
        occurred_at=datetime.now(UTC),
        board_id=uuid.uuid4(),
        task_id=uuid.uuid4(),
        actor_id=uuid.uuid4(),
        changes={"title": {"before": "a", "after": "b"}},
        correlation_id="redelivered-1",
        source="another-service",
    )
    audit_record = OutboxRecord(
        event_id=uuid.uuid4(),
        type="user.login",
        occurred_at=datetime.now(UTC),
        correlation_id="redelivered-2",
        payload={
            "actor_id": str(task_record.actor_id),
            "entity_type": "user",
            "entity_id": str(task_record.actor_id),
            "metadata": {"ip": "10.0.0.1"},
        },
    )
    prefix = settings.kafka_topic_prefix
    async with embedded_workers(settings, ("audit",)), producer(settings) as client:
        for _ in range(3):
            await client.send_and_wait(
                f"{prefix}task_events", encode(task_record), key=str(task_record.task_id).encode()
            )
            await client.send_and_wait(f"{prefix}audit_events", encode(audit_record), key=b"k")
        conn = await connect(settings.database_url)
        try:
            await wait_for_rows(conn, entry_sql("true"), count=2)
            # The later copies sit behind the first in the same partitions: once a
            # marker sent after them is filed, all of them have been handled.
            marker = msgspec.structs.replace(audit_record, event_id=uuid.uuid4())
            await client.send_and_wait(f"{prefix}audit_events", encode(marker), key=b"k")
            await wait_for_rows(conn, entry_sql("event_id = $1"), marker.event_id)
            rows = await conn.fetch(
                entry_sql("event_id = ANY($1::uuid[])"),
                [task_record.event_id, audit_record.event_id],
            )
            shapes = await conn.fetch(
                "SELECT DISTINCT jsonb_typeof(payload), jsonb_typeof(metadata) FROM event_logs"
            )
        finally:
            await conn.close()
    assert len(rows) == 2
    assert [tuple(r) for r in shapes] == [("object", "object")]
    task_row = next(r for r in rows if r["event_id"] == task_record.event_id)
    assert task_row["type"] == "task.updated"
    assert task_row["actor_id"] == task_record.actor_id
    assert task_row["entity_id"] == task_record.task_id
    assert task_row["created_at"] == task_record.occurred_at
    assert task_row["correlation_id"] == "redelivered-1"
    assert metadata(task_row)["source"] == "another-service"
    audit_row = next(r for r in rows if r["event_id"] == audit_record.event_id)
    assert metadata(audit_row) == {"ip": "10.0.0.1"}


async def test_malformed_audit_record_is_skipped_and_the_next_lands(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings()
    topic = f"{settings.kafka_topic_prefix}audit_events"
    user_id = uuid.uuid4()
    good = OutboxRecord(
        event_id=uuid.uuid4(),
        type="user.registered",
        occurred_at=datetime.now(UTC),
        correlation_id="after-the-bad-ones",
        payload={"actor_id": str(user_id), "entity_type": "user", "entity_id": str(user_id)},
    )
    bad_payload = msgspec.structs.replace(
        good, event_id=uuid.uuid4(), payload={"entity_type": "planet"}
    )
    async with embedded_workers(settings, ("audit",)), producer(settings) as client:
        # All on one partition (same key), so the good one comes after the bad ones.
        for value in (b"not json at all", b'{"event_id": "nope"}', encode(bad_payload)):
            await client.send_and_wait(topic, value, key=b"same")
        await client.send_and_wait(topic, None, key=b"same")  # a tombstone
        await client.send_and_wait(topic, encode(good), key=b"same")
        conn = await connect(settings.database_url)
        try:
            rows = await wait_for_rows(conn, entry_sql("true"))
        finally:
            await conn.close()
    assert [r["event_id"] for r in rows] == [good.event_id]
    assert rows[0]["correlation_id"] == "after-the-bad-ones"
    assert (rows[0]["entity_type"], rows[0]["entity_id"]) == ("user", user_id)


async def test_retention_deletes_old_entries_by_type_and_keeps_the_rest(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(AUDIT_RETENTION_TASK_DAYS="30")
    now = datetime.now(UTC)
    aged = {
        "user.login": [400, 300],
        "user.logout": [366],
        "board.member_added": [370, 10],
        "task.updated": [31, 29],
        "task.created": [200],
        "system.backup.started": [5000],
    }
    pool = await create_pool(settings.database_url, min_size=1, max_size=2)
    try:
        async with pool.acquire() as conn:
            for kind, ages in aged.items():
                for days in ages:
                    await conn.execute(
                        """INSERT INTO event_logs (event_id, type, entity_type, created_at)
                           VALUES ($1, $2, $3, $4)""",
                        uuid.uuid4(),
                        kind,
                        kind.split(".")[0],
                        now - timedelta(days=days),
                    )
        # Batches smaller than what is due: the loop must keep going until done.
        deleted = await apply_retention(pool, settings.audit_retention_days, batch=1)
        assert deleted == {"user.": 2, "board.": 1, "task.": 2}
        async with pool.acquire() as conn:
            kept = await conn.fetch("SELECT type, created_at FROM event_logs ORDER BY type")
        left = sorted(
            (r["type"], round((now - r["created_at"]).total_seconds() / 86400)) for r in kept
        )
        assert left == [
            ("board.member_added", 10),
            ("system.backup.started", 5000),
            ("task.updated", 29),
            ("user.login", 300),
        ]
        # A second pass has nothing left to do.
        assert await apply_retention(pool, settings.audit_retention_days) == {
            "user.": 0,
            "board.": 0,
            "task.": 0,
        }
    finally:
        await pool.close()
