"""The authorization matrix of issue 7 (point 5): every client event, sent by each kind
of caller, against one board with its tasks, chat channel, DM, notification and
reminder, through real clients of one real hub.

Callers: the board's owner, an editor, a viewer, a bot that is an editor of the
board (a token with every scope, and one lacking the scope the event needs), a
non-member, and an admin who is not a member. An admin has no power over boards
(DESIGN.md: a user sees and edits only the boards they belong to); bots are held
to the board roles like people, and to their token's scopes before that.

Existence: for an id that exists, a non-member gets `forbidden`; for one that does
not, `not_found` (tests/handlers/test_authorization.py). That is what
docs/PROTOCOL.md documents for the board events (both codes listed); it tells a
non-member that a board id exists, which an unguessable UUID makes harmless.
Others' reminders are the documented exception: `not_found`, whether they exist
or not. A refused event changes no row, and no event of the board ever reaches
someone who is not on it.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from protocol.catalog import CLIENT_EVENTS
from protocol.events import ClientEvent
from tests.handlers.test_bots import ALL_SCOPES, make_admin
from tests.support import Account, Hub, Peer, new_bot, new_token

OK = "ok"
FORBIDDEN = "forbidden"
NOT_FOUND = "not_found"

# Refused callers first, so a write one of them might wrongly make cannot hide
# behind the ones that are allowed.
ACTORS = ("stranger", "admin", "bot_noscope", "viewer", "bot", "editor", "owner")
PEOPLE = ("owner", "editor", "viewer", "stranger", "admin")

# Server events that belong to a board: none may reach a non-member.
BOARD_EVENTS = frozenset(
    {
        "task:created",
        "task:updated",
        "task:deleted",
        "presence",
        "chat:message",
        "chat:edited",
        "chat:deleted",
        "chat:typing",
    }
)


def expect(**codes: str) -> dict[str, str]:
    assert set(codes) == set(ACTORS), codes
    return codes


# Shorthands for the usual shapes of a row.
ANYONE = expect(**dict.fromkeys(ACTORS, OK))  # own data only, no scope needed
ANY_TOKEN = {**ANYONE, "bot_noscope": FORBIDDEN}  # no board check, but a scope
READERS = expect(
    owner=OK,
    editor=OK,
    viewer=OK,
    bot=OK,
    stranger=FORBIDDEN,
    admin=FORBIDDEN,
    bot_noscope=FORBIDDEN,
)
WRITERS = {**READERS, "viewer": FORBIDDEN}
DM_PAIR = {**WRITERS, "bot": FORBIDDEN}  # its two members, owner and editor
ONLY_OWNER = {**dict.fromkeys(ACTORS, FORBIDDEN), "owner": OK}


@dataclass
class World:
    hub: Hub
    accounts: dict[str, Account]
    peers: dict[str, Peer]  # one connection per actor (the bot's has every scope)
    lacking: dict[str, Peer]  # the bot's connections whose token lacks that scope
    watcher: Peer  # a viewer who joined the board and only listens
    gone: Peer  # a member who joined the board, then was removed from it
    bot_id: str
    board_id: str
    other_board_id: str  # the stranger's own board
    task_id: str
    channel_id: str  # the board's chat channel
    dm_id: str  # owner and editor
    owner_message_id: str  # the owner's, in the board's channel
    owner_dm_message_id: str
    notification_id: str  # the owner's
    reminder_id: str  # the owner's, on the task
    counter: int = 0
    task_ids: set[str] = field(default_factory=set)

    def peer(self, actor: str, scope: str | None) -> Peer:
        if actor == "bot_noscope":
            return self.lacking[scope or "chat:read"]
        return self.peers[actor]

    def next(self) -> int:
        self.counter += 1
        return self.counter


async def ok(peer: Peer, event: str, payload: dict[str, Any]) -> Any:
    ack = await peer.call(event, payload)
    assert ack["ok"], (event, payload, ack)
    return ack["data"]


async def _bot_peer(hub: Hub, secret: str) -> Peer:
    peer = Peer(hub.url, secret)
    await peer.connect()
    return peer


async def build_world(hub: Hub) -> World:
    names = ("Owner", "Editor", "Viewer", "Stranger", "Admin", "Watcher", "Gone")
    owner, editor, viewer, stranger, admin, watcher, gone = [
        await hub.register(name) for name in names
    ]
    await make_admin(hub, admin)
    board_id = await hub.create_board(owner, "Matrix")
    for member, role in ((editor, "editor"), (viewer, "viewer"), (watcher, "viewer")):
        await hub.add_member(owner, board_id, member, role)
    await hub.add_member(owner, board_id, gone, "editor")
    other_board_id = await hub.create_board(stranger, "Elsewhere")
    bot = (await new_bot(hub, owner, "Matrix bot", board_id=board_id))["bot"]
    assert bot is not None
    full = await new_token(hub, owner, bot["id"], ALL_SCOPES)

    accounts = {
        "owner": owner,
        "editor": editor,
        "viewer": viewer,
        "stranger": stranger,
        "admin": admin,
    }
    peers = {name: await hub.peer(account) for name, account in accounts.items()}
    peers["bot"] = await _bot_peer(hub, full.secret)
    lacking = {}
    for scope in ALL_SCOPES:
        token = await new_token(hub, owner, bot["id"], [s for s in ALL_SCOPES if s != scope])
        lacking[scope] = await _bot_peer(hub, token.secret)

    joined = await ok(peers["owner"], "board:join", {"board_id": board_id})
    channel_id = joined["channel_id"]
    for name in ("editor", "viewer", "bot"):
        await ok(peers[name], "board:join", {"board_id": board_id})
    # a bot that may read tasks but not chat: on the board, never in its channel's room
    assert "channel_id" not in await ok(lacking["chat:read"], "board:join", {"board_id": board_id})
    watcher_peer = await hub.peer(watcher)
    await ok(watcher_peer, "board:join", {"board_id": board_id})
    gone_peer = await hub.peer(gone)
    await ok(gone_peer, "board:join", {"board_id": board_id})

    owner_peer = peers["owner"]
    task = await ok(owner_peer, "task:create", {"board_id": board_id, "title": "Shared"})
    message = await ok(owner_peer, "chat:send", {"channel_id": channel_id, "body": "hello"})
    dm = await ok(owner_peer, "chat:send", {"to_user_id": editor.id, "body": "psst"})
    reminder = await ok(
        owner_peer,
        "reminders:create",
        {
            "task_id": task["task_id"],
            "remind_at": (datetime.now(UTC) + timedelta(days=1)).isoformat(),
        },
    )
    conn = await hub.db()
    try:
        notification_id = await conn.fetchval(
            """INSERT INTO notifications (user_id, task_id, board_id, type, title)
               VALUES ($1, $2, $3, 'system', 'for the owner only') RETURNING id""",
            uuid.UUID(owner.id),
            uuid.UUID(task["task_id"]),
            uuid.UUID(board_id),
        )
    finally:
        await conn.close()

    status, _ = await hub.request(
        "DELETE", f"/api/boards/{board_id}/members/{gone.id}", token=owner.access_token
    )
    assert status == 204
    # Everything emitted before the removal has reached every member once the
    # watcher hears an event sent after it; only then does `gone` start counting.
    await ok(owner_peer, "chat:typing", {"channel_id": channel_id, "typing": False})
    await watcher_peer.wait_for("chat:typing")
    gone_peer.received.clear()

    return World(
        hub=hub,
        accounts=accounts,
        peers=peers,
        lacking=lacking,
        bot_id=bot["id"],
        watcher=watcher_peer,
        gone=gone_peer,
        board_id=board_id,
        other_board_id=other_board_id,
        task_id=task["task_id"],
        channel_id=channel_id,
        dm_id=dm["message"]["channel_id"],
        owner_message_id=message["message"]["id"],
        owner_dm_message_id=dm["message"]["id"],
        notification_id=str(notification_id),
        reminder_id=reminder["id"],
        task_ids={task["task_id"]},
    )


async def close_world(world: World) -> None:
    for peer in [*world.peers.values(), *world.lacking.values(), world.watcher, world.gone]:
        await peer.close()


# The tables a refused event must leave alone, read whole (the world is small).
_TABLES = (
    "boards",
    "board_members",
    "tasks",
    "task_events",
    "processed_ops",
    "outbox",
    "notifications",
    "reminders",
    "chat_channels",
    "channel_members",
    "chat_messages",
    "channel_reads",
    "triage_items",
    "api_tokens",
    "sessions",
)


async def snapshot(hub: Hub) -> dict[str, list[tuple[Any, ...]]]:
    conn = await hub.db()
    try:
        return {
            table: sorted(
                (tuple(row.values()) for row in await conn.fetch(f"SELECT * FROM {table}")),
                key=repr,
            )
            for table in _TABLES
        }
    finally:
        await conn.close()


async def task_version(world: World, task_id: str) -> int:
    conn = await world.hub.db()
    try:
        version = await conn.fetchval("SELECT version FROM tasks WHERE id = $1", uuid.UUID(task_id))
    finally:
        await conn.close()
    return int(version)


# -- payloads: one valid payload per event and target, built for the caller ---

Build = Callable[[World, str], Awaitable[dict[str, Any]]]
Check = Callable[[World, str, Any], None]


async def _fresh_task(world: World) -> str:
    created = await ok(
        world.peers["owner"], "task:create", {"board_id": world.board_id, "title": "Doomed"}
    )
    world.task_ids.add(created["task_id"])
    return str(created["task_id"])


async def _editor_message(world: World, channel_id: str) -> str:
    sent = await ok(world.peers["editor"], "chat:send", {"channel_id": channel_id, "body": "mine"})
    return str(sent["message"]["id"])


async def _board(world: World, actor: str) -> dict[str, Any]:
    return {"board_id": world.board_id}


async def _refresh(world: World, actor: str) -> dict[str, Any]:
    # a bot connection may not switch to any access token; people hand in their own
    return {"access_token": world.accounts.get(actor, world.accounts["owner"]).access_token}


async def _task_update(world: World, actor: str) -> dict[str, Any]:
    return {
        "task_id": world.task_id,
        "base_version": await task_version(world, world.task_id),
        "changes": {"title": f"Title by {actor}"},
    }


async def _task_move(world: World, actor: str) -> dict[str, Any]:
    return {
        "task_id": world.task_id,
        "base_version": await task_version(world, world.task_id),
        "position": float(world.next()),
    }


async def _task_delete(world: World, actor: str) -> dict[str, Any]:
    return {"task_id": await _fresh_task(world), "base_version": 1}


async def _reminder_create(world: World, actor: str) -> dict[str, Any]:
    later = datetime.now(UTC) + timedelta(hours=world.next())
    return {"task_id": world.task_id, "remind_at": later.isoformat()}


def _channel(attribute: str, **extra: Any) -> Build:
    async def build(world: World, actor: str) -> dict[str, Any]:
        return {"channel_id": getattr(world, attribute), **extra}

    return build


def _send(attribute: str) -> Build:
    async def build(world: World, actor: str) -> dict[str, Any]:
        return {"channel_id": getattr(world, attribute), "body": f"from {actor}"}

    return build


async def _send_to_person(world: World, actor: str) -> dict[str, Any]:
    to = world.accounts["editor" if actor == "owner" else "owner"]
    return {"to_user_id": to.id, "body": f"direct from {actor}"}


def _edit(attribute: str) -> Build:
    async def build(world: World, actor: str) -> dict[str, Any]:
        return {"message_id": getattr(world, attribute), "body": f"edited by {actor}"}

    return build


def _delete(attribute: str) -> Build:
    async def build(world: World, actor: str) -> dict[str, Any]:
        return {"message_id": await _editor_message(world, getattr(world, attribute))}

    return build


async def _chat_create(world: World, actor: str) -> dict[str, Any]:
    return {"name": f"side {world.next()}", "board_id": world.board_id, "member_ids": []}


async def _triage(world: World, actor: str) -> dict[str, Any]:
    return {"board_id": world.board_id, "title": f"reported by {actor}"}


# -- what an allowed caller may see: its own, nothing of others ---------------


def _user_id(world: World, actor: str) -> str:
    return world.bot_id if actor.startswith("bot") else world.accounts[actor].id


def _own_notifications(world: World, actor: str, data: Any) -> None:
    ids = {n["id"] for n in data["notifications"]}
    assert (world.notification_id in ids) == (actor == "owner"), (actor, data)


def _own_reminders(world: World, actor: str, data: Any) -> None:
    assert {r["user_id"] for r in data["reminders"]} <= {_user_id(world, actor)}, (actor, data)
    assert (world.reminder_id in {r["id"] for r in data["reminders"]}) == (actor == "owner")


def _own_channels(world: World, actor: str, data: Any) -> None:
    ids = {c["id"] for c in data["channels"]}
    assert (world.channel_id in ids) == (actor in ("owner", "editor", "viewer", "bot")), actor
    assert (world.dm_id in ids) == (actor in ("owner", "editor")), actor


@dataclass(frozen=True)
class Row:
    event: str
    target: str
    expected: dict[str, str]
    build: Build
    check: Check | None = None


def _rows() -> list[Row]:
    return [
        Row(
            "auth:refresh",
            "own token",
            {**ANYONE, "bot": FORBIDDEN, "bot_noscope": FORBIDDEN},
            _refresh,
        ),
        Row("board:join", "board", READERS, _board),
        Row("board:leave", "board", ANY_TOKEN, _board),
        Row("presence:list", "board", READERS, _board),
        Row("board:members", "board", READERS, _board),
        Row("task:create", "board", WRITERS, _task_create),
        Row("task:update", "task", WRITERS, _task_update),
        Row("task:move", "task", WRITERS, _task_move),
        Row("task:delete", "task", WRITERS, _task_delete),
        Row("notifications:list", "own", ANYONE, _notifications_list, _own_notifications),
        # others' ids change nothing (the snapshot below proves it), and are no error
        Row("notifications:read", "owner's", ANYONE, _notifications_read),
        Row("reminders:create", "task", READERS, _reminder_create),
        Row("reminders:list", "task", READERS, _reminders_list, _own_reminders),
        Row(
            "reminders:dismiss",
            "owner's",
            {**dict.fromkeys(ACTORS, NOT_FOUND), "owner": OK, "bot_noscope": FORBIDDEN},
            _reminders_dismiss,
        ),
        Row("chat:channels", "own", ANY_TOKEN, _chat_channels, _own_channels),
        Row("chat:create", "board", READERS, _chat_create),
        Row("chat:join", "channel", READERS, _channel("channel_id")),
        Row("chat:join", "dm", DM_PAIR, _channel("dm_id")),
        Row("chat:leave", "channel", ANY_TOKEN, _channel("channel_id")),
        Row("chat:leave", "dm", ANY_TOKEN, _channel("dm_id")),
        Row("chat:send", "channel", READERS, _send("channel_id")),
        Row("chat:send", "dm", DM_PAIR, _send("dm_id")),
        # to someone one shares a board with; the stranger and the admin share none
        Row("chat:send", "person", READERS, _send_to_person),
        Row("chat:edit", "channel", ONLY_OWNER, _edit("owner_message_id")),
        Row("chat:edit", "dm", ONLY_OWNER, _edit("owner_dm_message_id")),
        # the editor's own message: the sender, or the owner of the channel's board
        Row(
            "chat:delete",
            "channel",
            {**ONLY_OWNER, "editor": OK},
            _delete("channel_id"),
        ),
        Row(
            "chat:delete", "dm", {**ONLY_OWNER, "owner": FORBIDDEN, "editor": OK}, _delete("dm_id")
        ),
        Row("chat:history", "channel", READERS, _channel("channel_id")),
        Row("chat:history", "dm", DM_PAIR, _channel("dm_id")),
        Row("chat:typing", "channel", READERS, _channel("channel_id", typing=False)),
        Row("chat:typing", "dm", DM_PAIR, _channel("dm_id", typing=False)),
        Row("chat:read", "channel", READERS, _channel("channel_id", seq=1)),
        Row("chat:read", "dm", DM_PAIR, _channel("dm_id", seq=1)),
        Row("triage:create", "board", WRITERS, _triage),
    ]


async def _task_create(world: World, actor: str) -> dict[str, Any]:
    return {"board_id": world.board_id, "title": f"Created by {actor}"}


async def _notifications_list(world: World, actor: str) -> dict[str, Any]:
    return {}


async def _notifications_read(world: World, actor: str) -> dict[str, Any]:
    return {"ids": [world.notification_id]}


async def _reminders_list(world: World, actor: str) -> dict[str, Any]:
    return {"task_id": world.task_id}


async def _reminders_dismiss(world: World, actor: str) -> dict[str, Any]:
    return {"reminder_id": world.reminder_id}


async def _chat_channels(world: World, actor: str) -> dict[str, Any]:
    return {}


def _outcome(ack: Any) -> str:
    if not isinstance(ack, dict):
        return f"no envelope: {ack!r}"
    return OK if ack.get("ok") else str(ack.get("error", {}).get("code"))


def _about_board(world: World, received: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """What a peer heard that belongs to the board: a board event, or anything naming
    the board, its channel, its DM or one of its tasks."""
    ids = {world.board_id, world.channel_id, world.dm_id, *world.task_ids}
    return [
        (event, data)
        for event, data in received
        if event in BOARD_EVENTS or any(i in json.dumps(data, default=str) for i in ids)
    ]


async def test_every_event_for_every_caller(hub: Hub) -> None:
    rows = _rows()
    assert {row.event for row in rows} == {str(event) for event in CLIENT_EVENTS}, (
        "every client event needs a row in the matrix"
    )
    world = await build_world(hub)
    failures: list[str] = []
    try:
        for row in rows:
            scope = CLIENT_EVENTS[ClientEvent(row.event)].scope
            for actor in ACTORS:
                peer = world.peer(actor, scope)
                payload = await row.build(world, actor)
                before = await snapshot(hub)
                ack = await peer.call(row.event, payload)
                got, want = _outcome(ack), row.expected[actor]
                where = f"{row.event} on the {row.target} by {actor}"
                if got != want:
                    failures.append(f"{where}: expected {want}, got {ack}")
                    continue
                if got == OK:
                    if row.check is not None:
                        try:
                            row.check(world, actor, ack["data"])
                        except AssertionError as exc:
                            failures.append(f"{where}: saw more than its own: {exc}")
                    if row.event == "notifications:read" and actor != "owner":
                        if await snapshot(hub) != before:
                            failures.append(f"{where}: changed another user's notification")
                    if row.event in ("task:create", "task:delete"):
                        world.task_ids.add(str(ack["data"]["task_id"]))
                    continue
                if actor == "bot_noscope" and scope is not None:
                    if ack["error"].get("details") != {"scope": scope}:
                        failures.append(f"{where}: refused, but not for the scope: {ack}")
                if await snapshot(hub) != before:
                    failures.append(f"{where}: refused ({got}) yet the database changed")
        for actor in ACTORS:
            for scope in (None, *ALL_SCOPES):
                if not world.peer(actor, scope).sio.connected:
                    failures.append(f"{actor} ({scope}) was disconnected")
        assert not failures, "\n".join(failures)

        # The board was busy all along, and its members heard it ...
        for name in ("task:created", "task:updated", "task:deleted", "chat:message", "presence"):
            assert world.watcher.events(name), name
        await world.watcher.wait_for("chat:typing", 2)
        tasks_only = world.lacking["chat:read"]
        assert tasks_only.events("task:created")
        # ... but a token without chat:read never entered the channel's room (its DMs:
        # see test_a_token_without_chat_read_hears_no_direct_message)
        heard = tasks_only.events("chat:message") + tasks_only.events("chat:typing")
        assert [e for e in heard if e["channel_id"] == world.channel_id] == []
        # A round trip of each outsider's own, after the watcher heard the last event.
        for outsider in (world.peers["stranger"], world.peers["admin"], world.gone):
            assert (await outsider.call("notifications:list", {}))["ok"]
            assert _about_board(world, outsider.received) == [], outsider.received
            assert outsider.sio.connected
    finally:
        await close_world(world)


async def test_a_tasks_board_comes_from_its_row_and_rooms_from_the_server(hub: Hub) -> None:
    """The stranger owns board A; the task is on board B. No payload names a task's
    board (it is read from the stored task), so naming one is an unknown field; by
    id alone, a task of B is B's. Room names are never taken from a client."""
    world = await build_world(hub)
    stranger = world.peers["stranger"]
    task_id, board_a = world.task_id, world.other_board_id
    try:
        await ok(stranger, "board:join", {"board_id": board_a})
        before = await snapshot(hub)
        version = await task_version(world, task_id)
        later = (datetime.now(UTC) + timedelta(days=1)).isoformat()
        with_board_a: list[tuple[str, dict[str, Any]]] = [
            (
                "task:update",
                {"task_id": task_id, "base_version": version, "changes": {"title": "A's"}},
            ),
            ("task:move", {"task_id": task_id, "base_version": version, "position": 9.0}),
            ("task:delete", {"task_id": task_id}),
            ("reminders:create", {"task_id": task_id, "remind_at": later}),
            ("reminders:list", {"task_id": task_id}),
        ]
        for event, payload in with_board_a:
            ack = await stranger.call(event, {**payload, "board_id": board_a})
            assert _outcome(ack) == "invalid_payload", (event, ack)
            assert "`board_id`" in ack["error"]["message"], ack
            # by its id alone, the task is on board B, where the stranger is nobody
            ack = await stranger.call(event, payload)
            assert _outcome(ack) == FORBIDDEN, (event, ack)
        moved = await stranger.call(
            "task:update",
            {"task_id": task_id, "base_version": version, "changes": {"board_id": board_a}},
        )
        assert _outcome(moved) == "invalid_payload", moved
        # Another user's op_id replays nothing of theirs: it is the stranger's own op.
        op_id = str(uuid.uuid4())
        await ok(
            world.peers["owner"],
            "task:update",
            {
                "task_id": task_id,
                "base_version": version,
                "changes": {"title": "Op"},
                "op_id": op_id,
            },
        )
        before = await snapshot(hub)
        replay = await stranger.call(
            "task:update",
            {
                "task_id": task_id,
                "base_version": version,
                "changes": {"title": "Op"},
                "op_id": op_id,
            },
        )
        assert _outcome(replay) == FORBIDDEN, replay

        # Raw room names, wherever a client might slip one in.
        rooms = [
            f"board:{world.board_id}",
            f"channel:{world.channel_id}",
            f"user:{world.accounts['owner'].id}",
        ]
        attempts: list[tuple[str, dict[str, Any]]] = []
        for room in rooms:
            attempts += [
                ("board:join", {"board_id": room}),
                ("board:join", {"board_id": board_a, "room": room}),
                ("chat:join", {"channel_id": room}),
                ("chat:join", {"channel_id": world.channel_id, "room": room}),
                ("join", {"room": room}),
                ("enter_room", {"room": room}),
            ]
        for event, payload in attempts:
            ack = await stranger.call(event, payload)
            assert _outcome(ack) == "invalid_payload", (event, payload, ack)
        assert await snapshot(hub) == before

        # Then the board is busy; its watcher hears it, the stranger nothing.
        owner = world.peers["owner"]
        made = await ok(owner, "task:create", {"board_id": world.board_id, "title": "After"})
        world.task_ids.add(made["task_id"])
        await ok(owner, "chat:send", {"channel_id": world.channel_id, "body": "after"})
        await ok(owner, "chat:send", {"channel_id": world.dm_id, "body": "after, privately"})
        await ok(owner, "chat:typing", {"channel_id": world.channel_id, "typing": False})
        await ok(owner, "board:leave", {"board_id": world.board_id})
        await ok(owner, "board:join", {"board_id": world.board_id})
        await world.watcher.wait_for("chat:typing", 2)
        await world.watcher.wait_for("presence", 2)
        for outsider in (stranger, world.peers["admin"], world.gone):
            assert (await outsider.call("notifications:list", {}))["ok"]
            assert _about_board(world, outsider.received) == [], outsider.received
            assert outsider.sio.connected
    finally:
        await close_world(world)


async def test_a_token_without_chat_read_hears_no_direct_message(hub: Hub) -> None:
    owner = await hub.register("Owner")
    board_id = await hub.create_board(owner)
    bot = (await new_bot(hub, owner, "Tasks bot", board_id=board_id))["bot"]
    chat_token = await new_token(hub, owner, bot["id"], ["chat:read"])
    tasks_token = await new_token(hub, owner, bot["id"], ["tasks:read", "tasks:write"])
    owner_peer = await hub.peer(owner)
    reader = await _bot_peer(hub, chat_token.secret)
    tasks_only = await _bot_peer(hub, tasks_token.secret)
    try:
        await ok(owner_peer, "chat:send", {"to_user_id": bot["id"], "body": "for your eyes"})
        await reader.wait_for("chat:message")  # the bot's chat token hears it
        await asyncio.sleep(0.3)  # one broadcast reached both: give the other time to show
        history = await tasks_only.call(
            "chat:history", {"channel_id": reader.events("chat:message")[0]["channel_id"]}
        )
        assert history["error"]["details"] == {"scope": "chat:read"}, history
        # ... but the token that may not read chat must not hear it live either
        assert [event for event, _ in tasks_only.received if event.startswith("chat:")] == []
    finally:
        for peer in (owner_peer, reader, tasks_only):
            await peer.close()
