"""Bad input on every client event: the ack names the problem, the connection
stays up, and nothing is written.

Each case runs against its own hub with one board holding one task (version 1,
board seq 1) and one message in the board's channel, and a websocket client
that joined the board. The case's arguments are sent as they are: a tuple is
the list of event arguments.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec
import pytest
import socketio

from handlers.rest import DEPS
from tests.support import Account, Hub, Peer

LIMIT = 64 * 1024  # the default max_payload_bytes
TOO_LARGE = "payload_too_large"
CALL_TIMEOUT = 5


@dataclass(frozen=True)
class Ctx:
    board_id: str
    task_id: str
    user_id: str
    channel_id: str
    message_id: str


Args = Callable[[Ctx], tuple[Any, ...]]


@dataclass(frozen=True)
class Case:
    id: str
    event: str
    args: Args
    mentions: str | None = None  # a part of the error message the user can act on
    code: str = "invalid_payload"


# A payload each event accepts; every case below breaks exactly one thing in it.
VALID: dict[str, Callable[[Ctx], dict[str, Any]]] = {
    "board:join": lambda c: {"board_id": c.board_id},
    "board:leave": lambda c: {"board_id": c.board_id},
    "presence:list": lambda c: {"board_id": c.board_id},
    "task:create": lambda c: {"board_id": c.board_id, "title": "Another"},
    "task:update": lambda c: {
        "task_id": c.task_id,
        "base_version": 1,
        "changes": {"title": "Renamed"},
    },
    "task:move": lambda c: {
        "task_id": c.task_id,
        "base_version": 1,
        "position": 2048.0,
        "status": "in_progress",
    },
    "task:delete": lambda c: {"task_id": c.task_id, "base_version": 1},
    "chat:channels": lambda c: {},
    "chat:create": lambda c: {"name": "side", "board_id": c.board_id, "member_ids": []},
    "chat:join": lambda c: {"channel_id": c.channel_id, "limit": 10},
    "chat:leave": lambda c: {"channel_id": c.channel_id},
    "chat:send": lambda c: {"channel_id": c.channel_id, "body": "hello"},
    "chat:edit": lambda c: {"message_id": c.message_id, "body": "edited"},
    "chat:delete": lambda c: {"message_id": c.message_id},
    "chat:history": lambda c: {"channel_id": c.channel_id, "limit": 10},
    "chat:typing": lambda c: {"channel_id": c.channel_id, "typing": True},
    "chat:read": lambda c: {"channel_id": c.channel_id, "seq": 1},
    "triage:create": lambda c: {"board_id": c.board_id, "title": "Broken"},
}
REQUIRED: dict[str, list[str]] = {
    "board:join": ["board_id"],
    "board:leave": ["board_id"],
    "presence:list": ["board_id"],
    "task:create": ["board_id", "title"],
    "task:update": ["task_id", "base_version", "changes"],
    "task:move": ["task_id", "base_version", "position"],
    "task:delete": ["task_id"],
    "chat:join": ["channel_id"],
    "chat:leave": ["channel_id"],
    # without a channel_id there must be a to_user_id: the ack names channel_id
    "chat:send": ["body", "channel_id"],
    "chat:edit": ["message_id", "body"],
    "chat:delete": ["message_id"],
    "chat:history": ["channel_id"],
    "chat:typing": ["channel_id"],
    "chat:read": ["channel_id", "seq"],
    "triage:create": ["board_id", "title"],
}
# The id each generic case breaks; the first required field unless said here.
ID_FIELD = {event: fields[0] for event, fields in REQUIRED.items()} | {"chat:send": "channel_id"}
# chat:channels (no fields) and chat:create (no id field) have specific cases only.
EVENTS = list(REQUIRED)


def changed(event: str, **fields: Any) -> Args:
    """The valid payload of `event` with `fields` replaced or added."""
    return lambda c: ({**VALID[event](c), **fields},)


def without(event: str, name: str) -> Args:
    return lambda c: ({k: v for k, v in VALID[event](c).items() if k != name},)


def with_changes(**fields: Any) -> Args:
    return lambda c: ({**VALID["task:update"](c), "changes": fields},)


def sized(event: str, size: int) -> Args:
    """The valid payload plus an unknown `pad` field, `size` bytes as compact JSON."""

    def build(c: Ctx) -> tuple[Any, ...]:
        payload = {**VALID[event](c), "pad": ""}
        payload["pad"] = "x" * (size - len(msgspec.json.encode(payload)))
        assert len(msgspec.json.encode(payload)) == size
        return (payload,)

    return build


def fixed(*args: Any) -> Args:
    return lambda c: args


def twice(event: str) -> Args:
    return lambda c: (VALID[event](c), VALID[event](c))


def in_a_list(event: str) -> Args:
    return lambda c: ([VALID[event](c)],)


def as_json_text(event: str) -> Args:
    return lambda c: (json.dumps(VALID[event](c)),)


def generic_cases() -> list[Case]:
    cases: list[Case] = []
    for event in EVENTS:
        id_field = ID_FIELD[event]
        cases += [
            Case(f"{event}-unknown-field", event, changed(event, bogus=1), mentions="bogus"),
            Case(
                f"{event}-unknown-field-null",
                event,
                changed(event, extra=None),
                mentions="extra",
            ),
            Case(f"{event}-no-arguments", event, fixed(), mentions="exactly one"),
            Case(f"{event}-two-arguments", event, twice(event), mentions="exactly one"),
            Case(f"{event}-payload-list", event, in_a_list(event), mentions="object"),
            Case(f"{event}-payload-empty-list", event, fixed([])),
            Case(f"{event}-payload-json-string", event, as_json_text(event), mentions="object"),
            Case(f"{event}-payload-string", event, fixed("hello"), mentions="object"),
            Case(f"{event}-payload-null", event, fixed(None), mentions="object"),
            Case(f"{event}-payload-number", event, fixed(42), mentions="object"),
            Case(f"{event}-payload-bool", event, fixed(True), mentions="object"),
            Case(f"{event}-empty-object", event, fixed({}), mentions=REQUIRED[event][0]),
            Case(f"{event}-id-not-uuid", event, changed(event, **{id_field: "not-a-uuid"})),
            Case(f"{event}-id-empty", event, changed(event, **{id_field: ""})),
            Case(
                f"{event}-id-uuid-with-junk",
                event,
                changed(event, **{id_field: str(uuid.uuid4()) + "x"}),
            ),
            Case(f"{event}-id-int", event, changed(event, **{id_field: 123}), mentions=id_field),
            Case(f"{event}-id-bool", event, changed(event, **{id_field: True}), mentions=id_field),
            Case(f"{event}-id-null", event, changed(event, **{id_field: None}), mentions=id_field),
            Case(f"{event}-id-object", event, changed(event, **{id_field: {}}), mentions=id_field),
            Case(f"{event}-id-nul-char", event, changed(event, **{id_field: "\x00"})),
            Case(
                f"{event}-too-large",
                event,
                sized(event, LIMIT + 1),
                code="payload_too_large",
            ),
            Case(
                f"{event}-far-too-large",
                event,
                sized(event, 4 * LIMIT),
                code="payload_too_large",
            ),
            # Exactly at the limit is not too large: it is refused for its unknown field.
            Case(f"{event}-at-limit", event, sized(event, LIMIT), mentions="pad"),
        ]
        cases += [
            Case(f"{event}-missing-{name}", event, without(event, name), mentions=name)
            for name in REQUIRED[event]
        ]
    return cases


SPECIFIC: list[Case] = [
    # board:join
    Case("join-since-seq-bool", "board:join", changed("board:join", since_seq=True)),
    Case("join-since-seq-negative", "board:join", changed("board:join", since_seq=-1)),
    Case("join-since-seq-string", "board:join", changed("board:join", since_seq="0")),
    Case("join-since-seq-float", "board:join", changed("board:join", since_seq=0.5)),
    Case("join-since-seq-huge", "board:join", changed("board:join", since_seq=2**64)),
    # task:create
    Case("create-title-256", "task:create", changed("task:create", title="t" * 256), "title"),
    Case("create-title-empty", "task:create", changed("task:create", title=""), mentions="title"),
    Case("create-title-null", "task:create", changed("task:create", title=None), mentions="title"),
    Case("create-title-int", "task:create", changed("task:create", title=7), mentions="title"),
    Case("create-title-bool", "task:create", changed("task:create", title=False), "title"),
    Case("create-title-list", "task:create", changed("task:create", title=["a"]), "title"),
    Case("create-title-nul", "task:create", changed("task:create", title="a\x00b"), "NUL"),
    Case(
        "create-title-lone-surrogate",
        "task:create",
        changed("task:create", title="a\ud800b"),
        mentions="surrogate",
    ),
    Case(
        "create-description-20001",
        "task:create",
        changed("task:create", description="d" * 20_001),
        mentions="description",
    ),
    Case(
        "create-description-nul",
        "task:create",
        changed("task:create", description="line\x00"),
        mentions="NUL",
    ),
    Case("create-tags-21", "task:create", changed("task:create", tags=["t"] * 21), "tags"),
    Case("create-tag-51", "task:create", changed("task:create", tags=["t" * 51]), "tags"),
    Case("create-tag-empty", "task:create", changed("task:create", tags=[""]), "tags"),
    Case("create-tag-int", "task:create", changed("task:create", tags=[1]), "tags"),
    Case("create-tag-nul", "task:create", changed("task:create", tags=["a\x00"]), "NUL"),
    Case("create-tags-string", "task:create", changed("task:create", tags="a,b"), "tags"),
    Case("create-status-bogus", "task:create", changed("task:create", status="later"), "status"),
    Case("create-priority-int", "task:create", changed("task:create", priority=1), "priority"),
    Case("create-position-bool", "task:create", changed("task:create", position=True)),
    Case("create-position-string", "task:create", changed("task:create", position="1")),
    Case("create-position-huge", "task:create", changed("task:create", position=1e16)),
    Case("create-position-nan", "task:create", changed("task:create", position=float("nan"))),
    Case("create-position-inf", "task:create", changed("task:create", position=float("inf"))),
    Case("create-epic-101", "task:create", changed("task:create", epic="e" * 101), "epic"),
    Case(
        "create-due-date-naive",
        "task:create",
        changed("task:create", due_date="2030-01-01T00:00:00"),
        mentions="due_date",
    ),
    Case(
        "create-due-date-garbage",
        "task:create",
        changed("task:create", due_date="next tuesday"),
        mentions="due_date",
    ),
    Case(
        "create-due-before-start",
        "task:create",
        changed("task:create", start_date="2030-01-02T00:00:00Z", due_date="2030-01-01T00:00:00Z"),
        mentions="due_date",
    ),
    Case(
        "create-recurrence-bad",
        "task:create",
        changed("task:create", recurrence="hourly"),
        mentions="recurrence",
    ),
    Case("create-op-id-not-uuid", "task:create", changed("task:create", op_id="op-1"), "op_id"),
    Case(
        "create-assignee-not-uuid",
        "task:create",
        changed("task:create", assignee_id="bob"),
        mentions="assignee_id",
    ),
    Case(
        "create-assignee-not-member",
        "task:create",
        changed("task:create", assignee_id=str(uuid.uuid4())),
        mentions="assignee",
    ),
    Case("create-sets-id", "task:create", changed("task:create", id=str(uuid.uuid4())), "id"),
    Case("create-sets-version", "task:create", changed("task:create", version=9), "version"),
    # task:update
    Case("update-base-version-bool", "task:update", changed("task:update", base_version=True)),
    Case("update-base-version-string", "task:update", changed("task:update", base_version="1")),
    Case("update-base-version-float", "task:update", changed("task:update", base_version=1.5)),
    Case("update-base-version-zero", "task:update", changed("task:update", base_version=0)),
    Case("update-base-version-huge", "task:update", changed("task:update", base_version=2**63)),
    Case(
        "update-base-version-ahead",
        "task:update",
        changed("task:update", base_version=2),
        mentions="base_version",
    ),
    Case("update-changes-empty", "task:update", with_changes(), mentions="at least one"),
    Case("update-changes-null", "task:update", changed("task:update", changes=None), "changes"),
    Case("update-changes-list", "task:update", changed("task:update", changes=[]), "changes"),
    Case("update-changes-string", "task:update", changed("task:update", changes="x"), "changes"),
    Case("update-changes-unknown", "task:update", with_changes(colour="red"), mentions="colour"),
    Case("update-changes-version", "task:update", with_changes(version=5), mentions="version"),
    Case("update-changes-board", "task:update", with_changes(board_id=str(uuid.uuid4()))),
    Case("update-title-256", "task:update", with_changes(title="t" * 256), mentions="title"),
    Case("update-title-null", "task:update", with_changes(title=None), mentions="title"),
    Case("update-title-nul", "task:update", with_changes(title="\x00"), mentions="NUL"),
    Case("update-tags-21", "task:update", with_changes(tags=["t"] * 21), mentions="tags"),
    Case("update-tags-null", "task:update", with_changes(tags=None), mentions="tags"),
    Case("update-position-bool", "task:update", with_changes(position=False)),
    Case("update-status-null", "task:update", with_changes(status=None), mentions="status"),
    Case(
        "update-due-before-start",
        "task:update",
        with_changes(start_date="2030-01-02T00:00:00Z", due_date="2030-01-01T00:00:00Z"),
        mentions="due_date",
    ),
    Case("update-op-id-int", "task:update", changed("task:update", op_id=1), mentions="op_id"),
    # task:move
    Case("move-position-bool", "task:move", changed("task:move", position=True), "position"),
    Case("move-position-string", "task:move", changed("task:move", position="1"), "position"),
    Case("move-position-null", "task:move", changed("task:move", position=None), "position"),
    Case("move-position-huge", "task:move", changed("task:move", position=-1e16), "position"),
    Case("move-status-bogus", "task:move", changed("task:move", status="gone"), "status"),
    Case("move-base-version-bool", "task:move", changed("task:move", base_version=True)),
    Case("move-to-other-board", "task:move", changed("task:move", board_id=str(uuid.uuid4()))),
    Case("move-title", "task:move", changed("task:move", title="sneaky"), mentions="title"),
    # task:delete
    Case("delete-base-version-bool", "task:delete", changed("task:delete", base_version=True)),
    Case("delete-base-version-string", "task:delete", changed("task:delete", base_version="1")),
    Case("delete-base-version-zero", "task:delete", changed("task:delete", base_version=0)),
    Case("delete-op-id-bad", "task:delete", changed("task:delete", op_id="x"), mentions="op_id"),
    # chat:channels
    Case("channels-unknown-field", "chat:channels", fixed({"bogus": 1}), mentions="bogus"),
    Case("channels-no-arguments", "chat:channels", fixed(), mentions="exactly one"),
    Case("channels-payload-list", "chat:channels", fixed([]), mentions="object"),
    Case("channels-payload-null", "chat:channels", fixed(None), mentions="object"),
    Case("channels-payload-string", "chat:channels", fixed("all"), mentions="object"),
    Case("channels-too-large", "chat:channels", sized("chat:channels", LIMIT + 1), code=TOO_LARGE),
    # chat:create
    Case("chat-create-unknown-field", "chat:create", changed("chat:create", topic="x"), "topic"),
    Case("chat-create-no-name", "chat:create", without("chat:create", "name"), mentions="name"),
    Case("chat-create-name-empty", "chat:create", changed("chat:create", name=""), "name"),
    Case("chat-create-name-blank", "chat:create", changed("chat:create", name="   "), "name"),
    Case("chat-create-name-81", "chat:create", changed("chat:create", name="n" * 81), "name"),
    Case("chat-create-name-int", "chat:create", changed("chat:create", name=1), mentions="name"),
    Case("chat-create-name-nul", "chat:create", changed("chat:create", name="a\x00"), "NUL"),
    Case("chat-create-board-not-uuid", "chat:create", changed("chat:create", board_id="b")),
    Case("chat-create-board-int", "chat:create", changed("chat:create", board_id=1)),
    Case(
        "chat-create-members-string",
        "chat:create",
        changed("chat:create", member_ids="everyone"),
        mentions="member_ids",
    ),
    Case(
        "chat-create-member-not-uuid",
        "chat:create",
        changed("chat:create", member_ids=["bob"]),
        mentions="member_ids",
    ),
    Case(
        "chat-create-members-201",
        "chat:create",
        changed("chat:create", member_ids=[str(uuid.uuid4()) for _ in range(201)]),
        mentions="member_ids",
    ),
    Case(
        "chat-create-member-not-on-board",
        "chat:create",
        changed("chat:create", member_ids=[str(uuid.uuid4())]),
        mentions="member",
    ),
    # chat:send
    Case("send-body-empty", "chat:send", changed("chat:send", body=""), mentions="body"),
    Case("send-body-blank", "chat:send", changed("chat:send", body=" \n\t "), mentions="body"),
    Case("send-body-10001", "chat:send", changed("chat:send", body="b" * 10_001), "body"),
    Case("send-body-null", "chat:send", changed("chat:send", body=None), mentions="body"),
    Case("send-body-int", "chat:send", changed("chat:send", body=42), mentions="body"),
    Case("send-body-list", "chat:send", changed("chat:send", body=["hi"]), mentions="body"),
    Case("send-body-object", "chat:send", changed("chat:send", body={"text": "hi"}), "body"),
    Case("send-body-nul", "chat:send", changed("chat:send", body="hi\x00"), mentions="NUL"),
    Case(
        "send-body-lone-surrogate",
        "chat:send",
        changed("chat:send", body="a\udc00"),
        mentions="surrogate",
    ),
    Case(
        "send-channel-and-user",
        "chat:send",
        changed("chat:send", to_user_id=str(uuid.uuid4())),
        mentions="channel_id",
    ),
    Case(
        "send-to-user-not-uuid",
        "chat:send",
        lambda c: ({"to_user_id": "bob", "body": "hi"},),
        mentions="to_user_id",
    ),
    Case(
        "send-to-self",
        "chat:send",
        lambda c: ({"to_user_id": c.user_id, "body": "hi"},),
        mentions="another user",
    ),
    Case(
        "send-client-msg-id-not-uuid",
        "chat:send",
        changed("chat:send", client_msg_id="msg-1"),
        mentions="client_msg_id",
    ),
    Case(
        "send-client-msg-id-int",
        "chat:send",
        changed("chat:send", client_msg_id=1),
        mentions="client_msg_id",
    ),
    Case("send-sets-seq", "chat:send", changed("chat:send", seq=1), mentions="seq"),
    Case("send-sets-sender", "chat:send", changed("chat:send", sender_id=str(uuid.uuid4()))),
    # chat:edit
    Case("edit-body-empty", "chat:edit", changed("chat:edit", body=""), mentions="body"),
    Case("edit-body-blank", "chat:edit", changed("chat:edit", body="   "), mentions="body"),
    Case("edit-body-10001", "chat:edit", changed("chat:edit", body="b" * 10_001), "body"),
    Case("edit-body-null", "chat:edit", changed("chat:edit", body=None), mentions="body"),
    Case("edit-body-int", "chat:edit", changed("chat:edit", body=1), mentions="body"),
    Case("edit-channel", "chat:edit", changed("chat:edit", channel_id=str(uuid.uuid4()))),
    # chat:join and chat:history
    Case("join-limit-0", "chat:join", changed("chat:join", limit=0), mentions="limit"),
    Case("join-limit-101", "chat:join", changed("chat:join", limit=101), mentions="limit"),
    Case("join-limit-string", "chat:join", changed("chat:join", limit="10"), "limit"),
    Case("join-limit-bool", "chat:join", changed("chat:join", limit=True), mentions="limit"),
    Case("history-limit-0", "chat:history", changed("chat:history", limit=0), "limit"),
    Case("history-limit-101", "chat:history", changed("chat:history", limit=101), "limit"),
    Case("history-limit-neg", "chat:history", changed("chat:history", limit=-1), "limit"),
    Case("history-limit-float", "chat:history", changed("chat:history", limit=10.5), "limit"),
    Case("history-limit-null", "chat:history", changed("chat:history", limit=None), "limit"),
    Case("history-before-0", "chat:history", changed("chat:history", before=0), "before"),
    Case("history-before-string", "chat:history", changed("chat:history", before="9")),
    Case("history-before-bool", "chat:history", changed("chat:history", before=True)),
    Case("history-before-huge", "chat:history", changed("chat:history", before=2**64)),
    # chat:typing
    Case("typing-string", "chat:typing", changed("chat:typing", typing="yes"), "typing"),
    Case("typing-int", "chat:typing", changed("chat:typing", typing=1), mentions="typing"),
    Case("typing-null", "chat:typing", changed("chat:typing", typing=None), "typing"),
    # chat:read
    Case("read-seq-negative", "chat:read", changed("chat:read", seq=-1), mentions="seq"),
    Case("read-seq-bool", "chat:read", changed("chat:read", seq=True), mentions="seq"),
    Case("read-seq-string", "chat:read", changed("chat:read", seq="1"), mentions="seq"),
    Case("read-seq-float", "chat:read", changed("chat:read", seq=1.5), mentions="seq"),
    Case("read-seq-huge", "chat:read", changed("chat:read", seq=2**63), mentions="seq"),
    Case("read-seq-null", "chat:read", changed("chat:read", seq=None), mentions="seq"),
    # triage:create
    Case("triage-priority-bogus", "triage:create", changed("triage:create", priority="urgent")),
    Case("triage-priority-int", "triage:create", changed("triage:create", priority=3)),
    Case("triage-title-empty", "triage:create", changed("triage:create", title=""), "title"),
    Case("triage-title-201", "triage:create", changed("triage:create", title="t" * 201)),
    Case("triage-category-empty", "triage:create", changed("triage:create", category="")),
    Case("triage-category-51", "triage:create", changed("triage:create", category="c" * 51)),
    Case(
        "triage-description-20001",
        "triage:create",
        changed("triage:create", description="d" * 20_001),
        mentions="description",
    ),
    Case("triage-sets-status", "triage:create", changed("triage:create", status="resolved")),
    # event names
    Case("unknown-event", "task:nuke", changed("task:create"), mentions="unknown event"),
    Case("event-wrong-case", "TASK:CREATE", changed("task:create"), mentions="unknown event"),
    Case("event-trailing-space", "task:create ", changed("task:create"), "unknown event"),
    Case("event-empty-name", "", changed("task:create"), mentions="unknown event"),
    Case("event-long-name", "x" * 10_000, fixed({}), mentions="unknown event"),
    # Reserved names: python-socketio delivers them to the namespace like any event.
    Case("reserved-connect", "connect", changed("board:join"), mentions="unknown event"),
    Case(
        "reserved-connect-with-auth",
        "connect",
        fixed({}, {"token": "whatever"}),
        mentions="unknown event",
    ),
    Case("reserved-disconnect", "disconnect", fixed("client disconnect"), "unknown event"),
    Case("reserved-message", "message", changed("task:create"), mentions="unknown event"),
    Case("reserved-connect-error", "connect_error", fixed({}), mentions="unknown event"),
]

CASES = generic_cases() + SPECIFIC


@dataclass
class Scene:
    hub: Hub
    owner: Account
    peer: Peer
    ctx: Ctx


async def _scene(hub: Hub) -> Scene:
    """A board with one task (version 1, seq 1) and one chat message, and its owner
    connected and joined."""
    owner = await hub.register("Owner")
    board_id = await hub.create_board(owner)
    peer = await hub.peer(owner)
    joined = await peer.call("board:join", {"board_id": board_id})
    assert joined["ok"], joined
    created = await peer.call("task:create", {"board_id": board_id, "title": "Existing"})
    assert created["ok"], created
    task = created["data"]["task"]
    assert task["version"] == 1 and created["data"]["seq"] == 1
    await peer.wait_for("task:created")
    channel_id = joined["data"]["channel_id"]
    sent = await peer.call("chat:send", {"channel_id": channel_id, "body": "Existing"})
    assert sent["ok"], sent
    await peer.wait_for("chat:message")
    ctx = Ctx(
        board_id=board_id,
        task_id=task["id"],
        user_id=owner.id,
        channel_id=channel_id,
        message_id=sent["data"]["message"]["id"],
    )
    return Scene(hub, owner, peer, ctx)


async def _snapshot(hub: Hub, ctx: Ctx) -> dict[str, Any]:
    conn = await hub.db()
    try:
        task = await conn.fetchrow("SELECT * FROM tasks WHERE id = $1", uuid.UUID(ctx.task_id))
        return {
            "tasks": await conn.fetchval("SELECT count(*) FROM tasks"),
            "task_events": await conn.fetchval("SELECT count(*) FROM task_events"),
            "processed_ops": await conn.fetchval("SELECT count(*) FROM processed_ops"),
            "last_seq": await conn.fetchval(
                "SELECT last_seq FROM boards WHERE id = $1", uuid.UUID(ctx.board_id)
            ),
            "task": dict(task) if task else None,
            "chat_channels": [
                dict(r) for r in await conn.fetch("SELECT * FROM chat_channels ORDER BY id")
            ],
            "chat_messages": [
                dict(r) for r in await conn.fetch("SELECT * FROM chat_messages ORDER BY id")
            ],
            "channel_members": await conn.fetchval("SELECT count(*) FROM channel_members"),
            "channel_reads": await conn.fetchval("SELECT count(*) FROM channel_reads"),
            "triage_items": await conn.fetchval("SELECT count(*) FROM triage_items"),
            "outbox": await conn.fetchval("SELECT count(*) FROM outbox"),
        }
    finally:
        await conn.close()


def _task_events(peer: Peer) -> list[tuple[str, Any]]:
    """What the hub emitted about tasks and chat (presence is not a change)."""
    return [(event, data) for event, data in peer.received if event.startswith(("task:", "chat:"))]


async def _assert_still_up(scene: Scene) -> None:
    listed = await scene.peer.call(
        "presence:list", {"board_id": scene.ctx.board_id}, timeout=CALL_TIMEOUT
    )
    assert listed["ok"], listed
    assert scene.owner.id in [user["id"] for user in listed["data"]["users"]], listed
    assert scene.peer.sio.connected


async def _check(scene: Scene, case: Case) -> None:
    before = await _snapshot(scene.hub, scene.ctx)
    assert before["last_seq"] == 1 and before["task"]["version"] == 1
    seen = _task_events(scene.peer)
    deps = scene.hub.app[DEPS]
    typing_key = deps.keys.typing(uuid.UUID(scene.ctx.channel_id), uuid.UUID(scene.owner.id))

    ack = await scene.peer.call(case.event, case.args(scene.ctx), timeout=CALL_TIMEOUT)

    assert ack["ok"] is False, ack
    assert ack["error"]["code"] == case.code, ack
    assert isinstance(ack["error"]["message"], str) and ack["error"]["message"], ack
    if case.mentions is not None:
        assert case.mentions in ack["error"]["message"], ack
    if case.code == "payload_too_large":
        assert ack["error"]["details"] == {"limit": LIMIT}, ack
    await _assert_still_up(scene)
    assert await _snapshot(scene.hub, scene.ctx) == before
    assert _task_events(scene.peer) == seen
    assert not await deps.redis.exists(typing_key)  # nobody was said to be typing


def _group(case: Case) -> str:
    return case.event if case.event in VALID else "event-names"


GROUPS: dict[str, list[Case]] = {}
for _case in CASES:
    GROUPS.setdefault(_group(_case), []).append(_case)


@pytest.mark.parametrize("group", list(GROUPS))
async def test_bad_input_is_refused_and_changes_nothing(hub: Hub, group: str) -> None:
    """Every case of the group against one hub; a failed case gets a fresh board and
    connection, so each case is judged on its own and all failures are reported."""
    assert hub.settings.max_payload_bytes == LIMIT
    failures: list[str] = []
    scene = await _scene(hub)
    try:
        for case in GROUPS[group]:
            try:
                await _check(scene, case)
            except (AssertionError, TimeoutError, socketio.exceptions.SocketIOError) as exc:
                failures.append(f"{case.id}: {type(exc).__name__}: {exc}")
                await scene.peer.close()
                scene = await _scene(hub)
    finally:
        await scene.peer.close()
    assert not failures, "\n".join(failures)


async def test_the_valid_payloads_of_the_table_are_accepted(hub: Hub) -> None:
    """The control: every case above breaks one thing in a payload that works."""
    scene = await _scene(hub)
    try:
        for event in ["board:join", "presence:list", "task:create", "task:update"]:
            ack = await scene.peer.call(event, VALID[event](scene.ctx))
            assert ack["ok"], (event, ack)
        move = {**VALID["task:move"](scene.ctx), "base_version": 2}
        assert (await scene.peer.call("task:move", move))["ok"]
        delete = {**VALID["task:delete"](scene.ctx), "base_version": 3}
        assert (await scene.peer.call("task:delete", delete))["ok"]
        assert (await scene.peer.call("board:leave", VALID["board:leave"](scene.ctx)))["ok"]
        after = await _snapshot(hub, scene.ctx)
        assert after["tasks"] == 2 and after["task_events"] == 5 and after["last_seq"] == 5
        assert after["task"]["version"] == 4 and after["task"]["deleted_at"] is not None
    finally:
        await scene.peer.close()


async def test_the_valid_chat_payloads_of_the_table_are_accepted(hub: Hub) -> None:
    """The control for the chat and triage cases."""
    scene = await _scene(hub)
    try:
        for event in [
            "chat:channels",
            "chat:join",
            "chat:history",
            "chat:typing",
            "chat:read",
            "chat:send",
            "chat:edit",
            "chat:create",
            "triage:create",
            "chat:delete",
            "chat:leave",
        ]:
            ack = await scene.peer.call(event, VALID[event](scene.ctx))
            assert ack["ok"], (event, ack)
        after = await _snapshot(hub, scene.ctx)
        assert len(after["chat_channels"]) == 2 and after["triage_items"] == 1
        assert [(m["seq"], m["body"]) for m in after["chat_messages"] if m["seq"] == 1] == [
            (1, "")  # edited, then deleted
        ]
        assert len(after["chat_messages"]) == 2 and after["channel_reads"] == 1
    finally:
        await scene.peer.close()
