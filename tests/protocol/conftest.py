"""The Python client's tests log in as people (email and password, or an access
token) from a script: their hubs let people's tokens in from clients that are not
browsers, as a hub that allows such scripts would (USER_TOKENS_WITHOUT_ORIGIN).
tests/hub/test_origins.py shows the default refusing them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from hub.config import Settings
from tests.conftest import StartHub, hub_starter


@pytest.fixture
async def start_hub(make_settings: Callable[..., Settings]) -> AsyncIterator[StartHub]:
    def scripts_allowed(**overrides: str) -> Settings:
        return make_settings(**{"USER_TOKENS_WITHOUT_ORIGIN": "true", **overrides})

    async with hub_starter(scripts_allowed) as start:
        yield start
