"""Server events on their way to a client's handlers.

Events are decoded into structs and handed over one at a time, in arrival order.
Those of a joined board arrive exactly once and in seq order: an event seen
already is dropped, and what a dropped connection or a gap left out is fetched
with `board:join` + `since_seq` (the hub answers with the missed events, or
with a snapshot when too far behind) before the events held meanwhile follow.
Messages of a joined chat channel arrive once too: one seen already is
dropped, and after a reconnect the channel is joined again and the messages
sent meanwhile (up to CATCH_UP_MESSAGES) are handed over first, oldest first.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import msgspec

from protocol.errors import HubError, Unavailable
from protocol.events import ServerEvent, server_event_for
from protocol.models import Channel, ChatMessage, Notification, TaskEvent
from protocol.replies import (
    BoardJoined,
    ChannelJoined,
    ChannelRead,
    HistoryPage,
    PresenceChange,
    Typing,
    UnreadCount,
)

log = logging.getLogger(__name__)

# How server events are decoded before handlers get them; others arrive as sent.
SERVER_EVENT_TYPES: dict[str, type[Any]] = {
    ServerEvent.TASK_CREATED: TaskEvent,
    ServerEvent.TASK_UPDATED: TaskEvent,
    ServerEvent.TASK_DELETED: TaskEvent,
    ServerEvent.PRESENCE: PresenceChange,
    ServerEvent.NOTIFICATION: Notification,
    ServerEvent.NOTIFICATIONS_UNREAD: UnreadCount,
    ServerEvent.CHAT_MESSAGE: ChatMessage,
    ServerEvent.CHAT_EDITED: ChatMessage,
    ServerEvent.CHAT_DELETED: ChatMessage,
    ServerEvent.CHAT_TYPING: Typing,
    ServerEvent.CHAT_CHANNEL: Channel,
    ServerEvent.CHAT_UNREAD: ChannelRead,
}

# what a reconnect fetches at most per channel before going on with live messages
CATCH_UP_MESSAGES = 1000

# `board:join` with `since_seq`, resent across reconnects; raises a HubError.
Join = Callable[[uuid.UUID, int | None], Awaitable[BoardJoined]]
Handler = Callable[[Any], Any]
# `chat:join` and `chat:history` (channel, before), resent across reconnects
JoinChannel = Callable[[uuid.UUID], Awaitable[ChannelJoined]]
History = Callable[[uuid.UUID, int], Awaitable[HistoryPage]]


@dataclass
class _BoardFeed:
    """How far the handlers have seen one joined board's events."""

    last_seq: int  # -1 until the first join's ack
    syncing: bool = False  # a join is in flight: live events wait in `held`
    held: list[TaskEvent] = field(default_factory=list)
    catch_up: asyncio.Task[None] | None = None


@dataclass
class _ChannelFeed:
    """How far the handlers have seen one joined channel's messages."""

    last_seq: int
    syncing: bool = False
    held: list[ChatMessage] = field(default_factory=list)
    catch_up: asyncio.Task[None] | None = None


class EventStream:
    def __init__(self, join: Join, join_channel: JoinChannel, history: History) -> None:
        self._join = join
        self._join_channel = join_channel
        self._history = history
        self._channels: dict[uuid.UUID, _ChannelFeed] = {}
        self._handlers: defaultdict[str, list[Handler]] = defaultdict(list)
        self._snapshot_handlers: list[Handler] = []
        self._boards: dict[uuid.UUID, _BoardFeed] = {}
        self._lock = asyncio.Lock()
        self._owner: asyncio.Task[Any] | None = None
        self._stopped = False

    def add_handler(self, event: str, handler: Handler) -> None:
        self._handlers[event].append(handler)

    def add_snapshot_handler(self, handler: Handler) -> None:
        self._snapshot_handlers.append(handler)

    def last_seq(self, board_id: uuid.UUID) -> int | None:
        feed = self._boards.get(board_id)
        return feed.last_seq if feed is not None and feed.last_seq >= 0 else None

    # -- what the client tells it -----------------------------------------------

    def joining(self, board_id: uuid.UUID) -> None:
        """A `board:join` is about to be sent: hold the board's live events."""
        feed = self._boards.setdefault(board_id, _BoardFeed(last_seq=-1))
        feed.syncing = True

    async def joined(self, board_id: uuid.UUID, joined: BoardJoined | None) -> None:
        """The join's ack (None: it failed). The reply's own events are the caller's."""
        feed = self._boards.get(board_id)
        if feed is None:
            return
        if joined is None:
            if feed.last_seq < 0:
                del self._boards[board_id]
            else:
                self._start_catch_up(board_id, feed)  # releases what was held meanwhile
            return
        async with self._delivering():
            feed.last_seq = max(feed.last_seq, joined.seq)
            running = feed.catch_up is not None and not feed.catch_up.done()
            if not running and not await self._release(feed):
                self._start_catch_up(board_id, feed)

    def left(self, board_id: uuid.UUID) -> None:
        feed = self._boards.pop(board_id, None)
        if feed is not None and feed.catch_up is not None:
            feed.catch_up.cancel()

    def reconnected(self) -> None:
        """Catch every joined board up; call before any event of the new connection."""
        for board_id, feed in self._boards.items():
            feed.syncing = True
            self._start_catch_up(board_id, feed)
        for channel_id, channel in self._channels.items():
            channel.syncing = True
            if not self._stopped and (channel.catch_up is None or channel.catch_up.done()):
                channel.catch_up = asyncio.create_task(
                    self._catch_up_channel(channel_id, channel),
                    name=f"taskhub-chat-catch-up-{channel_id}",
                )

    def followed_channel(self, joined: ChannelJoined) -> None:
        """A `chat:join` was acked: follow the channel from its newest message."""
        newest = max((m.seq for m in joined.messages), default=0)
        feed = self._channels.setdefault(joined.channel.id, _ChannelFeed(last_seq=newest))
        feed.last_seq = max(feed.last_seq, newest)

    def left_channel(self, channel_id: uuid.UUID) -> None:
        feed = self._channels.pop(channel_id, None)
        if feed is not None and feed.catch_up is not None:
            feed.catch_up.cancel()

    def _catch_ups(self) -> list[asyncio.Task[None]]:
        feeds: list[_BoardFeed | _ChannelFeed] = [*self._boards.values(), *self._channels.values()]
        return [f.catch_up for f in feeds if f.catch_up is not None]

    def stop(self) -> None:
        self._stopped = True
        for task in self._catch_ups():
            task.cancel()

    async def close(self) -> None:
        self.stop()
        tasks = self._catch_ups()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- events ----------------------------------------------------------------

    async def receive(self, event: str, data: Any) -> None:
        kind = SERVER_EVENT_TYPES.get(event)
        try:
            value = msgspec.convert(data, kind) if kind is not None else data
        except msgspec.ValidationError:
            log.exception("dropped a malformed %s event", event)
            return
        async with self._delivering():
            if isinstance(value, TaskEvent):
                await self._task_event(event, value)
            elif event == ServerEvent.CHAT_MESSAGE and value.channel_id in self._channels:
                await self._chat_message(self._channels[value.channel_id], value)
            else:
                await self._deliver(event, value)

    @asynccontextmanager
    async def _delivering(self) -> AsyncIterator[None]:
        """One deliverer at a time, in arrival order; re-entered by a handler's call."""
        me = asyncio.current_task()
        if self._owner is me:
            yield
            return
        async with self._lock:
            self._owner = me
            try:
                yield
            finally:
                self._owner = None

    async def _task_event(self, event: str, value: TaskEvent) -> None:
        feed = self._boards.get(value.board_id)
        if feed is None:
            await self._deliver(event, value)
        elif feed.syncing:
            feed.held.append(value)
        elif value.seq <= feed.last_seq:
            pass  # seen already (around a join)
        elif value.seq > feed.last_seq + 1:
            feed.held.append(value)  # a gap: fetch what is missing first
            feed.syncing = True
            self._start_catch_up(value.board_id, feed)
        else:
            feed.last_seq = value.seq
            await self._deliver(event, value)

    def _start_catch_up(self, board_id: uuid.UUID, feed: _BoardFeed) -> None:
        if not self._stopped and (feed.catch_up is None or feed.catch_up.done()):
            feed.catch_up = asyncio.create_task(
                self._catch_up(board_id, feed), name=f"taskhub-catch-up-{board_id}"
            )

    async def _catch_up(self, board_id: uuid.UUID, feed: _BoardFeed) -> None:
        """Join again with `since_seq` until every held event follows without a gap."""
        while not self._stopped:
            try:
                joined = await self._join(board_id, feed.last_seq if feed.last_seq >= 0 else None)
            except Unavailable:
                await asyncio.sleep(0.5)  # not connected, or the hub is busy: again
                continue
            except (HubError, msgspec.ValidationError) as exc:
                log.warning("stopped following board %s: %s", board_id, exc)
                self._boards.pop(board_id, None)
                return
            async with self._delivering():
                if self._boards.get(board_id) is not feed:
                    return  # left meanwhile
                if joined.mode == "snapshot":
                    feed.last_seq = joined.seq
                    for handler in list(self._snapshot_handlers):
                        await self._run(handler, joined, "snapshot")
                for missed in joined.events:
                    if missed.seq > feed.last_seq:
                        feed.last_seq = missed.seq
                        await self._deliver(server_event_for(missed.type), missed)
                feed.last_seq = max(feed.last_seq, joined.seq)
                if await self._release(feed):
                    return

    async def _release(self, feed: _BoardFeed) -> bool:
        """Deliver the held events that follow on; False if a gap is left."""
        held, feed.held = sorted(feed.held, key=lambda e: e.seq), []
        for index, event in enumerate(held):
            if event.seq <= feed.last_seq:
                continue
            if event.seq > feed.last_seq + 1:
                feed.held = held[index:]
                return False
            feed.last_seq = event.seq
            await self._deliver(server_event_for(event.type), event)
        feed.syncing = False
        return True

    async def _chat_message(self, feed: _ChannelFeed, message: ChatMessage) -> None:
        if feed.syncing:
            feed.held.append(message)
        elif message.seq > feed.last_seq:
            feed.last_seq = message.seq
            await self._deliver(ServerEvent.CHAT_MESSAGE, message)

    async def _catch_up_channel(self, channel_id: uuid.UUID, feed: _ChannelFeed) -> None:
        """Join again, fetch the messages after `last_seq` (newest first, page by
        page), then hand them and those held meanwhile over, oldest first."""
        while not self._stopped:
            try:
                joined = await self._join_channel(channel_id)
                missed = [m for m in joined.messages if m.seq > feed.last_seq]
                before = min((m.seq for m in joined.messages), default=0)
                while before > feed.last_seq + 1 and len(missed) < CATCH_UP_MESSAGES:
                    page = await self._history(channel_id, before)
                    missed.extend(m for m in page.messages if m.seq > feed.last_seq)
                    if page.next is None:
                        break
                    before = page.next
            except Unavailable:
                await asyncio.sleep(0.5)
                continue
            except (HubError, msgspec.ValidationError) as exc:
                log.warning("stopped following channel %s: %s", channel_id, exc)
                self._channels.pop(channel_id, None)
                return
            async with self._delivering():
                if self._channels.get(channel_id) is not feed:
                    return
                waiting = {m.seq: m for m in [*missed, *feed.held]}
                feed.held, feed.syncing = [], False
                for seq in sorted(waiting):
                    if seq > feed.last_seq:
                        feed.last_seq = seq
                        await self._deliver(ServerEvent.CHAT_MESSAGE, waiting[seq])
            return

    async def _deliver(self, event: str, value: Any) -> None:
        for handler in list(self._handlers.get(event, ())):
            await self._run(handler, value, event)

    async def _run(self, handler: Handler, value: Any, event: str) -> None:
        try:
            result = handler(value)
            if inspect.isawaitable(result):
                await result
        except Exception:
            log.exception("a handler of %s failed", event)
