"""Users of a chaos test: people registered over REST, editors that keep editing
through the product's Python client (`protocol.client.TaskhubClient`), watchers
that record every task event they are delivered, and what the database holds.

Editors behave as a real client does: each edit has an `op_id`; an edit without
an answer (the connection dropped, the hub said `unavailable`) is sent again with
the same `op_id` until it gets an answer, so its outcome is always known. The
outcome list is what the tests compare with the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import asyncpg
import msgspec

from protocol.client import TaskhubClient
from protocol.errors import HubError, Unavailable
from protocol.events import ClientEvent
from protocol.models import TaskEvent
from protocol.payloads import TaskChanges, TaskUpdate
from tests.chaos.stack import until

PASSWORD = "s3cret-pass"


@dataclass
class Person:
    id: str
    email: str
    access_token: str


async def _rest(url: str, method: str, path: str, token: str | None, body: Any) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, url + path, json=body, headers=headers) as resp,
    ):
        data = await resp.json()
        assert resp.status in (200, 201), (path, resp.status, data)
        return data


async def register(url: str, name: str) -> Person:
    email = f"{name.lower()}.{uuid.uuid4().hex[:8]}@example.com"
    body = await _rest(
        url,
        "POST",
        "/api/auth/register",
        None,
        {"email": email, "name": name, "password": PASSWORD},
    )
    return Person(body["user"]["id"], email, body["access_token"])


@dataclass
class Team:
    """A board, its owner, its editors and its viewers."""

    board_id: str
    owner: Person
    editors: list[Person]
    watchers: list[Person]


async def team(url: str, editors: int, watchers: int) -> Team:
    owner = await register(url, "Owner")
    board = await _rest(url, "POST", "/api/boards", owner.access_token, {"name": "Chaos"})
    people = await asyncio.gather(
        *(register(url, f"Editor{n}") for n in range(editors)),
        *(register(url, f"Watcher{n}") for n in range(watchers)),
    )
    for n, person in enumerate(people):
        role = "editor" if n < editors else "viewer"
        await _rest(
            url,
            "POST",
            f"/api/boards/{board['id']}/members",
            owner.access_token,
            {"email": person.email, "role": role},
        )
    return Team(board["id"], owner, list(people[:editors]), list(people[editors:]))


def client(url: str, person: Person, **options: Any) -> TaskhubClient:
    """The product's client, logging in with email and password as a person would."""
    options.setdefault("reconnection_delay_max", 2.0)
    return TaskhubClient(url, email=person.email, password=PASSWORD, **options)


@dataclass
class Editor:
    """Edits one task over and over, each edit resent until it has an answer."""

    hub: TaskhubClient
    task_id: str = ""
    version: int = 1
    # the fields edit number n changes; a new title by default
    change: Callable[[int], dict[str, Any]] = lambda number: {"title": f"edit {number}"}
    acked: list[TaskEvent] = field(default_factory=list)
    # every answer that was not an ack, by code: "unavailable", "timeout", ...
    refusals: list[str] = field(default_factory=list)

    @classmethod
    async def on_board(cls, hub: TaskhubClient, board_id: str) -> Editor:
        """An editor of a task it creates on the board."""
        created = await hub.create_task(board_id, "to be edited")
        return cls(hub, str(created.task_id), created.task.version)

    async def edit(self, number: int, give_up_after: float = 90) -> TaskEvent:
        payload = TaskUpdate(
            task_id=uuid.UUID(self.task_id),
            base_version=self.version,
            changes=TaskChanges(**self.change(number)),
            op_id=uuid.uuid4(),
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + give_up_after
        while True:
            try:
                data = await self.hub.call(ClientEvent.TASK_UPDATE, payload, timeout=5)
            except Unavailable as exc:
                self.refusals.append(exc.code)
            except TimeoutError:
                self.refusals.append("timeout")
            except HubError as exc:
                raise AssertionError(f"edit {number} refused: {exc.to_dict()}") from exc
            else:
                event = msgspec.convert(data, TaskEvent)
                self.acked.append(event)
                self.version = event.task.version
                return event
            assert loop.time() < deadline, f"edit {number} got no ack in {give_up_after} s"
            await asyncio.sleep(0.2)

    async def run(self, stop: asyncio.Event, pause: float = 0.05) -> None:
        number = 0
        while not stop.is_set():
            number += 1
            await self.edit(number)
            await asyncio.sleep(pause)


@dataclass
class Watcher:
    """A member with the board open: records each task event as delivered."""

    hub: TaskhubClient
    seen: list[tuple[int, str]] = field(default_factory=list)  # (seq, event_id)

    def record(self, event: TaskEvent) -> None:
        self.seen.append((event.seq, str(event.event_id)))

    @classmethod
    async def on_board(cls, hub: TaskhubClient, board_id: str) -> Watcher:
        watcher = cls(hub)
        for name in ("task:created", "task:updated", "task:moved", "task:deleted"):
            hub.on(name, watcher.record)
        await hub.join_board(board_id)
        return watcher


async def board_history(database_url: str, board_id: str) -> list[tuple[int, str]]:
    """(seq, event_id) of every stored event of the board, in seq order."""
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT seq, event_id FROM task_events WHERE board_id = $1 ORDER BY seq",
            uuid.UUID(board_id),
        )
    finally:
        await conn.close()
    return [(r["seq"], str(r["event_id"])) for r in rows]


async def close_all(clients: list[TaskhubClient]) -> None:
    for hub in clients:
        with contextlib.suppress(Exception):
            await hub.close()


async def assigning_editors(url: str, count: int) -> tuple[Team, list[Editor]]:
    """`count` connected editors whose every edit hands their task over to one of
    two other members in turn: every event then calls for exactly one notification."""
    people = await team(url, editors=count + 2, watchers=0)
    first, second = (uuid.UUID(person.id) for person in people.editors[-2:])
    editors = []
    for person in people.editors[:count]:
        hub = client(url, person)
        await hub.connect()
        editor = await Editor.on_board(hub, people.board_id)
        editor.change = lambda n: {"assignee_id": first if n % 2 else second}
        editors.append(editor)
    return people, editors


def assignments(editors: list[Editor]) -> set[tuple[str, str]]:
    """(assignee, event_id) of every acknowledged edit: the notifications owed."""
    return {
        (str(event.task.assignee_id), str(event.event_id)) for e in editors for event in e.acked
    }


async def assignment_notifications(database_url: str) -> list[tuple[str, str]]:
    """(user, event_id) of every stored notification, duplicates included."""
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT user_id, event_id FROM notifications")
    finally:
        await conn.close()
    return [(str(r["user_id"]), str(r["event_id"])) for r in rows]


async def unpublished(database_url: str) -> int:
    """Events the outbox relay has not had acknowledged by the broker yet."""
    conn = await asyncpg.connect(database_url)
    try:
        return int(
            await conn.fetchval("SELECT count(*) FROM task_events WHERE published_at IS NULL")
        )
    finally:
        await conn.close()


async def acked_edits_stored(
    database_url: str, board_id: str, editors: list[Editor]
) -> list[tuple[int, str]]:
    """Assert every acknowledged edit is in the board's history; returns the history."""
    history = await board_history(database_url, board_id)
    acked = {str(event.event_id) for e in editors for event in e.acked}
    missing = acked - {event_id for _, event_id in history}
    assert not missing, f"{len(missing)} acknowledged edits are not stored"
    return history


async def notified_once_each(database_url: str, editors: list[Editor], within: float) -> int:
    """Wait for one notification per acknowledged assignment, and assert there is
    no other (none missing, none twice); returns how many."""
    wanted = assignments(editors)

    async def all_notified() -> bool:
        return set(await assignment_notifications(database_url)) >= wanted

    await until(all_notified, within, "every assignment notified")
    got = await assignment_notifications(database_url)
    assert sorted(got) == sorted(wanted), "a notification is missing, extra, or twice"
    return len(got)
