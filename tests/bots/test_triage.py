"""The triage bot end to end: a real bot process-in-a-task, speaking msgpack to a
real hub, driven by a person's JSON client in the board's channel."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from bots import triage
from tests.support import Account, Hub, Peer, new_bot, new_token

ALL_SCOPES = ["chat:read", "chat:write", "tasks:read", "tasks:write"]


@dataclass
class Scene:
    hub: Hub
    owner: Account
    carol: Account
    board_id: str
    channel_id: str
    peer: Peer
    bot_id: str

    async def say(self, body: str) -> dict[str, Any]:
        """Send a message and wait for the bot's answer to it."""
        before = len(self.replies())
        sent = await self.peer.call("chat:send", {"channel_id": self.channel_id, "body": body})
        assert sent["ok"], sent
        deadline = asyncio.get_running_loop().time() + 10
        while len(self.replies()) <= before:
            assert asyncio.get_running_loop().time() < deadline, f"no answer to {body!r}"
            await asyncio.sleep(0.05)
        (reply,) = self.replies()[before:]
        return reply

    def replies(self) -> list[dict[str, Any]]:
        return [m for m in self.peer.events("chat:message") if m["sender_id"] == self.bot_id]


@pytest.fixture
async def scene(hub: Hub) -> AsyncIterator[Scene]:
    owner = await hub.register("Owner")
    carol = await hub.register("Carol Jones")
    board_id = await hub.create_board(owner, "Launch")
    await hub.add_member(owner, board_id, carol, "editor")
    created = await new_bot(hub, owner, "Triage", board_id=board_id)
    bot_id = created["bot"]["id"]
    token = await new_token(hub, owner, bot_id, ALL_SCOPES)
    peer = await hub.peer(owner)
    joined = await peer.call("board:join", {"board_id": board_id})
    assert joined["ok"], joined
    stop, ready = asyncio.Event(), asyncio.Event()
    running = asyncio.create_task(
        triage.run(hub.url, token.secret, "https://taskhub.example", stop, ready)
    )
    waiting = asyncio.create_task(ready.wait())
    await asyncio.wait({running, waiting}, timeout=15, return_when=asyncio.FIRST_COMPLETED)
    if running.done():
        running.result()  # the bot's error
    assert ready.is_set(), "the bot never got ready"
    scene = Scene(hub, owner, carol, board_id, joined["data"]["channel_id"], peer, bot_id)
    try:
        yield scene
    finally:
        stop.set()
        await asyncio.wait_for(running, 10)
        await peer.close()


async def test_task_creates_the_task_that_the_board_sees_and_replies_with_its_link(
    scene: Scene,
) -> None:
    reply = await scene.say("/task Fix login")
    (created,) = await scene.peer.wait_for("task:created")
    assert created["task"]["title"] == "Fix login"
    assert created["actor_id"] == scene.bot_id
    task_id = created["task_id"]
    assert reply["body"] == (
        f"Created “Fix login” ({task_id[:8]}): "
        f"https://taskhub.example/#/boards/{scene.board_id}/tasks/{task_id}"
    )
    assert reply["channel_id"] == scene.channel_id


async def test_assign_and_status_change_the_task_by_title_or_id(scene: Scene) -> None:
    await scene.say("/task Fix login")
    await scene.say("/task Write release notes")
    (first, _) = await scene.peer.wait_for("task:created", 2)
    reply = await scene.say("/assign fix login @caroljones")
    assert reply["body"] == "Assigned “Fix login” to Carol Jones."
    reply = await scene.say(f"/status {first['task_id'][:8]} in_progress")
    assert reply["body"] == "“Fix login” is now in_progress."
    conn = await scene.hub.db()
    try:
        row = await conn.fetchrow(
            "SELECT assignee_id, status FROM tasks WHERE id = $1", uuid.UUID(first["task_id"])
        )
    finally:
        await conn.close()
    assert str(row["assignee_id"]) == scene.carol.id
    assert row["status"] == "in_progress"
    # an edit by a person in between does not trip the bot (it rebases)
    task = (await scene.peer.wait_for("task:updated", 2))[-1]["task"]
    renamed = await scene.peer.call(
        "task:update",
        {
            "task_id": task["id"],
            "base_version": task["version"],
            "changes": {"title": "Fix login!"},
        },
    )
    assert renamed["ok"], renamed
    reply = await scene.say("/status Fix login! review")
    assert reply["body"] == "“Fix login!” is now review."


async def test_triage_files_a_pending_item(scene: Scene) -> None:
    reply = await scene.say("/triage Checkout page is blank on Safari")
    assert reply["body"] == "Filed for triage: “Checkout page is blank on Safari” (pending)."
    conn = await scene.hub.db()
    try:
        row = await conn.fetchrow(
            "SELECT * FROM triage_items WHERE board_id = $1", uuid.UUID(scene.board_id)
        )
    finally:
        await conn.close()
    assert row["title"] == "Checkout page is blank on Safari"
    assert str(row["reporter_id"]) == scene.bot_id


@pytest.mark.parametrize(
    ("command", "answer"),
    [
        ("/help", triage.USAGE),
        ("/task", triage.COMMAND_USAGE["task"]),
        ("/assign nothing", triage.COMMAND_USAGE["assign"]),
        ("/assign Fix login carol", triage.COMMAND_USAGE["assign"]),
        ("/status Fix login sideways", triage.COMMAND_USAGE["status"]),
        ("/triage", triage.COMMAND_USAGE["triage"]),
        ("/dance", f"I do not know /dance.\n{triage.USAGE}"),
        ("/status No such task done", "I found no task “No such task” on this board."),
        ("/assign Fix @nobody", "I found no single member @nobody on this board."),
        ("/task " + "x" * 300, None),  # cut to the longest title, still created
    ],
)
async def test_a_bad_command_gets_its_usage_never_a_stack_trace(
    scene: Scene, command: str, answer: str | None
) -> None:
    reply = await scene.say(command)
    if answer is not None:
        assert reply["body"] == answer
    assert "Traceback" not in reply["body"]
    assert not reply["body"].startswith("/")  # never a command itself


async def test_plain_messages_and_its_own_replies_get_no_answer(scene: Scene) -> None:
    sent = await scene.peer.call(
        "chat:send", {"channel_id": scene.channel_id, "body": "good morning"}
    )
    assert sent["ok"]
    await scene.say("/help")
    await asyncio.sleep(0.5)
    assert len(scene.replies()) == 1
