"""Demo data for `make run`: two people, one board, a dozen tasks, a few chat
messages, and the triage bot with a token of its own."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from handlers import passwords, task_service
from handlers.chat import mention_handles
from protocol.bots import MAX_TOKEN_DAYS, Scope, new_secret
from protocol.events import ChatEventType
from protocol.models import BoardRole, TaskPriority, TaskStatus, User
from protocol.payloads import TaskCreate
from storage import api_tokens, boards, channels, chat_messages, users
from storage.db import Connection, Pool, transaction
from storage.task_events import Origin

DEMO_USERS = (
    ("alice@example.com", "Alice Demo", "alice-demo-password"),
    ("bob@example.com", "Bob Demo", "bob-demo-password"),
)

_TASKS = (
    ("Sketch the onboarding flow", TaskStatus.DONE, TaskPriority.MEDIUM, ["design"]),
    ("Write the API error catalogue", TaskStatus.DONE, TaskPriority.LOW, ["docs"]),
    ("Board drag and drop", TaskStatus.REVIEW, TaskPriority.HIGH, ["frontend"]),
    ("Presence avatars", TaskStatus.REVIEW, TaskPriority.MEDIUM, ["frontend"]),
    ("Field-level merge on conflicts", TaskStatus.IN_PROGRESS, TaskPriority.URGENT, ["backend"]),
    ("Reconnect catch-up by seq", TaskStatus.IN_PROGRESS, TaskPriority.HIGH, ["backend"]),
    ("Rate limits per user", TaskStatus.TODO, TaskPriority.MEDIUM, ["backend", "security"]),
    ("Reminder scheduler", TaskStatus.TODO, TaskPriority.MEDIUM, ["backend"]),
    ("Chat typing indicators", TaskStatus.TODO, TaskPriority.LOW, ["frontend", "chat"]),
    ("Bot token scopes", TaskStatus.TODO, TaskPriority.HIGH, ["security"]),
    ("Benchmark the fan-out", TaskStatus.TODO, TaskPriority.MEDIUM, ["performance"]),
    ("Old landing page copy", TaskStatus.CANCELLED, TaskPriority.LOW, ["marketing"]),
)

_CHAT = (
    (0, "Welcome to the Launch plan channel. The triage bot is here: try /help"),
    (1, "I'm on the drag and drop review today, @alice"),
    (0, "Thanks! /task Fix login and /triage <title> work from here too"),
)

DEMO_BOT = "Triage Bot"

Progress = Callable[[str], None]


async def seed_demo(pool: Pool, bcrypt_rounds: int, progress: Progress) -> bool:
    """Create the demo once; False when it was already there."""
    async with pool.acquire() as conn:
        if await users.get_by_email(conn, DEMO_USERS[0][0]) is not None:
            return False
    hashes = [await passwords.hash_password(pw, bcrypt_rounds) for _, _, pw in DEMO_USERS]
    async with transaction(pool) as conn:
        people = [
            await users.create(conn, email, name, hashed)
            for (email, name, _), hashed in zip(DEMO_USERS, hashes, strict=True)
        ]
        alice, bob = people
        board = await boards.create(conn, "Launch plan", alice.id)
        await boards.add_member(conn, board.id, bob.id, BoardRole.EDITOR)
        now = datetime.now(UTC)
        for index, (title, status, priority, tags) in enumerate(_TASKS, 1):
            progress(f"seeding task {index}/{len(_TASKS)}: {title}")
            payload = TaskCreate(
                board_id=board.id,
                title=title,
                status=status,
                priority=priority,
                tags=tags,
                assignee_id=(alice.id, bob.id)[index % 2],
                due_date=now + timedelta(days=index - 3),
            )
            await task_service.create(conn, alice.id, payload, Origin("seed-demo"))
        await _seed_chat(conn, board.id, people)
    return True


async def _seed_chat(conn: Connection, board_id: uuid.UUID, people: list[User]) -> None:
    """A few messages in the board's channel, published like any other."""
    channel = await channels.board_channel(conn, board_id)
    for sender, body in _CHAT:
        author = people[sender]
        mentioned = await channels.matching_members(conn, channel.id, mention_handles(body))
        message = await chat_messages.insert(
            conn,
            channel_id=channel.id,
            seq=await channels.next_seq(conn, channel.id),
            sender_id=author.id,
            body=body,
            mentions=[m for m in mentioned if m != author.id],
            correlation_id="seed-demo",
        )
        await chat_messages.publish(conn, ChatEventType.MESSAGE, message, "seed-demo")


async def demo_bot_token(pool: Pool) -> str | None:
    """A new token for the triage bot on the demo boards (the bot is made once);
    None when there is no demo. The caller keeps the secret: the hub only has its hash."""
    secret = new_secret()
    async with transaction(pool) as conn:
        alice = await users.get_by_email(conn, DEMO_USERS[0][0])
        if alice is None:
            return None
        bot = await users.bot_named(conn, DEMO_BOT, alice.id)
        if bot is None:
            bot = await users.create_bot(conn, DEMO_BOT, alice.id)
            for board in await boards.list_for_user(conn, alice.id):
                if board.owner_id == alice.id:
                    await boards.add_member(conn, board.id, bot.id, BoardRole.EDITOR)
        await api_tokens.create(
            conn,
            bot.id,
            secret,
            name="demo",
            scopes=list(Scope),
            days=MAX_TOKEN_DAYS,
            created_by=alice.id,
        )
    return secret
