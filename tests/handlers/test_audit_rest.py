"""`GET /api/admin/audit` against the real hub: who may read, filters, pagination.

Entries are inserted straight into event_logs (the worker's side is tested in
tests/workers/test_audit.py), so each filter is checked against known rows.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.support import Account, Hub

NOW = datetime.now(UTC).replace(microsecond=0)


async def make_admin(hub: Hub, account: Account) -> None:
    conn = await hub.db()
    try:
        await conn.execute("UPDATE users SET role = 'admin' WHERE id = $1", uuid.UUID(account.id))
    finally:
        await conn.close()


async def insert(hub: Hub, *entries: dict[str, Any]) -> None:
    conn = await hub.db()
    try:
        for e in entries:
            await conn.execute(
                """INSERT INTO event_logs (event_id, type, actor_id, entity_type, entity_id,
                                           payload, metadata, correlation_id, created_at)
                   VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7::jsonb, $8, $9)""",
                e.get("event_id", uuid.uuid4()),
                e["type"],
                e.get("actor_id"),
                e.get("entity_type", e["type"].split(".")[0]),
                e.get("entity_id"),
                json.dumps(e.get("payload", {})),
                json.dumps(e.get("metadata", {})),
                e.get("correlation_id"),
                e.get("created_at", NOW),
            )
    finally:
        await conn.close()


async def audit(hub: Hub, account: Account, **params: Any) -> tuple[int, Any]:
    return await hub.request(
        "GET",
        "/api/admin/audit",
        token=account.access_token,
        params={k: str(v) for k, v in params.items()},
    )


async def types_of(hub: Hub, account: Account, **params: Any) -> list[str]:
    status, body = await audit(hub, account, **params)
    assert status == 200, (params, body)
    assert body["next"] is None, (params, body)
    return [e["type"] for e in body["entries"]]


async def test_only_admins_read_the_trail(hub: Hub) -> None:
    status, body = await hub.request("GET", "/api/admin/audit")
    assert status == 401 and body["error"]["code"] == "unauthorized"
    user = await hub.register("Plain")
    status, body = await audit(hub, user)
    assert status == 403 and body["error"]["code"] == "forbidden"
    await make_admin(hub, user)
    status, body = await audit(hub, user)
    assert status == 200, body
    assert body == {"entries": [], "next": None}


async def test_filters(hub: Hub) -> None:
    admin = await hub.register("Admin")
    await make_admin(hub, admin)
    alice, bob = uuid.uuid4(), uuid.uuid4()
    task, board = uuid.uuid4(), uuid.uuid4()
    first_event = uuid.uuid4()
    await insert(
        hub,
        {
            "type": "user.login",
            "actor_id": alice,
            "entity_id": alice,
            "metadata": {"ip": "10.1.1.1", "user_agent": "ua"},
            "correlation_id": "c-1",
            "created_at": NOW - timedelta(hours=3),
            "event_id": first_event,
        },
        {
            "type": "task.created",
            "actor_id": alice,
            "entity_id": task,
            "payload": {"changes": {}},
            "correlation_id": "c-2",
            "created_at": NOW - timedelta(hours=2),
        },
        {
            "type": "task.updated",
            "actor_id": bob,
            "entity_id": task,
            "correlation_id": "c-2",
            "created_at": NOW - timedelta(hours=1),
        },
        {
            "type": "board.member_added",
            "actor_id": bob,
            "entity_id": board,
            "payload": {"user_id": str(alice), "role": "editor"},
            "created_at": NOW,
        },
        {"type": "tasks.weird", "actor_id": bob, "entity_type": "task", "created_at": NOW},
    )
    # Newest first; the admin's own registration is not in the trail (no worker runs).
    assert await types_of(hub, admin) == [
        "tasks.weird",
        "board.member_added",
        "task.updated",
        "task.created",
        "user.login",
    ]
    assert await types_of(hub, admin, type="task.updated") == ["task.updated"]
    assert await types_of(hub, admin, type="task.") == ["task.updated", "task.created"]
    assert await types_of(hub, admin, type="task") == []
    assert await types_of(hub, admin, actor_id=alice) == ["task.created", "user.login"]
    assert await types_of(hub, admin, entity_type="task", entity_id=task) == [
        "task.updated",
        "task.created",
    ]
    assert await types_of(hub, admin, entity_type="board") == ["board.member_added"]
    assert await types_of(hub, admin, correlation_id="c-2") == ["task.updated", "task.created"]
    since = (NOW - timedelta(hours=2)).isoformat()
    until = (NOW - timedelta(minutes=30)).isoformat()
    assert await types_of(hub, admin, since=since, until=until) == ["task.updated", "task.created"]
    assert await types_of(hub, admin, type="task.", actor_id=bob, since=since) == ["task.updated"]

    status, body = await audit(hub, admin, type="user.login")
    assert status == 200, body
    [entry] = body["entries"]
    assert entry["event_id"] == str(first_event)
    assert entry["actor_id"] == str(alice)
    assert entry["entity_type"] == "user" and entry["entity_id"] == str(alice)
    assert entry["metadata"] == {"ip": "10.1.1.1", "user_agent": "ua"}
    assert entry["correlation_id"] == "c-1"
    assert datetime.fromisoformat(entry["created_at"]) == NOW - timedelta(hours=3)


async def test_keyset_pagination_walks_every_entry_once(hub: Hub) -> None:
    admin = await hub.register("Admin")
    await make_admin(hub, admin)
    # Ties on created_at on purpose: the id breaks them, so no page skips or repeats.
    await insert(
        hub,
        *(
            {
                "type": "task.updated",
                "correlation_id": f"p-{i}",
                "created_at": NOW - timedelta(minutes=i // 3),
            }
            for i in range(11)
        ),
        {"type": "user.login", "created_at": NOW},
    )
    seen: list[str] = []
    after = None
    pages = 0
    while True:
        params: dict[str, Any] = {"type": "task.", "limit": 4}
        if after:
            params["after"] = after
        status, body = await audit(hub, admin, **params)
        assert status == 200, body
        assert len(body["entries"]) <= 4
        seen += [e["correlation_id"] for e in body["entries"]]
        pages += 1
        after = body["next"]
        if after is None:
            break
    assert pages == 3
    assert sorted(seen) == sorted(f"p-{i}" for i in range(11))
    assert len(seen) == len(set(seen))
    times = [
        e["created_at"] for e in (await audit(hub, admin, type="task.", limit=200))[1]["entries"]
    ]
    assert times == sorted(times, reverse=True)


async def test_bad_queries_are_refused(hub: Hub) -> None:
    admin = await hub.register("Admin")
    await make_admin(hub, admin)
    for params in (
        {"limit": 201},
        {"limit": 0},
        {"actor_id": "not-a-uuid"},
        {"since": "yesterday"},
        {"since": NOW.isoformat(), "until": (NOW - timedelta(days=1)).isoformat()},
        {"after": "not a cursor"},
        {"unknown": "x"},
    ):
        status, body = await audit(hub, admin, **params)
        assert status == 400, (params, body)
        assert body["error"]["code"] == "invalid_payload", (params, body)
