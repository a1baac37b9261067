"""A client that stops reading neither holds back the others nor holds the hub's memory.

The slow reader is a raw websocket client with a tiny receive buffer that, once
it has joined the board, never reads again. Everything it is sent piles up in
the hub's transport buffer; past OUTBOUND_BUFFER_BYTES the hub drops it, and the
room hears it leave, while a normal member got every message meanwhile.
"""

from __future__ import annotations

import asyncio
from typing import Any

from tests.support import Account, Hub, RawSocketIO

BUFFER_BOUND = 64 * 1024
CLOSE_OPCODE = 0x8
MESSAGES = 600
BODY = "x" * 9_990  # near the largest chat message: 600 of them (6 MB) are more than the
# kernel buffers of a loopback connection (up to 4 MiB) can absorb for the slow reader


async def _board(hub: Hub) -> tuple[Account, Account, Account, str]:
    alice, bob, carol = [await hub.register(n) for n in ("Alice", "Bob", "Carol")]
    board_id = await hub.create_board(alice)
    await hub.add_member(alice, board_id, bob, "editor")
    await hub.add_member(alice, board_id, carol, "editor")
    return alice, bob, carol, board_id


async def test_a_client_that_stops_reading_is_dropped_and_holds_no_one_back(
    start_hub: Any,
) -> None:
    hub: Hub = await start_hub(OUTBOUND_BUFFER_BYTES=str(BUFFER_BOUND))
    alice, bob, carol, board_id = await _board(hub)
    sender, listener = await hub.peer(alice), await hub.peer(bob)
    slow = await RawSocketIO.connect(hub.url, carol.access_token)
    try:
        joined = await sender.call("board:join", {"board_id": board_id})
        channel_id = joined["data"]["channel_id"]
        await listener.call("board:join", {"board_id": board_id})
        assert (await slow.call("board:join", {"board_id": board_id}, ack_id=1))["ok"]
        # from here on the slow reader reads nothing

        for n in range(MESSAGES):
            sent = await sender.call("chat:send", {"channel_id": channel_id, "body": f"{n}{BODY}"})
            assert sent["ok"], sent
        got = await listener.wait_for("chat:message", MESSAGES, timeout=30)
        assert [int(m["body"][: -len(BODY)]) for m in got] == list(range(MESSAGES))

        # dropped, so it left the board for everyone else
        left = {"board_id": board_id, "user": {"id": carol.id, "name": "Carol"}, "state": "left"}
        for _ in range(100):
            if left in listener.events("presence"):
                break
            await asyncio.sleep(0.1)
        assert left in listener.events("presence")
        listed = await listener.call("presence:list", {"board_id": board_id})
        assert carol.id not in {u["id"] for u in listed["data"]["users"]}
        assert await asyncio.wait_for(slow.closed_by_server(), 10)
    finally:
        slow.close()
        await sender.close()
        await listener.close()


async def test_a_client_that_reads_slowly_but_keeps_up_stays(start_hub: Any) -> None:
    """The bound is on what is unread, not on how much is sent: a reader behind by
    less than the bound is never dropped, however much passes through it."""
    hub: Hub = await start_hub(OUTBOUND_BUFFER_BYTES=str(BUFFER_BOUND * 4))
    alice, _, carol, board_id = await _board(hub)
    sender = await hub.peer(alice)
    reader = await RawSocketIO.connect(hub.url, carol.access_token)
    try:
        channel_id = (await sender.call("board:join", {"board_id": board_id}))["data"]["channel_id"]
        assert (await reader.call("board:join", {"board_id": board_id}, ack_id=1))["ok"]
        seen = 0
        for n in range(40):  # 400 KB in all, more than the bound, never far behind
            await sender.call("chat:send", {"channel_id": channel_id, "body": f"{n}{BODY}"})
            while seen <= n:
                packet = await asyncio.wait_for(reader.receive(), 10)
                if packet.startswith('42["chat:message"'):
                    seen += 1
        assert seen == 40
        listed = await sender.call("presence:list", {"board_id": board_id})
        assert carol.id in {u["id"] for u in listed["data"]["users"]}
    finally:
        reader.close()
        await sender.close()


async def _frames_until_the_end(client: RawSocketIO) -> list[tuple[int, bytes]]:
    """Every frame the client can still read, with its opcode, until the stream ends."""
    frames: list[tuple[int, bytes]] = []
    reader = client.reader
    try:
        while True:
            first, second = await asyncio.wait_for(reader.readexactly(2), 5)
            length = second & 0x7F
            if length == 126:
                length = int.from_bytes(await reader.readexactly(2), "big")
            elif length == 127:
                length = int.from_bytes(await reader.readexactly(8), "big")
            frames.append((first & 0x0F, await reader.readexactly(length)))
    except asyncio.IncompleteReadError:
        return frames


async def test_a_stopping_node_cuts_a_client_that_does_not_read_its_goodbye(
    start_hub: Any,
) -> None:
    """A node that stops gives its clients a few seconds to read their goodbye and the
    close frame (hub/fanout/servers.py, `wait_connections_ended`); a client that
    reads nothing is then cut, instead of its connection outliving the node's stop
    (or the node waiting on it)."""
    hub: Hub = await start_hub(OUTBOUND_BUFFER_BYTES=str(64 * 1024 * 1024))
    alice, _, carol, board_id = await _board(hub)
    sender = await hub.peer(alice)
    slow = await RawSocketIO.connect(hub.url, carol.access_token)
    try:
        channel_id = (await sender.call("board:join", {"board_id": board_id}))["data"]["channel_id"]
        assert (await slow.call("board:join", {"board_id": board_id}, ack_id=1))["ok"]
        # from here on the slow reader reads nothing, until the node has stopped
        for n in range(MESSAGES):
            sent = await sender.call("chat:send", {"channel_id": channel_id, "body": f"{n}{BODY}"})
            assert sent["ok"], sent
        await sender.close()
        await asyncio.wait_for(hub.server.close(), 30)
        # the connection ends where the client's kernel buffers did: the goodbye and
        # the close frame, behind the megabytes it did not read, were cut
        frames = await _frames_until_the_end(slow)
        assert 0 < len(frames) < MESSAGES
        assert not [payload for opcode, payload in frames if opcode == CLOSE_OPCODE]
        assert not [payload for _, payload in frames if b"connection:closing" in payload]
    finally:
        slow.close()
