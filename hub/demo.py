"""Demo data for `make run`: two people, one board, a dozen tasks."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from handlers import passwords, task_service
from protocol.models import BoardRole, TaskPriority, TaskStatus
from protocol.payloads import TaskCreate
from storage import boards, users
from storage.db import Pool, transaction
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
    return True
