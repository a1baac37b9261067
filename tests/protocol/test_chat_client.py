"""The Python client's chat: typed calls and events, and a followed channel catching
up after a dropped connection, once each and oldest first."""

from __future__ import annotations

import asyncio

import pytest

from protocol.errors import Forbidden, InvalidPayload
from protocol.models import Channel, ChatMessage
from protocol.replies import ChannelRead, Typing
from protocol.serializers import Serializer
from tests.protocol.test_client import SERIALIZERS, client_of, drop_connection, eventually
from tests.support import Hub


@SERIALIZERS
async def test_chat_calls_and_events_are_typed(hub: Hub, serializer: Serializer) -> None:
    alice, bob = await hub.register("Alice"), await hub.register("Bob")
    board_id = await hub.create_board(alice)
    await hub.add_member(alice, board_id, bob, "editor")
    other = await hub.peer(bob)
    client = client_of(hub, alice, serializer)
    messages: list[ChatMessage] = []
    typing: list[Typing] = []
    unread: list[ChannelRead] = []
    created: list[Channel] = []
    client.on("chat:message", messages.append)
    client.on("chat:typing", typing.append)
    client.on("chat:unread", unread.append)
    client.on("chat:channel", created.append)
    try:
        await client.connect()
        joined = await client.join_board(board_id)
        assert joined.channel_id is not None
        (general,) = await client.chat.channels()
        assert general.id == joined.channel_id and general.is_board_channel
        assert (await other.call("board:join", {"board_id": board_id}))["ok"]

        mine = await client.chat.send("hello @bob", channel_id=general.id)
        assert mine.seq == 1 and mine.mentions == [(await client.members(board_id))[1].user_id]
        theirs = await other.call("chat:send", {"channel_id": str(general.id), "body": "hi"})
        await eventually(lambda: len(messages) == 2)
        assert [m.body for m in messages] == ["hello @bob", "hi"]
        assert messages[1].seq == 2
        assert str(messages[1].id) == theirs["data"]["message"]["id"]

        edited = await client.chat.edit(mine.id, "hello again")
        assert edited.edited_at is not None
        page = await client.chat.history(general.id, limit=1)
        assert [m.seq for m in page.messages] == [2] and page.next == 2
        assert (await other.call("chat:typing", {"channel_id": str(general.id)}))["ok"]
        await eventually(lambda: len(typing) == 1)
        assert typing[0].name == "Bob" and typing[0].typing

        read = await client.chat.read(general.id, 2)
        assert (read.last_read_seq, read.unread) == (2, 0)
        await eventually(lambda: len(unread) == 1)

        dm = await client.chat.send("psst", to_user_id=(await client.members(board_id))[1].user_id)
        await eventually(lambda: len(created) == 1)  # a first DM announces its channel
        assert created[0].id == dm.channel_id and created[0].kind == "dm"
        assert (await client.chat.delete(dm.id)).deleted_at is not None
        side = await client.chat.create("design", board_id=board_id)
        await eventually(lambda: len(created) == 2)
        assert created[1].id == side.id and created[1].name == "design"

        with pytest.raises(InvalidPayload):
            await client.chat.send("   ", channel_id=general.id)
        with pytest.raises(Forbidden):
            await client.chat.edit(theirs["data"]["message"]["id"], "not mine")
    finally:
        await client.close()
        await other.close()


@SERIALIZERS
async def test_a_followed_channel_catches_up_after_a_reconnect(
    hub: Hub, serializer: Serializer
) -> None:
    alice, bob = await hub.register("Alice"), await hub.register("Bob")
    board_id = await hub.create_board(alice)
    await hub.add_member(alice, board_id, bob, "editor")
    other = await hub.peer(bob)
    client = client_of(hub, alice, serializer, reconnection_delay=3)
    seen: list[ChatMessage] = []
    client.on("chat:message", seen.append)
    try:
        await client.connect()
        side = await client.chat.create("design", board_id=board_id, member_ids=[bob.id])
        await client.chat.join(side.id)
        await other.call("chat:send", {"channel_id": str(side.id), "body": "m1"})
        await eventually(lambda: len(seen) == 1)

        await drop_connection(client)
        # more than one page of history is missed
        for n in range(2, 123):
            sent = await other.call("chat:send", {"channel_id": str(side.id), "body": f"m{n}"})
            assert sent["ok"], sent
        assert not client.sio.connected, "the messages were meant to be sent while disconnected"

        await eventually(lambda: len(seen) == 122, timeout=20)
        assert [m.body for m in seen] == [f"m{n}" for n in range(1, 123)]
        assert [m.seq for m in seen] == list(range(1, 123))

        await other.call("chat:send", {"channel_id": str(side.id), "body": "live"})
        await eventually(lambda: len(seen) == 123)
        await asyncio.sleep(0.3)
        assert [m.body for m in seen[-1:]] == ["live"] and len(seen) == 123
    finally:
        await client.close()
        await other.close()
