"""The triage bot (`taskhub bot triage`): board work from any channel it is in.

    /task <title>            create a task on the channel's board, reply with its link
    /assign <task> @person   make a member the task's assignee
    /status <task> <status>  move a task (todo, in_progress, review, done, cancelled)
    /triage <title>          report a problem for triage (a pending triage item)
    /help                    the commands

`<task>` is a task's id, the start of it (at least 4 characters), or its title
(exactly, or a part of it that only one task has). `@person` is a member's name
without spaces, or the part of their email before the @.

It is an ordinary client of the hub (protocol/client.py, msgpack): it joins
every channel it is a member of (and those it is added to later), follows the
boards of those channels to know their tasks, and answers in the channel a
command came from. A mistake gets its usage or the hub's reason; a failure
gets a short apology with the correlation id, never a stack trace. Its token
needs the scopes chat:read, chat:write, tasks:read and tasks:write.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from protocol.client import TaskhubClient
from protocol.errors import Forbidden, HubError, Unavailable, VersionConflict
from protocol.models import Channel, ChatMessage, Member, Task, TaskEvent, TaskStatus
from protocol.replies import BoardJoined

log = logging.getLogger(__name__)

USAGE = """Here is what I can do:
• /task <title> - create a task on this channel's board
• /assign <task> @person - make a member the task's assignee
• /status <task> <status> - move a task: todo, in_progress, review, done or cancelled
• /triage <title> - report a problem for triage
• /help - this list
<task> is a task's id (or its first characters) or its title."""

COMMAND_USAGE = {
    "task": "Usage: /task <title>",
    "assign": "Usage: /assign <task> @person",
    "status": "Usage: /status <task> <status> (todo, in_progress, review, done, cancelled)",
    "triage": "Usage: /triage <title>",
}

MIN_ID_PREFIX = 4


class Reply(Exception):
    """Stop handling a command and answer this."""


@dataclass
class BoardView:
    """The tasks of a board the bot follows, kept current by its events."""

    tasks: dict[uuid.UUID, Task] = field(default_factory=dict)

    def load(self, joined: BoardJoined) -> None:
        if joined.mode == "snapshot":
            self.tasks = {t.id: t for t in joined.tasks}
        for event in joined.events:
            self.apply(event)

    def apply(self, event: TaskEvent) -> None:
        if event.task.deleted_at is not None:
            self.tasks.pop(event.task.id, None)
            return
        known = self.tasks.get(event.task.id)
        if known is None or known.version <= event.task.version:
            self.tasks[event.task.id] = event.task

    def find(self, reference: str) -> Task:
        """The one live task `reference` names, or a Reply that says why there is none."""
        text = reference.strip().strip("\"'“”")
        lowered = text.lower()
        for task in self.tasks.values():
            if str(task.id) == lowered:
                return task
        by_id = [
            t
            for t in self.tasks.values()
            if len(text) >= MIN_ID_PREFIX and str(t.id).startswith(lowered)
        ]
        exact = [t for t in self.tasks.values() if t.title.lower() == lowered]
        partial = [t for t in self.tasks.values() if lowered and lowered in t.title.lower()]
        for found in (by_id, exact, partial):
            if len(found) == 1:
                return found[0]
            if len(found) > 1:
                names = ", ".join(f"“{t.title}” ({short(t.id)})" for t in found[:5])
                raise Reply(f"“{text}” could be several tasks: {names}. Use the id.")
        raise Reply(f"I found no task “{text}” on this board.")


def short(task_id: uuid.UUID) -> str:
    return str(task_id)[:8]


def handle_of(member: Member) -> Iterable[str]:
    yield member.name.replace(" ", "").lower()
    yield member.email.split("@", 1)[0].lower()


class TriageBot:
    def __init__(self, client: TaskhubClient, public_url: str) -> None:
        self.client = client
        self.public_url = public_url.rstrip("/")
        self.channels: dict[uuid.UUID, Channel] = {}
        self.boards: dict[uuid.UUID, BoardView] = {}
        self.sent: set[uuid.UUID] = set()
        self._commands: dict[str, Callable[[Channel, str], Awaitable[str]]] = {
            "task": self.create_task,
            "assign": self.assign,
            "status": self.set_status,
            "triage": self.report,
        }

    async def start(self) -> None:
        """Follow every channel the bot is in, now and when it is added to one."""
        self.client.on("chat:message", self.on_message)
        self.client.on("chat:channel", self.follow)
        for event in ("task:created", "task:updated", "task:deleted"):
            self.client.on(event, self.on_task_event)
        self.client.on_snapshot(self.on_snapshot)
        for channel in await self.client.chat.channels():
            await self.follow(channel)
        log.info("triage bot ready", extra={"channels": len(self.channels)})

    async def follow(self, channel: Channel) -> None:
        self.channels[channel.id] = channel
        if channel.kind == "channel":
            await self.client.chat.join(channel.id, limit=1)

    async def _board(self, board_id: uuid.UUID) -> BoardView:
        view = self.boards.get(board_id)
        if view is None:
            view = BoardView()
            self.boards[board_id] = view
            view.load(await self.client.join_board(board_id))
        return view

    def on_task_event(self, event: TaskEvent) -> None:
        view = self.boards.get(event.board_id)
        if view is not None:
            view.apply(event)

    def on_snapshot(self, joined: BoardJoined) -> None:
        view = self.boards.get(joined.board.id)
        if view is not None:
            view.load(joined)

    # -- commands ----------------------------------------------------------------

    async def on_message(self, message: ChatMessage) -> None:
        """Answer a command; anything else (and the bot's own words) is left alone."""
        if message.id in self.sent or not message.body.startswith("/"):
            return
        channel = self.channels.get(message.channel_id)
        if channel is None:  # a DM: the bot learns of it from its first message
            channel = next(
                (c for c in await self.client.chat.channels() if c.id == message.channel_id), None
            )
            if channel is None:
                return
            self.channels[channel.id] = channel
        name, _, rest = message.body[1:].partition(" ")
        name = name.lower()
        try:
            answer = await self._run(name, channel, rest.strip())
        except Reply as reply:
            answer = str(reply)
        except Forbidden as exc:
            answer = f"I am not allowed to do that here: {exc.message}"
        except HubError as exc:
            answer = f"That did not work: {exc.message}"
        except Exception:
            log.exception("a command failed", extra={"command": name})
            answer = "Sorry, something went wrong on my side. It is in my log."
        await self.say(channel, answer)

    async def _run(self, name: str, channel: Channel, rest: str) -> str:
        if name == "help":
            return USAGE
        command = self._commands.get(name)
        if command is None:
            return f"I do not know /{name[:40]}.\n{USAGE}"
        if not rest:
            raise Reply(COMMAND_USAGE[name])
        return await command(channel, rest)

    async def say(self, channel: Channel, text: str) -> None:
        sent = await self.client.chat.send(text[:10_000], channel_id=channel.id)
        self.sent.add(sent.id)

    def _board_of(self, channel: Channel) -> uuid.UUID:
        if channel.board_id is None:
            raise Reply("This channel belongs to no board; ask me in a board's channel.")
        return channel.board_id

    def link(self, board_id: uuid.UUID, task_id: uuid.UUID) -> str:
        return f"{self.public_url}/#/boards/{board_id}/tasks/{task_id}"

    async def create_task(self, channel: Channel, title: str) -> str:
        board_id = self._board_of(channel)
        event = await self.client.create_task(board_id, title[:255])
        (await self._board(board_id)).apply(event)
        task = event.task
        return f"Created “{task.title}” ({short(task.id)}): {self.link(board_id, task.id)}"

    async def assign(self, channel: Channel, rest: str) -> str:
        board_id = self._board_of(channel)
        reference, _, person = rest.rpartition(" ")
        if not reference or not person.startswith("@") or len(person) < 2:
            raise Reply(COMMAND_USAGE["assign"])
        wanted = person[1:].lower()
        members = await self.client.members(board_id)
        matches = [m for m in members if wanted in handle_of(m)]
        if len(matches) != 1:
            raise Reply(f"I found no single member {person} on this board.")
        (member,) = matches
        task = (await self._board(board_id)).find(reference)
        event = await self._update(board_id, task, assignee_id=member.user_id)
        return f"Assigned “{event.task.title}” to {member.name}."

    async def set_status(self, channel: Channel, rest: str) -> str:
        board_id = self._board_of(channel)
        reference, _, status = rest.rpartition(" ")
        try:
            wanted = TaskStatus(status.lower())
        except ValueError:
            raise Reply(COMMAND_USAGE["status"]) from None
        if not reference:
            raise Reply(COMMAND_USAGE["status"])
        task = (await self._board(board_id)).find(reference)
        event = await self._update(board_id, task, status=wanted)
        return f"“{event.task.title}” is now {wanted.value}."

    async def _update(self, board_id: uuid.UUID, task: Task, **changes: object) -> TaskEvent:
        """Write on top of the version the bot knows; a clash on the same field (someone
        just changed it) is retried once on the current task, since the command says
        what the person wants it to be now."""
        try:
            event = await self.client.update_task(task.id, task.version, **changes)
        except VersionConflict as conflict:
            if conflict.task is None:
                raise
            event = await self.client.update_task(task.id, conflict.task.version, **changes)
        (await self._board(board_id)).apply(event)
        return event

    async def report(self, channel: Channel, title: str) -> str:
        board_id = self._board_of(channel)
        item = await self.client.report(board_id, title[:200])
        return f"Filed for triage: “{item.title}” ({item.status})."


async def run(
    url: str,
    token: str,
    public_url: str,
    stop: asyncio.Event,
    ready: asyncio.Event | None = None,
) -> None:
    """Run the bot until `stop` is set or the hub ends its connection (a revoked token).

    A hub that is not up yet (the bot started beside it) is waited for, with
    backoff; once connected, the client reconnects by itself. `ready` is set once
    the bot follows its channels.
    """
    delay = 0.5
    while not stop.is_set():
        client = TaskhubClient(url, token=token)
        try:
            await client.connect()
        except Unavailable as exc:
            log.info("the hub is not reachable yet; retrying", extra={"error": str(exc)})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            delay = min(delay * 2, 10.0)
            continue
        try:
            await _serve(client, public_url, stop, ready)
        finally:
            await client.close()
        return


async def _serve(
    client: TaskhubClient, public_url: str, stop: asyncio.Event, ready: asyncio.Event | None
) -> None:
    bot = TriageBot(client, public_url)
    await bot.start()
    if ready is not None:
        ready.set()
    ended = asyncio.ensure_future(client.wait())
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({ended, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
        if ended.done():
            ended.result()  # raises the reason the hub ended it
        else:
            ended.cancel()
