"""Chat end to end: board channels, channels, DMs, history, typing, read markers,
edits and deletes, who may do what; and `triage:create`.

Every board has a channel ("general") whose members are the board's members;
`board:join` enters its room and says its `channel_id`.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

from tests.support import Account, Hub, Peer, new_bot, new_token

QUIET = 0.4  # long enough for a duplicate or a leaked event to have arrived


async def _board(hub: Hub, owner: Account, **members: Account) -> str:
    """A board of `owner`; each keyword is a role (`editor`, `viewer`) and its member."""
    board_id = await hub.create_board(owner)
    for role, member in members.items():
        await hub.add_member(owner, board_id, member, role)
    return board_id


async def _join(peer: Peer, board_id: str) -> str:
    """Join the board; returns its channel's id (the room is joined too)."""
    joined = await peer.call("board:join", {"board_id": board_id})
    assert joined["ok"], joined
    return str(joined["data"]["channel_id"])


async def _send(peer: Peer, body: str, **target: Any) -> dict[str, Any]:
    ack = await peer.call("chat:send", {"body": body, **target})
    assert ack["ok"], ack
    assert ack["data"]["duplicate"] is False, ack
    message: dict[str, Any] = ack["data"]["message"]
    return message


def _code(ack: Any) -> str:
    assert ack["ok"] is False, ack
    return str(ack["error"]["code"])


async def _close(*peers: Peer) -> None:
    for peer in peers:
        await peer.close()


async def _fetch(hub: Hub, sql: str, *args: Any) -> Any:
    conn = await hub.db()
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


async def _channel_of(peer: Peer, channel_id: str) -> dict[str, Any]:
    listed = await peer.call("chat:channels", {})
    assert listed["ok"], listed
    (found,) = [c for c in listed["data"]["channels"] if c["id"] == channel_id]
    return dict(found)


async def test_json_and_msgpack_clients_on_two_nodes_each_get_every_message_once_in_order(
    start_hub: Callable[..., Any],
) -> None:
    node_a: Hub = await start_hub()
    node_b: Hub = await start_hub()
    alice, bob = await node_a.register("Alice"), await node_a.register("Bob")
    board_id = await _board(node_a, alice, editor=bob)
    # Carol is a bot: an API token, msgpack
    carol = (await new_bot(node_a, alice, "Carol", board_id=board_id))["bot"]
    scopes = ["chat:read", "chat:write", "tasks:read"]
    token = await new_token(node_a, alice, carol["id"], scopes)
    bot = Peer.msgpack(node_b.url, token.secret)
    await bot.connect()
    peers = {
        alice.id: await node_a.peer(alice),  # JSON, node A
        bob.id: await node_b.peer(bob),  # JSON, node B
        carol["id"]: bot,  # a msgpack bot, node B
    }
    names = {alice.id: "Alice", bob.id: "Bob", carol["id"]: "Carol"}
    try:
        channel_ids = {await _join(peer, board_id) for peer in peers.values()}
        assert len(channel_ids) == 1
        (channel_id,) = channel_ids

        async def send_five(user_id: str) -> list[dict[str, Any]]:
            return [
                await _send(peers[user_id], f"{names[user_id]} #{n}", channel_id=channel_id)
                for n in range(5)
            ]

        # the three senders run at once, each awaiting its own acks: interleaved
        sent = dict(zip(peers, await asyncio.gather(*(send_five(u) for u in peers)), strict=True))

        seqs = sorted(m["seq"] for messages in sent.values() for m in messages)
        assert seqs == list(range(1, 16))
        for user_id, messages in sent.items():
            assert [m["seq"] for m in messages] == sorted(m["seq"] for m in messages)
            assert all(m["sender_id"] == user_id for m in messages)
            assert all(m["channel_id"] == channel_id for m in messages)

        for peer in peers.values():
            await peer.wait_for("chat:message", 15)
        await asyncio.sleep(QUIET)
        for receiver_id, peer in peers.items():
            got = peer.events("chat:message")
            assert len(got) == 15, (receiver_id, got)
            assert len({m["id"] for m in got}) == 15
            for sender_id, messages in sent.items():
                in_order = [m for m in got if m["sender_id"] == sender_id]
                # what arrived is what was acked, in the order it was sent
                assert in_order == messages, (receiver_id, sender_id)
        # the msgpack client decoded exactly what the JSON clients did
        by_id = {m["id"]: m for m in peers[alice.id].events("chat:message")}
        assert all(by_id[m["id"]] == m for m in peers[carol["id"]].events("chat:message"))
        conn = await node_a.db()
        try:
            last_seq = await conn.fetchval(
                "SELECT last_seq FROM chat_channels WHERE id = $1", uuid.UUID(channel_id)
            )
            stored = await conn.fetch(
                "SELECT seq FROM chat_messages WHERE channel_id = $1 ORDER BY seq",
                uuid.UUID(channel_id),
            )
        finally:
            await conn.close()
        assert last_seq == 15 and [r["seq"] for r in stored] == list(range(1, 16))
    finally:
        await _close(*peers.values())


async def test_history_pages_250_messages_newest_first_each_once(hub: Hub) -> None:
    alice, bob = await hub.register("Alice"), await hub.register("Bob")
    board_id = await _board(hub, alice, editor=bob)
    a, b = await hub.peer(alice), await hub.peer(bob)
    try:
        channel_id = await _join(a, board_id)
        sent = [await _send(a, f"message {n}", channel_id=channel_id) for n in range(250)]
        assert [m["seq"] for m in sent] == list(range(1, 251))
        deleted = await a.call("chat:delete", {"message_id": sent[119]["id"]})
        assert deleted["ok"], deleted

        pages: list[list[dict[str, Any]]] = []
        nexts: list[int | None] = []
        before: int | None = None
        while True:
            payload: dict[str, Any] = {"channel_id": channel_id, "limit": 100}
            if before is not None:
                payload["before"] = before
            ack = await b.call("chat:history", payload)
            assert ack["ok"], ack
            pages.append(ack["data"]["messages"])
            nexts.append(ack["data"]["next"])
            before = ack["data"]["next"]
            if before is None:
                break
            assert len(pages) < 10, nexts  # `next` must end

        assert [len(page) for page in pages] == [100, 100, 50]
        assert nexts == [151, 51, None]
        flat = [m for page in pages for m in page]
        assert [m["seq"] for m in flat] == list(range(250, 0, -1))
        assert [m["id"] for m in flat] == [m["id"] for m in reversed(sent)]
        # the deleted one keeps its place, without its text
        (gone,) = [m for m in flat if m["seq"] == 120]
        assert gone["body"] == "" and gone["deleted_at"] is not None
        assert all(m["body"] == f"message {m['seq'] - 1}" for m in flat if m["seq"] != 120)

        # the default page is 50; a last page that is exactly full still ends with null
        default_nexts = []
        before = None
        while True:
            payload = {"channel_id": channel_id}
            if before is not None:
                payload["before"] = before
            ack = await b.call("chat:history", payload)
            assert ack["ok"] and len(ack["data"]["messages"]) == 50, ack
            before = ack["data"]["next"]
            default_nexts.append(before)
            if before is None:
                break
            assert len(default_nexts) < 10, default_nexts
        assert default_nexts == [201, 151, 101, 51, None]

        empty = await b.call("chat:history", {"channel_id": channel_id, "before": 1})
        assert empty["ok"] and empty["data"] == {"messages": [], "next": None}, empty
        # chat:join answers with the newest `limit`
        joined = await b.call("chat:join", {"channel_id": channel_id, "limit": 3})
        assert joined["ok"], joined
        assert [m["seq"] for m in joined["data"]["messages"]] == [250, 249, 248]
        assert joined["data"]["channel"]["id"] == channel_id
        assert joined["data"]["channel"]["last_seq"] == 250
    finally:
        await _close(a, b)


async def test_an_edit_and_a_delete_reach_every_member_and_the_senders_other_tab(
    hub: Hub, start_hub: Callable[..., Any]
) -> None:
    other = await start_hub()
    alice, bob = await hub.register("Alice"), await hub.register("Bob")
    board_id = await _board(hub, alice, editor=bob)
    a1, a2, b = await hub.peer(alice), await other.peer(alice), await other.peer(bob)
    peers = (a1, a2, b)
    try:
        channel_id = await _join(a1, board_id)
        await _join(b, board_id)
        joined = await a2.call("chat:join", {"channel_id": channel_id})  # the room alone
        assert joined["ok"], joined

        message = await _send(a1, "frist", channel_id=channel_id)
        edited = await a1.call("chat:edit", {"message_id": message["id"], "body": "first"})
        assert edited["ok"], edited
        assert edited["data"]["message"]["body"] == "first"
        assert edited["data"]["message"]["edited_at"] is not None
        for peer in peers:
            (seen,) = await peer.wait_for("chat:edited")
            assert seen == edited["data"]["message"]
            assert seen["id"] == message["id"] and seen["seq"] == message["seq"]

        deleted = await a1.call("chat:delete", {"message_id": message["id"]})
        assert deleted["ok"], deleted
        gone = deleted["data"]["message"]
        assert gone["body"] == "" and gone["deleted_at"] is not None and gone["seq"] == 1
        for peer in peers:
            (seen,) = await peer.wait_for("chat:deleted")
            assert seen == gone
        await asyncio.sleep(QUIET)
        for peer in peers:
            assert len(peer.events("chat:message")) == 1
            assert len(peer.events("chat:edited")) == 1
            assert len(peer.events("chat:deleted")) == 1

        # a deleted message is neither edited nor deleted again
        again = await a1.call("chat:edit", {"message_id": message["id"], "body": "back"})
        assert _code(again) == "not_found"
        assert _code(await a1.call("chat:delete", {"message_id": message["id"]})) == "not_found"
        history = await b.call("chat:history", {"channel_id": channel_id})
        assert history["ok"] and history["data"]["messages"] == [gone], history
    finally:
        await _close(*peers)


async def test_a_non_member_is_forbidden_in_a_channel_and_hears_nothing(hub: Hub) -> None:
    alice, mallory = await hub.register("Alice"), await hub.register("Mallory")
    board_id = await _board(hub, alice)
    await hub.create_board(mallory)  # a board of her own: she is a user like any other
    a, m = await hub.peer(alice), await hub.peer(mallory)
    try:
        channel_id = await _join(a, board_id)
        message = await _send(a, "members only", channel_id=channel_id)
        target = {"channel_id": channel_id}
        attempts = {
            "chat:send": {**target, "body": "let me in"},
            "chat:history": target,
            "chat:typing": {**target, "typing": True},
            "chat:join": target,
            "chat:read": {**target, "seq": 1},
            "chat:edit": {"message_id": message["id"], "body": "mine now"},
            "chat:delete": {"message_id": message["id"]},
        }
        for event, payload in attempts.items():
            assert _code(await m.call(event, payload)) == "forbidden", event
        assert _code(await m.call("board:join", {"board_id": board_id})) == "forbidden"

        unknown = {"channel_id": str(uuid.uuid4())}
        for event, payload in {
            "chat:send": {**unknown, "body": "anyone?"},
            "chat:history": unknown,
            "chat:typing": unknown,
            "chat:join": unknown,
            "chat:read": {**unknown, "seq": 1},
            "chat:edit": {"message_id": str(uuid.uuid4()), "body": "x"},
            "chat:delete": {"message_id": str(uuid.uuid4())},
        }.items():
            assert _code(await a.call(event, payload)) == "not_found", event

        # what the refused join did not open, the next message shows
        await _send(a, "still private", channel_id=channel_id)
        await a.wait_for("chat:message", 2)
        await asyncio.sleep(QUIET)
        assert not [e for e, _ in m.received if e.startswith("chat:")], m.received
        listed = await m.call("chat:channels", {})
        assert channel_id not in [c["id"] for c in listed["data"]["channels"]]
        rows = await _fetch(
            hub, "SELECT body FROM chat_messages WHERE channel_id = $1", uuid.UUID(channel_id)
        )
        assert sorted(r["body"] for r in rows) == ["members only", "still private"]
    finally:
        await _close(a, m)


async def test_a_resent_client_msg_id_stores_and_shows_the_message_once(
    hub: Hub, start_hub: Callable[..., Any]
) -> None:
    other = await start_hub()
    alice, bob = await hub.register("Alice"), await hub.register("Bob")
    board_id = await _board(hub, alice, editor=bob)
    a, a_elsewhere, b = await hub.peer(alice), await other.peer(alice), await hub.peer(bob)
    try:
        channel_id = await _join(a, board_id)
        await _join(b, board_id)
        client_msg_id = str(uuid.uuid4())
        payload = {"channel_id": channel_id, "body": "once", "client_msg_id": client_msg_id}
        first = await a.call("chat:send", payload)
        again = await a.call("chat:send", payload)
        assert first["ok"] and again["ok"], (first, again)
        assert first["data"]["duplicate"] is False and again["data"]["duplicate"] is True
        assert again["data"]["message"] == first["data"]["message"]
        assert first["data"]["message"]["client_msg_id"] == client_msg_id

        # resends racing each other from two nodes: still one message
        racing_id = str(uuid.uuid4())
        racing = {"channel_id": channel_id, "body": "raced", "client_msg_id": racing_id}
        acks = await asyncio.gather(
            *(peer.call("chat:send", racing) for peer in (a, a_elsewhere, a, a_elsewhere))
        )
        assert all(ack["ok"] for ack in acks), acks
        assert [ack["data"]["duplicate"] for ack in acks].count(False) == 1, acks
        assert all(ack["data"]["message"] == acks[0]["data"]["message"] for ack in acks)

        received = await b.wait_for("chat:message", 2)
        await asyncio.sleep(QUIET)
        assert len(b.events("chat:message")) == 2, b.received
        assert [m["body"] for m in received] == ["once", "raced"]

        # the same id for another channel is a mistake, not a resend
        created = await a.call(
            "chat:create", {"name": "side", "board_id": board_id, "member_ids": [bob.id]}
        )
        assert created["ok"], created
        side = created["data"]["channel"]["id"]
        reused = await a.call("chat:send", {**payload, "channel_id": side})
        assert _code(reused) == "invalid_payload"
        assert reused["error"]["details"]["field"] == "client_msg_id"

        rows = await _fetch(
            hub,
            "SELECT client_msg_id FROM chat_messages WHERE sender_id = $1",
            uuid.UUID(alice.id),
        )
        assert sorted(str(r["client_msg_id"]) for r in rows) == sorted([client_msg_id, racing_id])
        (channel,) = await _fetch(
            hub, "SELECT last_seq FROM chat_channels WHERE id = $1", uuid.UUID(side)
        )
        assert channel["last_seq"] == 0
        (outbox,) = await _fetch(
            hub, "SELECT count(*) AS n FROM outbox WHERE topic = 'chat_messages'"
        )
        assert outbox["n"] == 2  # one chat.message record per stored message
    finally:
        await _close(a, a_elsewhere, b)


async def test_a_first_dm_reaches_every_tab_without_a_join_and_replies_share_its_channel(
    hub: Hub,
) -> None:
    alice, bob, stranger = (
        await hub.register("Alice"),
        await hub.register("Bob"),
        await hub.register("Stranger"),
    )
    await _board(hub, alice, viewer=bob)
    await hub.create_board(stranger)
    a, b1, b2, s = (
        await hub.peer(alice),
        await hub.peer(bob),
        await hub.peer(bob, msgpack=True),
        await hub.peer(stranger),
    )
    try:
        first = await _send(a, "psst", to_user_id=bob.id)
        dm = first["channel_id"]
        for peer in (a, b1, b2):  # nobody joined anything: the user rooms carry it
            (made,) = await peer.wait_for("chat:channel")
            assert made["id"] == dm and made["kind"] == "dm"
            assert sorted(u["id"] for u in made["members"]) == sorted([alice.id, bob.id])
            (seen,) = await peer.wait_for("chat:message")
            assert seen == first

        reply = await _send(b1, "yes?", to_user_id=alice.id)
        assert reply["channel_id"] == dm and reply["seq"] == 2
        by_channel = await _send(b2, "also by channel", channel_id=dm)
        assert by_channel["seq"] == 3
        for peer in (a, b1, b2):
            got = await peer.wait_for("chat:message", 3)
            assert [m["id"] for m in got] == [first["id"], reply["id"], by_channel["id"]]

        listed = await _channel_of(a, dm)
        assert listed["kind"] == "dm" and listed["name"] is None and listed["board_id"] is None
        assert sorted(u["id"] for u in listed["members"]) == sorted([alice.id, bob.id])
        assert listed["unread"] == 2 and listed["last_read_seq"] == 0

        assert _code(await s.call("chat:send", {"to_user_id": alice.id, "body": "hi"})) == (
            "forbidden"
        )
        assert _code(await s.call("chat:history", {"channel_id": dm})) == "forbidden"
        assert _code(await a.call("chat:send", {"to_user_id": alice.id, "body": "me"})) == (
            "invalid_payload"
        )
        nobody = {"to_user_id": str(uuid.uuid4()), "body": "hello?"}
        assert _code(await a.call("chat:send", nobody)) == "not_found"
        await asyncio.sleep(QUIET)
        assert not s.events("chat:message") and len(a.events("chat:message")) == 3
        rows = await _fetch(hub, "SELECT id FROM chat_channels WHERE kind = 'dm'")
        assert [str(r["id"]) for r in rows] == [dm]
    finally:
        await _close(a, b1, b2, s)


async def test_two_first_dms_sent_at_once_from_two_nodes_make_one_channel(
    hub: Hub, start_hub: Callable[..., Any]
) -> None:
    other = await start_hub()
    alice, bob = await hub.register("Alice"), await hub.register("Bob")
    await _board(hub, alice, editor=bob)
    a, b = await hub.peer(alice), await other.peer(bob)
    try:
        acks = await asyncio.gather(
            a.call("chat:send", {"to_user_id": bob.id, "body": "hi Bob"}),
            b.call("chat:send", {"to_user_id": alice.id, "body": "hi Alice"}),
        )
        assert all(ack["ok"] for ack in acks), acks
        channel_ids = {ack["data"]["message"]["channel_id"] for ack in acks}
        assert len(channel_ids) == 1
        assert sorted(ack["data"]["message"]["seq"] for ack in acks) == [1, 2]
        for peer in (a, b):
            await peer.wait_for("chat:message", 2)
    finally:
        await _close(a, b)


async def test_typing_reaches_the_others_and_is_throttled_per_person(hub: Hub) -> None:
    alice, bob = await hub.register("Alice"), await hub.register("Bob")
    board_id = await _board(hub, alice, editor=bob)
    a1, a2, b = await hub.peer(alice), await hub.peer(alice), await hub.peer(bob)
    try:
        channel_id = await _join(a1, board_id)
        await _join(a2, board_id)
        await _join(b, board_id)

        async def typing(peer: Peer, state: bool) -> bool:
            ack = await peer.call("chat:typing", {"channel_id": channel_id, "typing": state})
            assert ack["ok"], ack
            return bool(ack["data"]["sent"])

        def alice_typing(state: bool) -> dict[str, Any]:
            return {"channel_id": channel_id, "user_id": alice.id, "name": "Alice", "typing": state}

        assert await typing(a1, True) is True
        assert await b.wait_for("chat:typing") == [alice_typing(True)]
        assert await a2.wait_for("chat:typing") == [alice_typing(True)]  # her other tab

        # within 2 s, from either of her tabs: not sent again
        assert await typing(a1, True) is False
        assert await typing(a2, True) is False
        # Bob has his own allowance
        assert await typing(b, True) is True
        await a1.wait_for("chat:typing")
        await asyncio.sleep(QUIET)
        assert b.events("chat:typing") == [alice_typing(True)]
        assert a2.events("chat:typing")[0] == alice_typing(True)
        assert [e["user_id"] for e in a1.events("chat:typing")] == [bob.id]  # never her own

        # `false` always goes out and lets the next `true` through at once
        assert await typing(a1, False) is True
        assert await typing(a1, True) is True
        got = await b.wait_for("chat:typing", 3)
        assert got == [alice_typing(True), alice_typing(False), alice_typing(True)]
        assert await typing(a1, True) is False
        await asyncio.sleep(2.1)  # the throttle lasts 2000 ms, not longer
        assert await typing(a1, True) is True
        await b.wait_for("chat:typing", 4)
        await asyncio.sleep(QUIET)
        assert len(b.events("chat:typing")) == 4
        assert [e["user_id"] for e in a1.events("chat:typing")] == [bob.id]
    finally:
        await _close(a1, a2, b)


async def test_typing_sent_without_waiting_for_acks_is_handled_in_the_order_sent(
    hub: Hub,
) -> None:
    """A browser says `true` on a key and `false` on Enter without awaiting the first
    ack; handled out of order, the others would see "typing" after the stop and the
    throttle would swallow the next `true` (the hub handles a connection's other
    events at once, each in a task of its own)."""
    alice, bob = await hub.register("Alice"), await hub.register("Bob")
    board_id = await _board(hub, alice, editor=bob)
    a, b = await hub.peer(alice), await hub.peer(bob)
    try:
        channel_id = await _join(a, board_id)
        await _join(b, board_id)
        states = [True, False] * 25
        acks = await asyncio.gather(
            *(a.call("chat:typing", {"channel_id": channel_id, "typing": s}) for s in states)
        )
        # each `true` comes right after a `false`, which lets it through at once
        assert [ack["data"]["sent"] for ack in acks] == [True] * len(states), acks
        heard = await b.wait_for("chat:typing", len(states))
        assert [event["typing"] for event in heard] == states
    finally:
        await _close(a, b)


async def _until_waiting_for(hub: Hub, table: str) -> None:
    """Until a PostgreSQL session waits for a lock on `table`."""
    for _ in range(100):
        waiting = await _fetch(
            hub,
            "SELECT 1 FROM pg_locks WHERE NOT granted AND relation = $1::regclass "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            table,
        )
        if waiting:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"nothing waited for {table}")


async def test_typing_does_not_wait_for_a_join_of_another_room(hub: Hub) -> None:
    """In-order events keep their order per board or channel, not per connection: a
    board's snapshot that takes long (here: its tasks table locked) holds back no
    typing in a channel."""
    alice, bob = await hub.register("Alice"), await hub.register("Bob")
    board_id = await _board(hub, alice, editor=bob)
    a, b = await hub.peer(alice), await hub.peer(bob)
    blocker = await hub.db()
    try:
        channel_id = await _join(a, board_id)
        await _join(b, board_id)
        assert (await a.call("board:leave", {"board_id": board_id}))["ok"]
        async with blocker.transaction():
            await blocker.execute("LOCK TABLE tasks IN ACCESS EXCLUSIVE MODE")
            join = asyncio.ensure_future(a.call("board:join", {"board_id": board_id}))
            await _until_waiting_for(hub, "tasks")
            typed = await a.call(
                "chat:typing", {"channel_id": channel_id, "typing": True}, timeout=5
            )
            assert typed["ok"] and typed["data"]["sent"], typed
            assert not join.done()  # the snapshot is still waiting for the table
        assert (await join)["ok"]
        assert [e["typing"] for e in await b.wait_for("chat:typing")] == [True]
    finally:
        await blocker.close()
        await _close(a, b)


async def test_a_stopping_node_lets_an_event_being_handled_end_first(hub: Hub) -> None:
    """A node stopping while a `chat:typing` waits on PostgreSQL: the handler reaches
    Redis after the wait, so it must end before the node closes its Redis client, or
    redis-py opens a connection nobody closes (which this suite's loop reports as a
    failure at the test's end, tests/loops.py)."""
    alice, bob = await hub.register("Alice"), await hub.register("Bob")
    board_id = await _board(hub, alice, editor=bob)
    a = await hub.peer(alice)
    blocker = await hub.db()
    try:
        channel_id = await _join(a, board_id)
        async with blocker.transaction():
            await blocker.execute("LOCK TABLE chat_channels IN ACCESS EXCLUSIVE MODE")
            await a.sio.emit("chat:typing", {"channel_id": channel_id, "typing": True})
            await _until_waiting_for(hub, "chat_channels")
            stopping = asyncio.ensure_future(hub.server.close())
            await asyncio.sleep(0.5)
            assert not stopping.done()  # the event is still being handled
        await asyncio.wait_for(stopping, 10)
    finally:
        await blocker.close()
        await a.close()


async def test_a_channel_left_right_after_joining_is_left(hub: Hub) -> None:
    """`chat:leave` sent without waiting for its `chat:join`'s ack is handled after
    it, so the connection is out of the channel's room."""
    alice, bob = await hub.register("Alice"), await hub.register("Bob")
    board_id = await _board(hub, alice, editor=bob)
    a, b = await hub.peer(alice), await hub.peer(bob)
    try:
        created = await a.call(
            "chat:create", {"name": "side", "board_id": board_id, "member_ids": [bob.id]}
        )
        assert created["ok"], created
        side = created["data"]["channel"]["id"]
        for _ in range(10):
            joined, left = await asyncio.gather(
                b.call("chat:join", {"channel_id": side}),
                b.call("chat:leave", {"channel_id": side}),
            )
            assert joined["ok"] and left["ok"], (joined, left)
        await _send(a, "Anyone here?", channel_id=side)
        await asyncio.sleep(QUIET)
        assert b.events("chat:message") == []
    finally:
        await _close(a, b)


async def test_read_markers_count_others_live_messages_and_never_move_back(hub: Hub) -> None:
    alice, bob = await hub.register("Alice"), await hub.register("Bob")
    board_id = await _board(hub, alice, editor=bob)
    a1, a2, b = await hub.peer(alice), await hub.peer(alice), await hub.peer(bob)
    try:
        general = await _join(a1, board_id)
        created = await b.call(
            "chat:create", {"name": "side", "board_id": board_id, "member_ids": [alice.id]}
        )
        assert created["ok"], created
        side = created["data"]["channel"]["id"]

        for n in range(3):
            await _send(b, f"bob {n}", channel_id=general)  # seqs 1-3
        await _send(a1, "alice", channel_id=general)  # seq 4: her own, not unread
        doomed = await _send(b, "oops", channel_id=general)  # seq 5, deleted below
        assert (await b.call("chat:delete", {"message_id": doomed["id"]}))["ok"]
        await _send(b, "over here", channel_id=side)

        alice_general = await _channel_of(a1, general)
        assert (alice_general["unread"], alice_general["last_read_seq"]) == (3, 0)
        assert alice_general["last_seq"] == 5 and alice_general["is_board_channel"] is True
        assert alice_general["name"] == "general"
        assert (await _channel_of(a1, side))["unread"] == 1
        assert (await _channel_of(b, general))["unread"] == 1  # Alice's one
        assert (await _channel_of(b, side))["unread"] == 0
        joined = await a1.call("chat:join", {"channel_id": general, "limit": 1})
        assert joined["data"]["channel"]["unread"] == 3, joined

        read = await a1.call("chat:read", {"channel_id": general, "seq": 2})
        assert read["ok"], read
        expected = {"channel_id": general, "last_read_seq": 2, "unread": 1}
        assert read["data"] == expected
        for peer in (a1, a2):
            assert await peer.wait_for("chat:unread") == [expected]
        assert (await _channel_of(a2, general))["unread"] == 1
        assert (await _channel_of(a2, side))["unread"] == 1  # per channel

        read = await a2.call("chat:read", {"channel_id": general, "seq": 3})
        assert read["data"] == {"channel_id": general, "last_read_seq": 3, "unread": 0}
        # never back
        back = await a1.call("chat:read", {"channel_id": general, "seq": 1})
        assert back["data"] == {"channel_id": general, "last_read_seq": 3, "unread": 0}
        # never past the last message
        far = await a1.call("chat:read", {"channel_id": general, "seq": 10_000})
        assert far["data"] == {"channel_id": general, "last_read_seq": 5, "unread": 0}
        channel = await _channel_of(a1, general)
        assert (channel["unread"], channel["last_read_seq"]) == (0, 5)

        # a first read beyond the end is clamped as well
        first = await a1.call("chat:read", {"channel_id": side, "seq": 99})
        assert first["data"] == {"channel_id": side, "last_read_seq": 1, "unread": 0}
        # a new message of someone else is unread again
        await _send(b, "new", channel_id=general)
        assert (await _channel_of(a1, general))["unread"] == 1

        for peer in (a1, a2):
            assert len(await peer.wait_for("chat:unread", 5)) == 5
        await asyncio.sleep(QUIET)
        assert not b.events("chat:unread")  # Bob's markers did not move
        rows = await _fetch(
            hub,
            "SELECT channel_id, last_read_seq FROM channel_reads WHERE user_id = $1",
            uuid.UUID(alice.id),
        )
        assert {str(r["channel_id"]): r["last_read_seq"] for r in rows} == {general: 5, side: 1}
    finally:
        await _close(a1, a2, b)


async def test_only_the_sender_edits_and_the_sender_or_board_owner_deletes(hub: Hub) -> None:
    owner, editor, viewer = (
        await hub.register("Owner"),
        await hub.register("Editor"),
        await hub.register("Viewer"),
    )
    board_id = await _board(hub, owner, editor=editor, viewer=viewer)
    o, e, v = await hub.peer(owner), await hub.peer(editor), await hub.peer(viewer)
    try:
        channel_id = await _join(o, board_id)
        await _join(e, board_id)
        # viewers are members of the board, so of its channel: they read and write chat
        # (unlike tasks, which they only read)
        from_viewer = await _send(v, "viewer here", channel_id=channel_id)
        assert from_viewer["sender_id"] == viewer.id
        message = await _send(e, "editor's words", channel_id=channel_id)

        edit = {"message_id": message["id"], "body": "someone else's words"}
        assert _code(await v.call("chat:edit", edit)) == "forbidden"
        assert _code(await o.call("chat:edit", edit)) == "forbidden"  # not even the owner
        assert _code(await v.call("chat:delete", {"message_id": message["id"]})) == "forbidden"
        assert _code(await e.call("chat:delete", {"message_id": from_viewer["id"]})) == (
            "forbidden"
        )
        # the viewer edits and deletes their own
        assert (await v.call("chat:edit", {"message_id": from_viewer["id"], "body": "hi"}))["ok"]
        assert (await v.call("chat:delete", {"message_id": from_viewer["id"]}))["ok"]

        removed = await o.call("chat:delete", {"message_id": message["id"]})
        assert removed["ok"], removed
        assert removed["data"]["message"]["sender_id"] == editor.id
        assert removed["data"]["message"]["body"] == ""
        for peer in (o, e):
            seen = await peer.wait_for("chat:deleted", 2)
            assert seen[-1] == removed["data"]["message"]
        rows = await _fetch(
            hub,
            "SELECT body, deleted_at IS NOT NULL AS deleted FROM chat_messages WHERE id = $1",
            uuid.UUID(message["id"]),
        )
        assert [dict(r) for r in rows] == [{"body": "", "deleted": True}]
    finally:
        await _close(o, e, v)


async def test_a_removed_member_stops_hearing_the_boards_channels_and_is_forbidden(
    hub: Hub, start_hub: Callable[..., Any]
) -> None:
    other = await start_hub()
    alice, bob = await hub.register("Alice"), await hub.register("Bob")
    board_id = await _board(hub, alice, editor=bob)
    a = await hub.peer(alice)
    b1, b2 = await other.peer(bob), await other.peer(bob, msgpack=True)
    try:
        general = await _join(a, board_id)
        await _join(b1, board_id)
        assert (await b2.call("chat:join", {"channel_id": general}))["ok"]  # the room alone
        created = await a.call(
            "chat:create", {"name": "side", "board_id": board_id, "member_ids": [bob.id]}
        )
        side = created["data"]["channel"]["id"]
        for peer in (a, b1, b2):
            assert (await peer.call("chat:join", {"channel_id": side}))["ok"]

        await _send(a, "before", channel_id=general)
        await _send(a, "before, aside", channel_id=side)
        for peer in (b1, b2):
            await peer.wait_for("chat:message", 2)

        status, _ = await hub.request(
            "DELETE", f"/api/boards/{board_id}/members/{bob.id}", token=alice.access_token
        )
        assert status == 204
        await _send(a, "after", channel_id=general)
        await _send(a, "after, aside", channel_id=side)
        await a.wait_for("chat:message", 4)
        await asyncio.sleep(QUIET)
        for peer in (b1, b2):
            assert [m["body"] for m in peer.events("chat:message")] == [
                "before",
                "before, aside",
            ]

        for channel_id in (general, side):
            target = {"channel_id": channel_id}
            for event, payload in {
                "chat:send": {**target, "body": "am I still here?"},
                "chat:history": target,
                "chat:typing": target,
                "chat:join": target,
                "chat:read": {**target, "seq": 1},
            }.items():
                assert _code(await b1.call(event, payload)) == "forbidden", (channel_id, event)
        listed = await b1.call("chat:channels", {})
        assert listed["ok"] and listed["data"]["channels"] == [], listed
    finally:
        await _close(a, b1, b2)


async def test_chat_create_takes_board_members_and_tells_them(hub: Hub) -> None:
    alice, bob, carol, mallory = (
        await hub.register("Alice"),
        await hub.register("Bob"),
        await hub.register("Carol"),
        await hub.register("Mallory"),
    )
    board_id = await _board(hub, alice, editor=bob)
    other_board = await _board(hub, alice, viewer=carol)  # Carol shares only this one
    await hub.create_board(mallory)
    a, b, c, m = (
        await hub.peer(alice),
        await hub.peer(bob),
        await hub.peer(carol),
        await hub.peer(mallory),
    )
    try:
        created = await a.call(
            "chat:create", {"name": "  design  ", "board_id": board_id, "member_ids": [bob.id]}
        )
        assert created["ok"], created
        channel = created["data"]["channel"]
        assert channel["name"] == "design" and channel["board_id"] == board_id
        assert channel["kind"] == "channel" and channel["is_board_channel"] is False
        assert sorted(u["id"] for u in channel["members"]) == sorted([alice.id, bob.id])
        for peer in (a, b):
            assert await peer.wait_for("chat:channel") == [channel]
        joined = await b.call("chat:join", {"channel_id": channel["id"]})
        assert joined["ok"], joined
        assert _code(await c.call("chat:join", {"channel_id": channel["id"]})) == "forbidden"

        # without a board: anyone who shares a board with the creator
        loose = await a.call("chat:create", {"name": "all", "member_ids": [bob.id, carol.id]})
        assert loose["ok"], loose
        assert loose["data"]["channel"]["board_id"] is None
        await c.wait_for("chat:channel")

        count_before = len(await _fetch(hub, "SELECT id FROM chat_channels"))
        not_on_board = await a.call(
            "chat:create", {"name": "x", "board_id": board_id, "member_ids": [carol.id]}
        )
        assert _code(not_on_board) == "invalid_payload"
        assert not_on_board["error"]["details"] == {"field": "member_ids", "user_id": carol.id}
        stranger = await a.call("chat:create", {"name": "x", "member_ids": [mallory.id]})
        assert _code(stranger) == "invalid_payload"
        on_their_board = await m.call("chat:create", {"name": "x", "board_id": other_board})
        assert _code(on_their_board) == "forbidden"
        nowhere = await a.call("chat:create", {"name": "x", "board_id": str(uuid.uuid4())})
        assert _code(nowhere) == "not_found"
        assert len(await _fetch(hub, "SELECT id FROM chat_channels")) == count_before
        await asyncio.sleep(QUIET)
        assert len(b.events("chat:channel")) == 2 and len(c.events("chat:channel")) == 1
        assert not m.events("chat:channel")
    finally:
        await _close(a, b, c, m)


async def test_triage_create_for_editors_and_owners_only(hub: Hub) -> None:
    owner, editor, viewer = (
        await hub.register("Owner"),
        await hub.register("Editor"),
        await hub.register("Viewer"),
    )
    board_id = await _board(hub, owner, editor=editor, viewer=viewer)
    o, e, v = await hub.peer(owner), await hub.peer(editor), await hub.peer(viewer)
    try:
        filed = await e.call(
            "triage:create",
            {
                "board_id": board_id,
                "title": "Login is broken",
                "description": "500 on submit",
                "priority": "critical",
                "category": "bug",
            },
        )
        assert filed["ok"], filed
        item = filed["data"]["item"]
        assert item["board_id"] == board_id and item["reporter_id"] == editor.id
        assert (item["title"], item["description"]) == ("Login is broken", "500 on submit")
        assert (item["priority"], item["category"], item["status"]) == (
            "critical",
            "bug",
            "pending",
        )
        by_owner = await o.call("triage:create", {"board_id": board_id, "title": "Defaults"})
        assert by_owner["ok"], by_owner
        assert by_owner["data"]["item"]["priority"] == "medium"
        assert by_owner["data"]["item"]["category"] == "issue"

        viewers = await v.call("triage:create", {"board_id": board_id, "title": "Me too"})
        assert _code(viewers) == "forbidden"
        bad = await e.call(
            "triage:create", {"board_id": board_id, "title": "Bad", "priority": "urgent"}
        )
        assert _code(bad) == "invalid_payload"
        unknown = await e.call("triage:create", {"board_id": str(uuid.uuid4()), "title": "?"})
        assert _code(unknown) == "not_found"

        rows = await _fetch(
            hub,
            "SELECT reporter_id, title, status, priority FROM triage_items ORDER BY created_at",
        )
        assert [(str(r["reporter_id"]), r["title"], r["status"], r["priority"]) for r in rows] == [
            (editor.id, "Login is broken", "pending", "critical"),
            (owner.id, "Defaults", "pending", "medium"),
        ]
    finally:
        await _close(o, e, v)


async def test_a_dm_resent_or_refused_by_client_msg_id_leaves_no_extra_channel(hub: Hub) -> None:
    alice, bob, carol = (
        await hub.register("Alice"),
        await hub.register("Bob"),
        await hub.register("Carol"),
    )
    await _board(hub, alice, editor=bob, viewer=carol)
    a = await hub.peer(alice)
    try:
        msg_id = str(uuid.uuid4())
        first = await a.call(
            "chat:send", {"to_user_id": bob.id, "body": "hi", "client_msg_id": msg_id}
        )
        assert first["ok"] and first["data"]["duplicate"] is False, first
        again = await a.call(
            "chat:send", {"to_user_id": bob.id, "body": "hi", "client_msg_id": msg_id}
        )
        assert again["ok"] and again["data"]["duplicate"] is True, again
        assert again["data"]["message"] == first["data"]["message"]
        # the same id towards someone else: refused, and no DM with Carol is made
        other = await a.call(
            "chat:send", {"to_user_id": carol.id, "body": "hi", "client_msg_id": msg_id}
        )
        assert _code(other) == "invalid_payload"
        rows = await _fetch(hub, "SELECT id FROM chat_channels WHERE kind = 'dm'")
        assert [str(r["id"]) for r in rows] == [first["data"]["message"]["channel_id"]]
    finally:
        await _close(a)
