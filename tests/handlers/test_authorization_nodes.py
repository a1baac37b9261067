"""Zero events of a board reach a non-member, across nodes too (issue 7, point 5).

test_authorization_matrix.py checks it on one node. Here the board's members
write on node A while the outsiders listen on node B, where every event arrives
through the Socket.IO Redis channel and is delivered by B's own rooms: a stranger
who tried to join, an admin who is not a member, a member removed (who had
joined on B before), a bot token without `chat:read` (it hears the tasks, never
the chat), and a member's DM partner elsewhere. A member listening on B is the
control: it hears every event, so silence elsewhere is not a broken channel.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from tests.handlers.test_authorization_matrix import BOARD_EVENTS, ok
from tests.handlers.test_bots import ALL_SCOPES, make_admin
from tests.support import Hub, Peer, new_bot, new_token

# What the members do on node A, and the server event each makes in the board's rooms.
EMITTED = (
    "task:created",
    "task:updated",
    "task:deleted",
    "chat:message",
    "chat:edited",
    "chat:deleted",
    "chat:typing",
    "presence",
)


async def test_outsiders_on_another_node_hear_nothing_of_the_board(
    start_hub: Callable[..., Awaitable[Hub]],
) -> None:
    a = await start_hub()
    b = await start_hub()
    owner, editor, viewer, stranger, admin, gone = [
        await a.register(name)
        for name in ("Owner", "Editor", "Viewer", "Stranger", "Admin", "Gone")
    ]
    await make_admin(a, admin)
    board_id = await a.create_board(owner, "Across nodes")
    for member, role in ((editor, "editor"), (viewer, "viewer"), (gone, "editor")):
        await a.add_member(owner, board_id, member, role)
    bot = (await new_bot(a, owner, "Reader", board_id=board_id))["bot"]
    no_chat = await new_token(a, owner, bot["id"], [s for s in ALL_SCOPES if s != "chat:read"])

    # node A: the members who act
    owner_a, editor_a = await a.peer(owner), await a.peer(editor)
    joined = await ok(owner_a, "board:join", {"board_id": board_id})
    channel_id = joined["channel_id"]
    await ok(editor_a, "board:join", {"board_id": board_id})
    # node B: the control, and the outsiders
    control = await b.peer(viewer)
    await ok(control, "board:join", {"board_id": board_id})
    outsiders: dict[str, Peer] = {
        "stranger": await b.peer(stranger),
        "admin": await b.peer(admin),
        "gone": await b.peer(gone),
    }
    bot_peer = Peer(b.url, no_chat.secret)
    await bot_peer.connect()
    await ok(bot_peer, "board:join", {"board_id": board_id})
    for name in ("stranger", "admin"):
        refused = await outsiders[name].call("board:join", {"board_id": board_id})
        assert refused["error"]["code"] == "forbidden", refused
    await ok(outsiders["gone"], "board:join", {"board_id": board_id})
    status, _ = await a.request(
        "DELETE", f"/api/boards/{board_id}/members/{gone.id}", token=owner.access_token
    )
    assert status == 204
    try:
        # settle: the control hears a marker sent after the removal
        await ok(owner_a, "chat:typing", {"channel_id": channel_id, "typing": False})
        await control.wait_for("chat:typing")
        for peer in (control, bot_peer, *outsiders.values()):
            peer.received.clear()

        await _every_board_event(owner_a, editor_a, board_id, channel_id)
        for event in EMITTED:
            await control.wait_for(event, timeout=10)
        # the control heard the last event, sent after all the others on one node:
        # what the outsiders heard by now is all they will hear of it
        for name, peer in outsiders.items():
            heard = [event for event, _ in peer.received if event in BOARD_EVENTS]
            assert heard == [], f"{name} on node B heard {heard}"
        bot_heard = {event for event, _ in bot_peer.received if event in BOARD_EVENTS}
        assert bot_heard == {"task:created", "task:updated", "task:deleted", "presence"}, bot_heard
    finally:
        for peer in (owner_a, editor_a, control, bot_peer, *outsiders.values()):
            await peer.close()


async def _every_board_event(owner: Peer, editor: Peer, board_id: str, channel_id: str) -> None:
    created = await ok(owner, "task:create", {"board_id": board_id, "title": "Secret plan"})
    task: dict[str, Any] = created["task"]
    updated = await ok(
        editor,
        "task:update",
        {"task_id": task["id"], "base_version": task["version"], "changes": {"title": "Plan B"}},
    )
    await ok(
        owner,
        "task:delete",
        {"task_id": task["id"], "base_version": updated["task"]["version"]},
    )
    sent = await ok(editor, "chat:send", {"channel_id": channel_id, "body": "psst"})
    message_id = sent["message"]["id"]
    await ok(editor, "chat:edit", {"message_id": message_id, "body": "never mind"})
    await ok(editor, "chat:delete", {"message_id": message_id})
    await ok(owner, "board:leave", {"board_id": board_id})
    await ok(owner, "board:join", {"board_id": board_id})
    await ok(owner, "chat:typing", {"channel_id": channel_id, "typing": True})
