"""A node remembers the boards of the tasks it wrote most recently, and no more."""

from __future__ import annotations

import uuid

from handlers.task_boards import TaskBoards


def test_the_least_recently_used_task_is_forgotten_first() -> None:
    boards = TaskBoards(capacity=2)
    a, b, c = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    board = uuid.uuid4()
    boards.remember(a, board)
    boards.remember(b, board)
    assert boards.get(a) == board  # a is now the most recent
    boards.remember(c, board)
    assert len(boards) == 2
    assert boards.get(b) is None
    assert boards.get(a) == board and boards.get(c) == board
