"""Chat on Kafka: every stored message is published on `chat_messages`; messages
other services produce there are stored once and reach the channel's room; a
mention notifies the member named."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from protocol.records import ChatMessageBody, ChatRecord, decode_chat, encode
from tests.support import Hub, Peer
from tests.workers.kafka_tools import produce, read_topic

StartHub = Callable[..., Any]
# The first record also waits for the bridge's consumer group to form.
WARM_UP = 20.0


def announcement(channel_id: str, body: str, **fields: Any) -> ChatRecord:
    """A message as a system announcer service would produce it."""
    return ChatRecord(
        event_id=uuid.uuid4(),
        type=fields.pop("type", "chat.message"),
        occurred_at=datetime.now(UTC),
        source="announcer",
        payload=ChatMessageBody(
            id=fields.pop("id", uuid.uuid4()),
            channel_id=uuid.UUID(channel_id),
            body=body,
            **fields,
        ),
    )


async def _channel_with_client(hub: Hub) -> tuple[str, str, Peer]:
    owner = await hub.register("Owner")
    board_id = await hub.create_board(owner)
    peer = await hub.peer(owner)
    joined = await peer.call("board:join", {"board_id": board_id})
    assert joined["ok"], joined
    return board_id, joined["data"]["channel_id"], peer


def _messages(peer: Peer) -> list[dict[str, Any]]:
    return peer.events("chat:message")


async def test_a_message_from_another_service_is_stored_once_and_reaches_the_room(
    start_hub: StartHub,
) -> None:
    hub: Hub = await start_hub(EMBEDDED_WORKERS="bridge")
    _, channel_id, peer = await _channel_with_client(hub)
    bootstrap = hub.settings.kafka_bootstrap_servers
    topic = hub.settings.kafka_topic_prefix + "chat_messages"
    first = announcement(channel_id, "Deploy at 5 pm", message_type="system")
    second = announcement(channel_id, "Deploy done", message_type="system")
    key = channel_id.encode()
    # the first one twice: a producer's retry
    await produce(bootstrap, topic, [encode(first), encode(first), encode(second)], key=key)

    await peer.wait_for("chat:message", 2, timeout=WARM_UP)
    await asyncio.sleep(0.5)  # a third would have arrived by now
    received = _messages(peer)
    assert [(m["id"], m["seq"], m["body"]) for m in received] == [
        (str(first.payload.id), 1, "Deploy at 5 pm"),
        (str(second.payload.id), 2, "Deploy done"),
    ]
    assert received[0]["source"] == "announcer"
    assert received[0]["message_type"] == "system"
    assert received[0]["sender_id"] is None

    history = await peer.call("chat:history", {"channel_id": channel_id})
    assert [m["id"] for m in history["data"]["messages"]] == [
        str(second.payload.id),
        str(first.payload.id),
    ]
    # the hub's next message follows them in the channel
    sent = await peer.call("chat:send", {"channel_id": channel_id, "body": "Thanks"})
    assert sent["data"]["message"]["seq"] == 3
    await peer.close()


async def test_malformed_and_unfounded_chat_records_are_skipped(start_hub: StartHub) -> None:
    hub: Hub = await start_hub(EMBEDDED_WORKERS="bridge")
    _, channel_id, peer = await _channel_with_client(hub)
    stranger = await hub.register("Stranger")
    bootstrap = hub.settings.kafka_bootstrap_servers
    topic = hub.settings.kafka_topic_prefix + "chat_messages"
    good = announcement(channel_id, "still here")
    bad = [
        b"{not json",
        json.dumps({"event_id": str(uuid.uuid4()), "type": "chat.message"}).encode(),
        encode(announcement(channel_id, "x", type="chat.exploded")),
        encode(announcement(channel_id, "   ")),  # no text
        encode(announcement(str(uuid.uuid4()), "no such channel")),
        encode(announcement(channel_id, "not a member", sender_id=uuid.UUID(stranger.id))),
        encode(announcement(channel_id, "an edit of nothing", type="chat.edited")),
        encode(announcement(channel_id, "y" * 10_001)),
    ]
    await produce(bootstrap, topic, [*bad, encode(good)], key=channel_id.encode())
    await peer.wait_for("chat:message", timeout=WARM_UP)
    await asyncio.sleep(0.5)
    assert [m["id"] for m in _messages(peer)] == [str(good.payload.id)]
    conn = await hub.db()
    try:
        count = await conn.fetchval(
            "SELECT count(*) FROM chat_messages WHERE channel_id = $1", uuid.UUID(channel_id)
        )
    finally:
        await conn.close()
    assert count == 1
    await peer.close()


async def test_every_stored_message_edit_and_delete_is_published_once(
    start_hub: StartHub,
) -> None:
    hub: Hub = await start_hub(
        EMBEDDED_WORKERS="outbox,bridge,notifier", OUTBOX_POLL_INTERVAL="0.2"
    )
    owner = await hub.register("Owner")
    bob = await hub.register("Bob Stone")
    board_id = await hub.create_board(owner)
    await hub.add_member(owner, board_id, bob, "editor")
    alice_peer = await hub.peer(owner)
    bob_peer = await hub.peer(bob)
    try:
        channel_id = (await alice_peer.call("board:join", {"board_id": board_id}))["data"][
            "channel_id"
        ]
        assert (await bob_peer.call("board:join", {"board_id": board_id}))["ok"]
        sent = await alice_peer.call(
            "chat:send", {"channel_id": channel_id, "body": "@bobstone can you look?"}
        )
        message = sent["data"]["message"]
        assert message["mentions"] == [bob.id]
        edited = await alice_peer.call(
            "chat:edit", {"message_id": message["id"], "body": "@bobstone please look"}
        )
        assert edited["ok"], edited
        deleted = await alice_peer.call("chat:delete", {"message_id": message["id"]})
        assert deleted["ok"], deleted

        # the mention became a notification for Bob (through Kafka and the notifier)
        (note,) = await bob_peer.wait_for("notification", timeout=WARM_UP)
        assert note["type"] == "mention"
        assert note["title"] == "Owner mentioned you in #general"
        assert note["board_id"] == board_id
        assert alice_peer.events("notification") == []

        records = []
        for _ in range(100):
            records = [
                decode_chat(r.value)
                for r in await read_topic(
                    hub.settings.kafka_bootstrap_servers,
                    hub.settings.kafka_topic_prefix + "chat_messages",
                )
            ]
            if len(records) >= 3:
                break
            await asyncio.sleep(0.1)
        assert [(r.type, str(r.payload.id)) for r in records] == [
            ("chat.message", message["id"]),
            ("chat.edited", message["id"]),
            ("chat.deleted", message["id"]),
        ]
        assert records[2].payload.body == ""
        # the bridge recognised the hub's own events: each reached the room once
        await asyncio.sleep(1)
        assert len(bob_peer.events("chat:message")) == 1
        assert len(bob_peer.events("chat:edited")) == 1
        assert len(bob_peer.events("chat:deleted")) == 1
    finally:
        await alice_peer.close()
        await bob_peer.close()
