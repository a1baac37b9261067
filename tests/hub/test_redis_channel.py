"""The process's Socket.IO channel on a real Redis: siblings in the process get a
message once, without Redis; other processes once, through one subscription
each; a broken publisher connection loses nothing it had sent; an unreachable
Redis never holds an emit up, and warns once."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import uvloop
from redis.asyncio import Redis

from hub.config import Settings
from hub.fanout.redis_channel import SocketIOChannel
from hub.fanout.redis_connection import RETRY_MAX
from tests.chaos.stack import RedisServer

WAIT = 10.0


class Member:
    """A manager as the channel sees it, recording what it is handed."""

    def __init__(self, channel: SocketIOChannel) -> None:
        self.host_id = uuid.uuid4().hex
        self.received: list[dict[str, Any]] = []
        self.regained = 0
        self.closed = False
        self._arrived = asyncio.Event()
        channel.join(self)

    async def receive(self, message: dict[str, Any]) -> None:
        self.received.append(message)
        self._arrived.set()

    def channel_regained(self) -> None:
        self.regained += 1

    async def close(self) -> None:
        self.closed = True

    def seqs(self) -> list[int]:
        return [m["seq"] for m in self.received]

    async def wait_for(self, count: int) -> None:
        async def enough() -> None:
            while len(self.received) < count:
                self._arrived.clear()
                await self._arrived.wait()

        try:
            await asyncio.wait_for(enough(), WAIT)
        except TimeoutError:
            raise AssertionError(f"got {len(self.received)} of {count} messages") from None


def emit(sender: Member, seq: int) -> dict[str, Any]:
    return {"method": "emit", "event": "e", "data": [seq], "seq": seq, "host_id": sender.host_id}


@pytest.fixture
async def channels(
    make_settings: Callable[..., Settings],
) -> AsyncIterator[Callable[..., SocketIOChannel]]:
    """Channels on one channel name, as two processes would have; closed after."""
    settings = make_settings()
    name = f"channel-{uuid.uuid4().hex}"
    made: list[SocketIOChannel] = []

    def make(
        url: str = settings.redis_url, client_name: str = "test", **options: Any
    ) -> SocketIOChannel:
        channel = SocketIOChannel(
            url,
            name,
            publisher_name=f"{client_name}-{len(made)}:publisher",
            listener_name=f"{client_name}-{len(made)}:listener",
            **options,
        )
        made.append(channel)
        return channel

    yield make
    for channel in made:
        await channel.close()


async def test_siblings_get_a_message_in_the_process_and_other_processes_through_redis(
    channels: Callable[..., SocketIOChannel], make_settings: Callable[..., Settings]
) -> None:
    here, there = channels(), channels()
    sender, sibling = Member(here), Member(here)
    far = [Member(there), Member(there)]
    for channel in (here, there):
        channel.listen()
        await asyncio.wait_for(channel.wait_subscribed(), WAIT)

    await here.send(sender, emit(sender, 1))
    assert sibling.seqs() == [1]  # handed over before `send` returned
    for member in far:
        await member.wait_for(1)
    # a message from there comes here once, to both
    await there.send(far[0], emit(far[0], 2))
    await sender.wait_for(1)
    await sibling.wait_for(2)
    await far[1].wait_for(2)

    redis = Redis.from_url(make_settings().redis_url, decode_responses=True)
    try:
        # one subscription per process, and this one's own message did not come back
        assert (await redis.pubsub_numsub(here.name))[0][1] == 2
        await asyncio.sleep(0.2)
        assert sender.seqs() == [2] and sibling.seqs() == [1, 2]
        assert [m.seqs() for m in far] == [[1], [1, 2]]
    finally:
        await redis.aclose()


async def test_what_a_broken_publisher_connection_left_unanswered_is_sent_again(
    channels: Callable[..., SocketIOChannel], make_settings: Callable[..., Settings]
) -> None:
    """Redis holds the PUBLISHes back (CLIENT PAUSE WRITE) and the publisher's
    connection is killed with all of them unanswered: Redis never runs them, and
    every message still reaches the other process, in order, on the next one."""
    here, there = channels(client_name="here"), channels(client_name="there")
    sender, receiver = Member(here), Member(there)
    there.listen()
    await asyncio.wait_for(there.wait_subscribed(), WAIT)
    await here.send(sender, emit(sender, 0))  # the publisher is connected
    await receiver.wait_for(1)

    admin = Redis.from_url(make_settings().redis_url, decode_responses=True)
    total = 3000
    try:
        publisher = [c for c in await admin.client_list() if c["name"] == "here-0:publisher"]
        assert len(publisher) == 1, publisher
        await admin.execute_command("CLIENT", "PAUSE", 5000, "WRITE")
        try:
            for seq in range(1, total):
                await here.send(sender, emit(sender, seq))
            await asyncio.sleep(0.2)
            assert receiver.seqs() == [0]  # held back
            assert await admin.execute_command("CLIENT", "KILL", "ID", publisher[0]["id"]) == 1
        finally:
            await admin.execute_command("CLIENT", "UNPAUSE")
        await receiver.wait_for(total)
        names = [c["name"] for c in await admin.client_list()]
        assert names.count("here-0:publisher") == 1  # a new connection, and only one
    finally:
        await admin.aclose()
    assert receiver.seqs() == list(range(total))  # every one, in order, once


async def test_while_redis_is_down_emits_go_on_and_each_role_warns_once(
    channels: Callable[..., SocketIOChannel],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Redis killed -9: a publish returns at once (the message reaches this process
    only), the publisher and the listener each warn once however many emits and
    attempts; back, the listener subscribes again and tells the members once, and
    messages cross again."""
    redis = RedisServer(tmp_path)
    redis.start()
    try:
        here, there = channels(redis.url), channels(redis.url)
        sender, sibling, receiver = Member(here), Member(here), Member(there)
        for channel in (here, there):
            channel.listen()
            await asyncio.wait_for(channel.wait_subscribed(), WAIT)
        await here.send(sender, emit(sender, 0))
        await receiver.wait_for(1)

        redis.kill()
        caplog.clear()
        for seq in range(1, 200):
            await asyncio.wait_for(here.send(sender, emit(sender, seq)), WAIT)
            await asyncio.sleep(0.01)  # two seconds of emits: several reconnect attempts
        assert sibling.seqs() == list(range(200))
        assert not there.subscribed
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert sum("Redis is unreachable" in w for w in warnings) == 1, warnings
        assert sum("lost the Socket.IO Redis channel" in w for w in warnings) == 2, warnings

        redis.start()
        for channel in (here, there):
            await asyncio.wait_for(channel.wait_subscribed(), RETRY_MAX + WAIT)
        assert receiver.regained == 1 and sender.regained == 1 and sibling.regained == 1
        assert not (receiver.closed or sender.closed)
        # the publisher tries again within RETRY_MAX; what is emitted before is local
        seq = 200
        while len(receiver.received) < 2:
            await asyncio.wait_for(here.send(sender, emit(sender, seq)), WAIT)
            await asyncio.sleep(0.05)
            seq += 1
            assert seq < 200 + 40 * RETRY_MAX * 4, "publishing never worked again"
        assert receiver.seqs()[0] == 0 and receiver.seqs()[1] >= 200
        assert "publishing on the Socket.IO Redis channel: Redis is reachable again" in caplog.text
    finally:
        redis.kill()


async def test_an_emit_waits_for_a_stalled_redis_and_cancelling_it_breaks_nothing(
    channels: Callable[..., SocketIOChannel], tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    """Redis stopped (SIGSTOP: connections open, nothing answered): past the bound
    of unanswered bytes an emit waits; one cancelled meanwhile leaves the shared
    connection alone, and once Redis runs again every message arrives once, in
    order, with no second connection (redis-py's own write would have closed it)."""
    redis = RedisServer(tmp_path)
    redis.start()
    try:
        bound = 256 * 1024
        here = channels(redis.url, client_name="here", max_unanswered_bytes=bound)
        there = channels(redis.url, client_name="there")
        sender, receiver = Member(here), Member(there)
        there.listen()
        await asyncio.wait_for(there.wait_subscribed(), WAIT)
        await here.send(sender, emit(sender, 0))
        await receiver.wait_for(1)
        admin = Redis.from_url(redis.url, decode_responses=True)
        try:
            before = [c["id"] for c in await admin.client_list() if c["name"] == "here-0:publisher"]
            redis.pause()
            try:
                padding = "x" * (32 * 1024)
                sent = 1
                while True:  # until one waits
                    message = {**emit(sender, sent), "padding": padding}
                    emitting = asyncio.ensure_future(here.send(sender, message))
                    await asyncio.sleep(0)
                    if not emitting.done():
                        break
                    sent += 1
                assert sent * len(padding) >= bound // 2
                emitting.cancel()
                await asyncio.gather(emitting, return_exceptions=True)
                await asyncio.sleep(0.2)
            finally:
                redis.resume()
            await receiver.wait_for(sent)
            after = [c["id"] for c in await admin.client_list() if c["name"] == "here-0:publisher"]
            assert after == before
            await here.send(sender, emit(sender, sent + 1))
            await receiver.wait_for(sent + 1)
        finally:
            await admin.aclose()
        assert receiver.seqs() == [*range(sent), sent + 1]  # the cancelled one never went
    finally:
        redis.kill()


async def test_a_redis_that_takes_connections_and_answers_nothing_is_given_up_on(
    channels: Callable[..., SocketIOChannel], caplog: pytest.LogCaptureFixture
) -> None:
    """A listening socket that never answers (a frozen Redis, a proxy without its
    backend): the connect times out, the emit is not held, and each role warns."""
    held: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        channel = channels(f"redis://127.0.0.1:{port}/0", connect_timeout=0.3)
        sender = Member(channel)
        channel.listen()
        await asyncio.wait_for(channel.send(sender, emit(sender, 1)), WAIT)

        for _ in range(int(WAIT / 0.05)):
            text = caplog.text
            if "Redis is unreachable" in text and "lost the Socket.IO Redis channel" in text:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError(f"not both warnings: {caplog.text}")
        assert len(held) >= 2  # both roles did connect
        assert not channel.subscribed
    finally:
        for writer in held:
            writer.close()
        server.close()


async def test_an_ack_between_servers_of_one_process_is_handed_over_not_published(
    channels: Callable[..., SocketIOChannel],
) -> None:
    here, there = channels(), channels()
    acking, acked = Member(here), Member(here)
    far = Member(there)
    there.listen()
    await asyncio.wait_for(there.wait_subscribed(), WAIT)
    callback = {"method": "callback", "host_id": acked.host_id, "sid": "s", "id": 1, "args": []}
    await here.send(acking, callback)
    assert acked.received == [callback]
    await here.send(acking, emit(acking, 1))  # a later message does cross
    await far.wait_for(1)
    assert far.seqs() == [1]


async def test_garbage_on_the_channel_is_ignored_and_is_not_an_outage(
    channels: Callable[..., SocketIOChannel],
    make_settings: Callable[..., Settings],
    caplog: pytest.LogCaptureFixture,
) -> None:
    here, there = channels(), channels()
    sender, receiver = Member(here), Member(there)
    there.listen()
    await asyncio.wait_for(there.wait_subscribed(), WAIT)
    redis = Redis.from_url(make_settings().redis_url)
    try:
        for garbage in (
            b"\xff\xfe",
            b"[" * 100_000,
            b'"a string"',
            b'{"no": "method"}',
            b'{"method": "emit", "host_id": []}',
            b'{"method": ["emit"], "host_id": "x"}',
        ):
            assert await redis.publish(here.name, garbage) == 1
        # not garbage: python-socketio's listener applies a message without a host_id
        assert await redis.publish(here.name, b'{"method": "emit", "seq": 0}') == 1
    finally:
        await redis.aclose()
    await here.send(sender, emit(sender, 1))
    await receiver.wait_for(2)
    assert receiver.seqs() == [0, 1] and receiver.regained == 0
    assert there.subscribed
    assert "lost the Socket.IO Redis channel" not in caplog.text


async def test_a_redis_that_stops_answering_is_noticed_and_the_channel_comes_back(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Redis frozen (SIGSTOP), its connections open: a quiet channel is PINGed, and
    one that hears nothing for twice the interval is given up; once Redis runs
    again the channel is subscribed again and the members are told once.

    On the hub's loop, uvloop, as every test (tests/conftest.py): its clock counts
    whole milliseconds, and a watchdog that compared times took a PONG answered
    within the millisecond of its PING for no answer, and gave a quiet channel up."""
    assert isinstance(asyncio.get_running_loop(), uvloop.Loop)
    redis = RedisServer(tmp_path)
    redis.start()
    try:
        await _freeze_and_thaw(redis, caplog)
    finally:
        redis.kill()


async def _freeze_and_thaw(redis: RedisServer, caplog: pytest.LogCaptureFixture) -> None:
    interval = 0.4
    name = f"channel-{uuid.uuid4().hex}"
    here = SocketIOChannel(
        redis.url,
        name,
        publisher_name="here:publisher",
        listener_name="here:listener",
        health_interval=interval,
        connect_timeout=0.5,
    )
    there = SocketIOChannel(
        redis.url, name, publisher_name="there:publisher", listener_name="there:listener"
    )
    receiver, sender = Member(here), Member(there)
    try:
        here.listen()
        await asyncio.wait_for(here.wait_subscribed(), WAIT)
        await asyncio.sleep(8 * interval)  # quiet, but answering its PINGs
        assert here.subscribed and "lost the Socket.IO Redis channel" not in caplog.text

        redis.pause()
        try:
            for _ in range(int(WAIT / 0.05)):
                if not here.subscribed:
                    break
                await asyncio.sleep(0.05)
            else:
                raise AssertionError("a frozen Redis was never noticed")
            assert "heard nothing, not even a PONG" in caplog.text
        finally:
            redis.resume()
        await asyncio.wait_for(here.wait_subscribed(), WAIT)
        assert receiver.regained == 1
        await there.send(sender, emit(sender, 1))
        await receiver.wait_for(1)
    finally:
        await here.close()
        await there.close()
