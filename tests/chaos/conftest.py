"""`make chaos`: faults of issue 7 point 7, each against a deployment of its own
(tests/chaos/stack.py). Marked `chaos`, so `make test` leaves them to `make chaos`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.chaos.stack import Deployment, deployment


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/chaos/" in str(item.path).replace("\\", "/"):
            item.add_marker(pytest.mark.chaos)


@pytest.fixture
async def deployed(tmp_path: Path) -> AsyncIterator[Deployment]:
    async with deployment(tmp_path) as servers:
        yield servers
