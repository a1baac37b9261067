"""Bot accounts and their API tokens, against real hubs: who may create them, tokens
shown once and stored hashed, scopes checked on every event, revocation that
closes live connections on every node, and expired tokens refused at connect."""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import socketio

from handlers.rest import DEPS
from tests.support import Account, Hub, Peer, new_bot, new_token

ALL_SCOPES = ["chat:read", "chat:write", "tasks:read", "tasks:write"]


async def make_admin(hub: Hub, account: Account) -> None:
    conn = await hub.db()
    try:
        await conn.execute("UPDATE users SET role = 'admin' WHERE id = $1", uuid.UUID(account.id))
    finally:
        await conn.close()


async def bot_peer(hub: Hub, secret: str) -> Peer:
    peer = Peer(hub.url, secret)
    await peer.connect()
    return peer


async def connect_error(hub: Hub, token: str) -> Any:
    """Connect with `token` as a bot would; the reason the server refused it."""
    sio = socketio.AsyncClient(reconnection=False)
    reasons: list[Any] = []

    @sio.event
    async def connect_error(data: Any) -> None:
        reasons.append(data)

    try:
        with pytest.raises(socketio.exceptions.ConnectionError):
            await sio.connect(hub.url, auth={"token": token}, transports=["websocket"])
    finally:
        await sio.disconnect()
    assert len(reasons) == 1, reasons
    return reasons[0]


def refused(reason: Any, why: str, mentions: str) -> None:
    assert reason["code"] == "unauthorized", reason
    assert reason["details"] == {"reason": why}, reason
    assert mentions in reason["message"], reason


def forbidden(ack: dict[str, Any], scope: str) -> None:
    assert ack["ok"] is False, ack
    assert ack["error"]["code"] == "forbidden", ack
    assert scope in ack["error"]["message"], ack
    assert ack["error"]["details"] == {"scope": scope}, ack


async def counts(hub: Hub) -> dict[str, int]:
    conn = await hub.db()
    try:
        return {
            "bots": await conn.fetchval("SELECT count(*) FROM users WHERE role = 'bot'"),
            "tokens": await conn.fetchval("SELECT count(*) FROM api_tokens"),
            "members": await conn.fetchval("SELECT count(*) FROM board_members"),
            "tasks": await conn.fetchval("SELECT count(*) FROM tasks"),
            "revoked": await conn.fetchval(
                "SELECT count(*) FROM api_tokens WHERE revoked_at IS NOT NULL"
            ),
        }
    finally:
        await conn.close()


async def wait_until(check: Callable[[], bool], timeout: float = 5) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)


# -- creating bots ------------------------------------------------------------


async def test_an_admin_creates_a_bot_that_cannot_log_in(hub: Hub) -> None:
    admin = await hub.register("Admin")
    await make_admin(hub, admin)

    body = await new_bot(hub, admin, "Deploy bot")

    bot = body["bot"]
    assert bot["role"] == "bot" and bot["name"] == "Deploy bot" and bot["is_active"]
    assert bot["created_by"] == admin.id and body["member"] is None
    assert bot["email"] == f"bot-{uuid.UUID(bot['id']).hex}@bots.invalid"
    conn = await hub.db()
    try:
        row = await conn.fetchrow("SELECT * FROM users WHERE id = $1", uuid.UUID(bot["id"]))
    finally:
        await conn.close()
    assert row["password_hash"] is None and row["role"] == "bot"
    for password in ["", "s3cret-pass", "anything-at-all"]:
        status, _ = await hub.request(
            "POST", "/api/auth/login", json={"email": bot["email"], "password": password}
        )
        assert status == 401
    # two bots of the same name are two accounts
    again = await new_bot(hub, admin, "Deploy bot")
    assert again["bot"]["id"] != bot["id"] and again["bot"]["email"] != bot["email"]


async def test_without_a_board_only_admins_create_bots(hub: Hub) -> None:
    alice = await hub.register("Alice")
    before = await counts(hub)
    status, body = await hub.request(
        "POST", "/api/bots", token=alice.access_token, json={"name": "Mine"}
    )
    assert status == 403 and body["error"]["code"] == "forbidden", body
    assert "admin" in body["error"]["message"]
    status, body = await hub.request("POST", "/api/bots", json={"name": "Anonymous"})
    assert status == 401, body
    assert await counts(hub) == before


async def test_a_board_owner_creates_a_bot_that_joins_the_board(hub: Hub) -> None:
    owner = await hub.register("Owner")
    board_id = await hub.create_board(owner)

    editor_bot = await new_bot(hub, owner, "Editor bot", board_id=board_id)
    viewer_bot = await new_bot(hub, owner, "Viewer bot", board_id=board_id, role="viewer")

    assert editor_bot["member"]["role"] == "editor"
    assert editor_bot["bot"]["created_by"] == owner.id
    assert viewer_bot["member"]["role"] == "viewer"
    status, body = await hub.request("GET", f"/api/boards/{board_id}", token=owner.access_token)
    assert status == 200, body
    roles = {m["user_id"]: m["role"] for m in body["members"]}
    assert roles[editor_bot["bot"]["id"]] == "editor"
    assert roles[viewer_bot["bot"]["id"]] == "viewer"

    # The owner adds the bot to another board of theirs by its email, never as owner.
    other = await hub.create_board(owner, "Other")
    email = editor_bot["bot"]["email"]
    status, body = await hub.request(
        "POST",
        f"/api/boards/{other}/members",
        token=owner.access_token,
        json={"email": email, "role": "owner"},
    )
    assert status == 400 and "bot" in body["error"]["message"], body
    status, body = await hub.request(
        "POST",
        f"/api/boards/{other}/members",
        token=owner.access_token,
        json={"email": email, "role": "viewer"},
    )
    assert status == 201 and body["user_id"] == editor_bot["bot"]["id"], body


async def test_members_who_do_not_own_the_board_cannot_create_its_bots(hub: Hub) -> None:
    owner = await hub.register("Owner")
    board_id = await hub.create_board(owner)
    editor = await hub.register("Editor")
    await hub.add_member(owner, board_id, editor, "editor")
    stranger = await hub.register("Stranger")
    admin = await hub.register("Admin")
    await make_admin(hub, admin)
    before = await counts(hub)

    for account, status_wanted in [(editor, 403), (stranger, 404), (admin, 404)]:
        status, body = await hub.request(
            "POST",
            "/api/bots",
            token=account.access_token,
            json={"name": "Sneaky", "board_id": board_id},
        )
        assert status == status_wanted, (account, body)
    status, body = await hub.request(
        "POST",
        "/api/bots",
        token=owner.access_token,
        json={"name": "Nowhere", "board_id": str(uuid.uuid4())},
    )
    assert status == 404, body
    assert await counts(hub) == before


# -- tokens -------------------------------------------------------------------


async def test_a_token_is_shown_once_stored_hashed_listed_and_revoked(hub: Hub) -> None:
    owner = await hub.register("Owner")
    board_id = await hub.create_board(owner)
    bot_id = (await new_bot(hub, owner, board_id=board_id))["bot"]["id"]

    started = datetime.now(UTC)
    token = await new_token(
        hub, owner, bot_id, ["tasks:write", "chat:read", "tasks:read"], expires_in_days=30
    )

    assert token.secret.startswith("thb_") and len(token.secret) >= 40
    shown = token.body["token"]
    assert shown["name"] == "ci" and shown["bot_id"] == bot_id
    assert shown["scopes"] == ["chat:read", "tasks:read", "tasks:write"]
    assert shown["revoked_at"] is None and shown["created_by"] == owner.id
    expires = datetime.fromisoformat(shown["expires_at"])
    assert abs(expires - (started + timedelta(days=30))) < timedelta(minutes=1)
    default = await new_token(hub, owner, bot_id, ["chat:read"])
    expires = datetime.fromisoformat(default.body["token"]["expires_at"])
    assert abs(expires - (started + timedelta(days=90))) < timedelta(minutes=1)

    # Stored as the SHA-256 of the secret; the secret is nowhere in the database.
    conn = await hub.db()
    try:
        row = await conn.fetchrow("SELECT * FROM api_tokens WHERE id = $1", uuid.UUID(token.id))
        assert bytes(row["token_hash"]) == hashlib.sha256(token.secret.encode()).digest()
        assert token.secret not in json.dumps({k: str(v) for k, v in dict(row).items()})
        outbox = await conn.fetch("SELECT type, payload::text AS payload FROM outbox")
    finally:
        await conn.close()
    audited = [r for r in outbox if r["type"] == "user.api_token_created"]
    assert len(audited) == 2
    assert all(token.secret not in r["payload"] for r in outbox)
    assert token.id in audited[0]["payload"] + audited[1]["payload"]

    # Listed without the secret, newest first.
    status, listed = await hub.request(
        "GET", f"/api/bots/{bot_id}/tokens", token=owner.access_token
    )
    assert status == 200, listed
    assert [t["id"] for t in listed["tokens"]] == [default.id, token.id]
    assert "secret" not in json.dumps(listed) and token.secret not in json.dumps(listed)
    assert token.secret[4:] not in json.dumps(listed)

    # Revoked, idempotently.
    for _ in range(2):
        status, body = await hub.request(
            "DELETE", f"/api/bots/{bot_id}/tokens/{token.id}", token=owner.access_token
        )
        assert status == 204, body
    status, listed = await hub.request(
        "GET", f"/api/bots/{bot_id}/tokens", token=owner.access_token
    )
    by_id = {t["id"]: t for t in listed["tokens"]}
    assert by_id[token.id]["revoked_at"] is not None
    assert by_id[default.id]["revoked_at"] is None
    status, body = await hub.request(
        "DELETE", f"/api/bots/{bot_id}/tokens/{uuid.uuid4()}", token=owner.access_token
    )
    assert status == 404, body
    # another bot's token is not this bot's
    other_bot = (await new_bot(hub, owner, "Other", board_id=board_id))["bot"]["id"]
    status, body = await hub.request(
        "DELETE", f"/api/bots/{other_bot}/tokens/{default.id}", token=owner.access_token
    )
    assert status == 404, body
    conn = await hub.db()
    try:
        types = [r["type"] for r in await conn.fetch("SELECT type FROM outbox ORDER BY id")]
    finally:
        await conn.close()
    assert types.count("user.api_token_revoked") == 1


async def test_only_admins_and_the_creator_manage_a_bots_tokens(hub: Hub) -> None:
    owner = await hub.register("Owner")
    board_id = await hub.create_board(owner)
    bot_id = (await new_bot(hub, owner, board_id=board_id))["bot"]["id"]
    token = await new_token(hub, owner, bot_id, ["tasks:read"])
    co_owner = await hub.register("Co-owner")
    await hub.add_member(owner, board_id, co_owner, "owner")
    stranger = await hub.register("Stranger")
    before = await counts(hub)

    for account in [co_owner, stranger]:
        calls = [
            ("POST", f"/api/bots/{bot_id}/tokens", {"name": "x", "scopes": ["tasks:read"]}),
            ("GET", f"/api/bots/{bot_id}/tokens", None),
            ("DELETE", f"/api/bots/{bot_id}/tokens/{token.id}", None),
        ]
        for method, path, payload in calls:
            status, body = await hub.request(method, path, token=account.access_token, json=payload)
            assert status == 403 and body["error"]["code"] == "forbidden", (method, body)
    assert await counts(hub) == before

    # Unknown bots, and people who are not bots, are not found.
    for missing in [str(uuid.uuid4()), owner.id]:
        status, body = await hub.request(
            "GET", f"/api/bots/{missing}/tokens", token=owner.access_token
        )
        assert status == 404, body
    status, body = await hub.request("GET", "/api/bots/not-a-uuid/tokens", token=owner.access_token)
    assert status == 404, body

    admin = await hub.register("Admin")
    await make_admin(hub, admin)
    status, listed = await hub.request(
        "GET", f"/api/bots/{bot_id}/tokens", token=admin.access_token
    )
    assert status == 200 and [t["id"] for t in listed["tokens"]] == [token.id]
    await new_token(hub, admin, bot_id, ["chat:write"])
    status, _ = await hub.request(
        "DELETE", f"/api/bots/{bot_id}/tokens/{token.id}", token=admin.access_token
    )
    assert status == 204


BAD_BOTS: list[tuple[str, Any, str]] = [
    ("empty-name", {"name": ""}, "name"),
    ("blank-name", {"name": "   "}, "name"),
    ("long-name", {"name": "n" * 101}, "name"),
    ("name-int", {"name": 7}, "name"),
    ("name-null", {"name": None}, "name"),
    ("no-name", {}, "name"),
    ("name-nul", {"name": "a\x00"}, "NUL"),
    ("board-not-uuid", {"name": "b", "board_id": "board-1"}, "board_id"),
    ("role-without-board", {"name": "b", "role": "editor"}, "board_id"),
    ("role-owner", {"name": "b", "board_id": "$board", "role": "owner"}, "cannot own"),
    ("role-bogus", {"name": "b", "board_id": "$board", "role": "boss"}, "role"),
    ("unknown-field", {"name": "b", "password": "x"}, "password"),
    ("not-an-object", ["b"], "object"),
]

BAD_TOKENS: list[tuple[str, Any, str]] = [
    ("unknown-scope", {"name": "t", "scopes": ["tasks:admin"]}, "scopes"),
    ("scope-case", {"name": "t", "scopes": ["Tasks:Read"]}, "scopes"),
    ("no-scopes", {"name": "t", "scopes": []}, "scopes"),
    ("missing-scopes", {"name": "t"}, "scopes"),
    ("repeated-scope", {"name": "t", "scopes": ["chat:read", "chat:read"]}, "repeat"),
    ("scopes-string", {"name": "t", "scopes": "chat:read"}, "scopes"),
    ("scope-int", {"name": "t", "scopes": [1]}, "scopes"),
    ("empty-name", {"name": "", "scopes": ["chat:read"]}, "name"),
    ("blank-name", {"name": " ", "scopes": ["chat:read"]}, "name"),
    ("name-list", {"name": ["t"], "scopes": ["chat:read"]}, "name"),
    ("days-zero", {"name": "t", "scopes": ["chat:read"], "expires_in_days": 0}, "expires"),
    ("days-366", {"name": "t", "scopes": ["chat:read"], "expires_in_days": 366}, "expires"),
    ("days-string", {"name": "t", "scopes": ["chat:read"], "expires_in_days": "30"}, "expires"),
    ("days-bool", {"name": "t", "scopes": ["chat:read"], "expires_in_days": True}, "expires"),
    ("days-float", {"name": "t", "scopes": ["chat:read"], "expires_in_days": 1.5}, "expires"),
    ("secret-given", {"name": "t", "scopes": ["chat:read"], "secret": "thb_x"}, "secret"),
    ("not-an-object", None, "object"),
]


async def test_bad_input_to_the_bot_endpoints_is_refused_and_stores_nothing(hub: Hub) -> None:
    owner = await hub.register("Owner")
    board_id = await hub.create_board(owner)
    bot_id = (await new_bot(hub, owner, board_id=board_id))["bot"]["id"]
    before = await counts(hub)
    failures = []

    def fill(payload: Any) -> Any:
        if isinstance(payload, dict):
            return {k: board_id if v == "$board" else v for k, v in payload.items()}
        return payload

    cases = [("bots", "/api/bots", case) for case in BAD_BOTS] + [
        ("tokens", f"/api/bots/{bot_id}/tokens", case) for case in BAD_TOKENS
    ]
    for group, path, (name, payload, mentions) in cases:
        status, body = await hub.request(
            "POST",
            path,
            token=owner.access_token,
            data=json.dumps(fill(payload)),
            headers={"Content-Type": "application/json"},
        )
        ok = (
            status == 400
            and body["error"]["code"] == "invalid_payload"
            and mentions in body["error"]["message"]
        )
        if not ok:
            failures.append(f"{group}/{name}: {status} {body}")
    for path in ["/api/bots", f"/api/bots/{bot_id}/tokens"]:
        status, body = await hub.request(
            "POST",
            path,
            token=owner.access_token,
            data="{not json",
            headers={"Content-Type": "application/json"},
        )
        if status != 400:
            failures.append(f"{path} not json: {status} {body}")
    assert not failures, "\n".join(failures)
    assert await counts(hub) == before


# -- scopes on the socket -----------------------------------------------------


@dataclass
class Scene:
    owner: Account
    owner_peer: Peer
    board_id: str
    task: dict[str, Any]
    bot_id: str


async def _scene(hub: Hub) -> Scene:
    """A board with one task, its owner connected and joined, and an editor bot."""
    owner = await hub.register("Owner")
    board_id = await hub.create_board(owner)
    peer = await hub.peer(owner)
    assert (await peer.call("board:join", {"board_id": board_id}))["ok"]
    created = await peer.call("task:create", {"board_id": board_id, "title": "Existing"})
    assert created["ok"], created
    await peer.wait_for("task:created")
    bot_id = (await new_bot(hub, owner, "Helper", board_id=board_id))["bot"]["id"]
    return Scene(owner, peer, board_id, created["data"]["task"], bot_id)


async def test_a_bot_without_task_scopes_can_neither_read_nor_edit_tasks(hub: Hub) -> None:
    scene = await _scene(hub)
    chat_only = await new_token(hub, scene.owner, scene.bot_id, ["chat:read", "chat:write"])
    reader = await new_token(hub, scene.owner, scene.bot_id, ["tasks:read"])
    before = await counts(hub)
    task_id = scene.task["id"]
    writes = [
        ("task:create", {"board_id": scene.board_id, "title": "Bot's"}),
        ("task:update", {"task_id": task_id, "base_version": 1, "changes": {"title": "Bot"}}),
        ("task:move", {"task_id": task_id, "base_version": 1, "position": 5.0}),
        ("task:delete", {"task_id": task_id}),
        ("reminders:create", {"task_id": task_id, "remind_at": "2999-01-01T00:00:00Z"}),
    ]
    chatty = await bot_peer(hub, chat_only.secret)
    readonly = await bot_peer(hub, reader.secret)
    try:
        forbidden(await chatty.call("board:join", {"board_id": scene.board_id}), "tasks:read")
        forbidden(await chatty.call("presence:list", {"board_id": scene.board_id}), "tasks:read")
        forbidden(await chatty.call("reminders:list", {"task_id": task_id}), "tasks:read")
        # the scope is checked before the payload: a bad one is still just forbidden
        forbidden(await chatty.call("task:update", {"nonsense": True}), "tasks:write")
        for event, payload in writes:
            forbidden(await chatty.call(event, payload), "tasks:write")
        # events that need no scope work for any token
        listed = await chatty.call("notifications:list", {})
        assert listed["ok"], listed

        joined = await readonly.call("board:join", {"board_id": scene.board_id})
        assert joined["ok"] and [t["id"] for t in joined["data"]["tasks"]] == [task_id], joined
        for event, payload in writes:
            forbidden(await readonly.call(event, payload), "tasks:write")
        assert chatty.sio.connected and readonly.sio.connected
        assert await counts(hub) == before
        # the owner heard the read-only bot join, and no task event at all
        await scene.owner_peer.wait_for("presence")
        assert scene.owner_peer.events("task:updated") == []
        assert len(scene.owner_peer.events("task:created")) == 1
    finally:
        await chatty.close()
        await readonly.close()
        await scene.owner_peer.close()


async def test_a_bot_with_task_scopes_edits_tasks_that_people_see(hub: Hub) -> None:
    scene = await _scene(hub)
    token = await new_token(hub, scene.owner, scene.bot_id, ["tasks:read", "tasks:write"])
    bot = await bot_peer(hub, token.secret)
    try:
        assert (await bot.call("board:join", {"board_id": scene.board_id}))["ok"]
        created = await bot.call("task:create", {"board_id": scene.board_id, "title": "By bot"})
        assert created["ok"], created
        task = created["data"]["task"]
        updated = await bot.call(
            "task:update",
            {"task_id": task["id"], "base_version": 1, "changes": {"status": "in_progress"}},
        )
        assert updated["ok"], updated
        heard = await scene.owner_peer.wait_for("task:created", 2)
        assert heard[-1]["task"]["title"] == "By bot"
        assert heard[-1]["actor_id"] == scene.bot_id
        assert heard[-1]["task"]["creator_id"] == scene.bot_id
        (changed,) = await scene.owner_peer.wait_for("task:updated")
        assert changed["task"]["status"] == "in_progress" and changed["actor_id"] == scene.bot_id
        presence = await scene.owner_peer.wait_for("presence")
        assert presence[0]["user"] == {"id": scene.bot_id, "name": "Helper"}
    finally:
        await bot.close()
        await scene.owner_peer.close()


# -- revocation and expiry ----------------------------------------------------


async def test_a_revoked_token_is_disconnected_on_every_node(
    start_hub: Callable[..., Any],
) -> None:
    node1: Hub = await start_hub()
    node2: Hub = await start_hub()
    scene = await _scene(node1)
    revoked = await new_token(node1, scene.owner, scene.bot_id, ["tasks:read"])
    kept = await new_token(node1, scene.owner, scene.bot_id, ["tasks:read"])
    far = await bot_peer(node2, revoked.secret)
    near = await bot_peer(node1, revoked.secret)
    other = await bot_peer(node2, kept.secret)
    try:
        assert (await far.call("board:join", {"board_id": scene.board_id}))["ok"]
        assert (await other.call("board:join", {"board_id": scene.board_id}))["ok"]

        status, body = await node1.request(
            "DELETE",
            f"/api/bots/{scene.bot_id}/tokens/{revoked.id}",
            token=scene.owner.access_token,
        )
        assert status == 204, body

        await wait_until(lambda: not far.sio.connected and not near.sio.connected, timeout=5)
        # each heard why first, across nodes too
        for closed in (far, near):
            (closing,) = closed.events("connection:closing")
            refused(closing, "token_revoked", "revoked")
        # The other token's connection is untouched and keeps the bot on the board.
        assert other.sio.connected
        listed = await other.call("presence:list", {"board_id": scene.board_id})
        assert scene.bot_id in [u["id"] for u in listed["data"]["users"]], listed
        # Redis forgets the closed connections (cleared by the node that held each).
        presence = node1.app[DEPS].presence
        bot = uuid.UUID(scene.bot_id)
        for _ in range(100):
            if len(await presence.connections_of(bot)) == 1:
                break
            await asyncio.sleep(0.05)
        assert len(await presence.connections_of(bot)) == 1
        assert await presence.connections_of_token(bot, uuid.UUID(revoked.id)) == []
        assert len(await presence.connections_of_token(bot, uuid.UUID(kept.id))) == 1

        for node in (node1, node2):
            refused(await connect_error(node, revoked.secret), "token_revoked", "revoked")
    finally:
        for peer in (far, near, other):
            await peer.close()
        await scene.owner_peer.close()


async def test_an_expired_token_cannot_connect(hub: Hub) -> None:
    owner = await hub.register("Owner")
    board_id = await hub.create_board(owner)
    bot_id = (await new_bot(hub, owner, board_id=board_id))["bot"]["id"]
    token = await new_token(hub, owner, bot_id, ALL_SCOPES, expires_in_days=1)
    peer = await bot_peer(hub, token.secret)  # the control: it works while valid
    await peer.close()
    conn = await hub.db()
    try:
        await conn.execute(
            "UPDATE api_tokens SET expires_at = now() - interval '1 minute' WHERE id = $1",
            uuid.UUID(token.id),
        )
    finally:
        await conn.close()

    refused(await connect_error(hub, token.secret), "token_expired", "expired")


async def test_unknown_tokens_and_deactivated_bots_are_refused(hub: Hub) -> None:
    owner = await hub.register("Owner")
    board_id = await hub.create_board(owner)
    bot_id = (await new_bot(hub, owner, board_id=board_id))["bot"]["id"]
    token = await new_token(hub, owner, bot_id, ["tasks:read"])

    refused(await connect_error(hub, "thb_" + "x" * 43), "invalid_token", "not valid")
    refused(await connect_error(hub, token.secret + "x"), "invalid_token", "not valid")
    # bot tokens are for the socket; REST takes people's access tokens
    status, body = await hub.request("GET", "/api/me", token=token.secret)
    assert status == 401, body

    conn = await hub.db()
    try:
        await conn.execute("UPDATE users SET is_active = false WHERE id = $1", uuid.UUID(bot_id))
    finally:
        await conn.close()
    refused(await connect_error(hub, token.secret), "account_inactive", "not active")
