"""Real headless browsers: Debian's chromium (over CDP) and Debian's firefox-esr
(over WebDriver BiDi, Playwright's `moz-firefox` channel), driven by Playwright
with no browser download; the Makefile's test target installs both packages.
Every browser test runs in each of them."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, async_playwright

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


@pytest.fixture(params=["chromium", "firefox"])
async def browser(request: pytest.FixtureRequest) -> AsyncIterator[Browser]:
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


@pytest.fixture
def artifacts() -> Path:
    """Screenshots the run keeps (test-artifacts/, not committed)."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
