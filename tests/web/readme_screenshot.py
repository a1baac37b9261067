"""The README's picture of the board: `make screenshot` while `make run` serves
the demo. It logs in as the first demo user (the login page lists them in
development), opens the demo board with its chat, and writes docs/board.png."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from playwright.async_api import async_playwright, expect

from tests.web.conftest import CHROMIUM_FLAGS, installed

OUT = Path(__file__).resolve().parents[2] / "docs" / "board.png"


async def shoot(url: str, out: Path) -> None:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=installed("chromium", "chromium-browser"),
            headless=True,
            args=CHROMIUM_FLAGS,
        )
        page = await browser.new_page(viewport={"width": 1440, "height": 860})
        print(f"opening {url}")
        await page.goto(url)
        demo = page.get_by_role("button", name="Log in as").first
        await expect(demo).to_be_visible()
        print(f"logging in: {await demo.text_content()}")
        await demo.click()
        await page.get_by_role("link", name="Launch plan").click()
        await expect(page.get_by_role("heading", name="Launch plan")).to_be_visible()
        await expect(page.locator("li.task").first).to_be_visible()
        chat = page.get_by_role("button", name="Chat")
        if await chat.count():
            await chat.first.click()
        await page.wait_for_timeout(800)  # the chat's history and presence arrive
        await page.screenshot(path=str(out))
        await browser.close()
        print(f"wrote {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    asyncio.run(shoot(args.url, args.out))


if __name__ == "__main__":
    main()
