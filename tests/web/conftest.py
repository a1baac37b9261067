"""Real headless browsers: Debian's chromium (over CDP) and Debian's firefox-esr
(over WebDriver BiDi, Playwright's `moz-firefox` channel), driven by Playwright
with no browser download; the Makefile's test target installs both packages.
Every browser test runs in each of them."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import Browser, async_playwright

from hub.config import Settings
from tests.conftest import (
    TEMPLATE_DB,
    StartHub,
    hub_starter,
    loop_errors_fail,
    scratch_database,
)
from tests.support import Hub

# Chromium starts many background connections that this closed network refuses.
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def installed(*names: str) -> str:
    for name in names:
        path = shutil.which(name)
        if path is not None:
            return path
    pytest.fail(f"{names[0]} is not installed: `make test` installs Debian's {names[0]} package")


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=["chromium", "firefox"])
async def launched_browser(request: pytest.FixtureRequest) -> AsyncIterator[Browser]:
    """One browser per module and kind: launching firefox takes two seconds."""
    async with async_playwright() as playwright:
        if request.param == "chromium":
            launched = await playwright.chromium.launch(
                executable_path=installed("chromium", "chromium-browser"),
                headless=True,
                args=CHROMIUM_FLAGS,
            )
        else:
            launched = await playwright.firefox.launch(
                executable_path=installed("firefox-esr", "firefox"),
                channel="moz-firefox",
                headless=True,
            )
        try:
            yield launched
        finally:
            await launched.close()


@pytest_asyncio.fixture(loop_scope="module")
async def browser(launched_browser: Browser, start_hub: StartHub) -> AsyncIterator[Browser]:
    """The module's browser; what a test opened in it is closed after the test, before
    its hubs stop (a hub waits for the websockets still open)."""
    yield launched_browser
    for context in list(launched_browser.contexts):
        await context.close()


# The browser tests run in their module's event loop (each module sets
# pytestmark), so the async fixtures they use run there too.


@pytest_asyncio.fixture(loop_scope="module", autouse=True)
async def fail_on_loop_errors() -> AsyncIterator[None]:
    async with loop_errors_fail():
        yield


@pytest_asyncio.fixture(loop_scope="module")
async def database(services: dict[str, str]) -> AsyncIterator[str]:
    async with scratch_database(services["DATABASE_URL"], TEMPLATE_DB) as dsn:
        yield dsn


@pytest_asyncio.fixture(loop_scope="module")
async def start_hub(make_settings: Callable[..., Settings]) -> AsyncIterator[StartHub]:
    async with hub_starter(make_settings) as start:
        yield start


@pytest_asyncio.fixture(loop_scope="module")
async def hub(start_hub: StartHub) -> Hub:
    return await start_hub()


@pytest.fixture
def artifacts() -> Path:
    """Screenshots the run keeps (test-artifacts/, not committed)."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
