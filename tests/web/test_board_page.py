"""The browser board in a real browser against a live hub."""

from __future__ import annotations

import uuid
from pathlib import Path

from playwright.async_api import Browser, Page, expect

from tests.support import Hub


async def sign_up(page: Page, hub: Hub, name: str) -> str:
    email = f"{name.lower()}.{uuid.uuid4().hex[:8]}@example.com"
    await page.goto(hub.url)
    await page.get_by_role("button", name="New here? Sign up").click()
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Name").fill(name)
    await page.get_by_label("Password").fill("a-long-enough-password")
    await page.get_by_role("button", name="Create account").click()
    await expect(page.get_by_role("heading", name="My boards")).to_be_visible()
    return email


async def test_sign_up_create_a_board_and_add_a_task(
    hub: Hub, browser: Browser, artifacts: Path
) -> None:
    page = await browser.new_page()
    await sign_up(page, hub, "Ada")
    await expect(page.get_by_text("No boards yet")).to_be_visible()

    await page.get_by_label("New board").fill("Launch plan")
    await page.get_by_role("button", name="Create board").click()
    await expect(page.get_by_role("heading", name="Launch plan")).to_be_visible()
    for column in ("To do", "In progress", "Review", "Done"):
        await expect(page.get_by_role("heading", name=column)).to_be_visible()

    await page.get_by_label("New task title").fill("Write the release notes")
    await page.get_by_label("New task title").press("Enter")
    todo = page.get_by_role("list", name="To do tasks")
    await expect(todo.get_by_text("Write the release notes")).to_be_visible()
    await page.screenshot(path=str(artifacts / "board.png"), full_page=True)

    # the refresh token is an httpOnly cookie: the page's script cannot read it
    assert "taskhub_refresh" not in await page.evaluate("document.cookie")
    assert any(c["name"] == "taskhub_refresh" for c in await page.context.cookies())

    # the board is in the list, and the task is stored: a reload (which resumes
    # the session from the cookie alone) shows both
    await page.get_by_role("link", name="← My boards").click()
    await expect(page.get_by_role("link", name="Launch plan")).to_be_visible()
    await page.reload()
    await page.get_by_role("link", name="Launch plan").click()
    await expect(todo.get_by_text("Write the release notes")).to_be_visible()


async def test_a_wrong_password_is_answered_on_the_page(hub: Hub, browser: Browser) -> None:
    page = await browser.new_page()
    email = await sign_up(page, hub, "Grace")
    await page.get_by_role("button", name="Log out").click()
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill("not-the-password")
    await page.get_by_role("button", name="Log in").click()
    await expect(page.get_by_role("alert")).to_contain_text("email or password")
    await expect(page.get_by_role("heading", name="Log in")).to_be_visible()


async def test_a_task_created_by_one_user_appears_for_another(hub: Hub, browser: Browser) -> None:
    owner_context = await browser.new_context()
    member_context = await browser.new_context()
    owner = await owner_context.new_page()
    member = await member_context.new_page()
    owner_email = await sign_up(owner, hub, "Owner")
    member_email = await sign_up(member, hub, "Member")

    await owner.get_by_label("New board").fill("Shared")
    await owner.get_by_role("button", name="Create board").click()
    await expect(owner.get_by_role("heading", name="Shared")).to_be_visible()
    board_id = owner.url.rsplit("/", 1)[1]
    _, login = await hub.request(
        "POST",
        "/api/auth/login",
        json={"email": owner_email, "password": "a-long-enough-password"},
    )
    token = login["access_token"]
    status, _ = await hub.request(
        "POST",
        f"/api/boards/{board_id}/members",
        token=token,
        json={"email": member_email, "role": "editor"},
    )
    assert status in (200, 201)

    await member.goto(f"{hub.url}/#/boards/{board_id}")
    await expect(member.get_by_role("heading", name="Shared")).to_be_visible()
    await owner.get_by_label("New task title").fill("Seen live")
    await owner.get_by_label("New task title").press("Enter")
    await expect(
        member.get_by_role("list", name="To do tasks").get_by_text("Seen live")
    ).to_be_visible()


AXE = Path(__file__).resolve().parents[2] / "web" / "node_modules" / "axe-core" / "axe.min.js"


async def serious_violations(page: Page) -> list[dict[str, object]]:
    """axe-core's findings of impact serious or critical, with the nodes they hit."""
    await page.add_script_tag(path=str(AXE))
    found = await page.evaluate(
        """async () => (await axe.run(document)).violations
            .filter(v => v.impact === 'serious' || v.impact === 'critical')
            .map(v => ({id: v.id, impact: v.impact, nodes: v.nodes.map(n => n.target)}))"""
    )
    return list(found)


async def test_the_login_and_board_pages_pass_an_accessibility_check(
    hub: Hub, browser: Browser
) -> None:
    page = await browser.new_page()
    await page.goto(hub.url)
    await expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    assert await serious_violations(page) == []

    await sign_up(page, hub, "Alan")
    await page.get_by_label("New board").fill("Checked")
    await page.get_by_role("button", name="Create board").click()
    await page.get_by_label("New task title").fill("A card to check")
    await page.get_by_label("New task title").press("Enter")
    await expect(page.get_by_text("A card to check")).to_be_visible()
    assert await serious_violations(page) == []
