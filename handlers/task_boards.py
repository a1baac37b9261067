"""Which board each task a node wrote or looked up lately is on, kept by each node.

A task write takes its board's turn on this node (HubNamespace.writing) before its
transaction, so it must know the board first; a payload names only the task. A
task never changes board, so a remembered answer never goes stale, and it saves
the write a pool connection and a round trip. Nothing else rests on it: the
transaction reads the task's stored row, and with it the board and the caller's
role, as before (a caller refused there may still have had its task's board
remembered: that tells it nothing).
"""

from __future__ import annotations

import uuid
from collections import OrderedDict

# The most recently used tasks kept; a few hundred bytes each.
CAPACITY = 10_000


class TaskBoards:
    __slots__ = ("_boards", "_capacity")

    def __init__(self, capacity: int = CAPACITY) -> None:
        self._boards: OrderedDict[uuid.UUID, uuid.UUID] = OrderedDict()
        self._capacity = capacity

    def get(self, task_id: uuid.UUID) -> uuid.UUID | None:
        board_id = self._boards.get(task_id)
        if board_id is not None:
            self._boards.move_to_end(task_id)
        return board_id

    def remember(self, task_id: uuid.UUID, board_id: uuid.UUID) -> None:
        self._boards[task_id] = board_id
        self._boards.move_to_end(task_id)
        if len(self._boards) > self._capacity:
            self._boards.popitem(last=False)

    def __len__(self) -> int:
        return len(self._boards)
