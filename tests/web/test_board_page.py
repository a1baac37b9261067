"""The browser board in a real browser against a live hub."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

from playwright.async_api import Browser, Locator, Page, WebSocketRoute, expect

from tests.support import Hub

PASSWORD = "a-long-enough-password"


async def sign_up(page: Page, hub: Hub, name: str) -> str:
    email = f"{name.lower()}.{uuid.uuid4().hex[:8]}@example.com"
    await page.goto(hub.url)
    await page.get_by_role("button", name="New here? Sign up").click()
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Name").fill(name)
    await page.get_by_label("Password").fill(PASSWORD)
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
    owner, member = await shared_board(hub, browser, "editor")
    await owner.get_by_label("New task title").fill("Seen live")
    await owner.get_by_label("New task title").press("Enter")
    await expect(column(member, "To do").get_by_text("Seen live")).to_be_visible()


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
    await edit(page, "A card to check")
    assert await serious_violations(page) == []


async def test_a_dropped_connection_catches_up_from_its_last_seq(
    hub: Hub, browser: Browser
) -> None:
    online = True
    live: list[WebSocketRoute] = []
    sent: list[str] = []

    async def gate(ws: WebSocketRoute) -> None:
        """The network between `away` and the hub: forwards while online, and
        refuses every new connection while offline."""
        if not online:
            await ws.close()
            return
        server = ws.connect_to_server()

        def forward(message: str | bytes) -> None:
            sent.append(str(message))
            server.send(message)

        ws.on_message(forward)
        live.append(ws)

    async def behind_gate(page: Page) -> None:
        await page.route_web_socket("**/socket.io/**", gate)

    away, here = await shared_board(
        hub, browser, "editor", "Before the drop", prepare_owner=behind_gate
    )
    await expect(here.get_by_text("Before the drop")).to_be_visible()

    online = False
    for ws in live:
        await ws.close()
    await expect(away.get_by_role("status")).to_contain_text("Connection lost")
    for title in ("Made while away", "And another"):
        await here.get_by_label("New task title").fill(title)
        await here.get_by_label("New task title").press("Enter")
        await expect(here.get_by_text(title)).to_be_visible()
    await expect(away.get_by_text("Made while away")).to_have_count(0)

    sent.clear()
    online = True
    todo = away.get_by_role("list", name="To do tasks")
    await expect(todo.get_by_text("And another")).to_be_visible(timeout=20_000)
    await expect(todo.get_by_text("Made while away")).to_be_visible()
    await expect(todo.locator("li.task")).to_have_count(3)
    await expect(away.get_by_role("status")).to_be_hidden()
    joins = [m for m in sent if '"board:join"' in m]
    assert joins and '"since_seq":1' in joins[0], joins


async def add_member(
    hub: Hub, owner_email: str, board_id: str, member_email: str, role: str = "editor"
) -> None:
    """The board's owner adds the member, over the REST API."""
    _, login = await hub.request(
        "POST", "/api/auth/login", json={"email": owner_email, "password": PASSWORD}
    )
    status, body = await hub.request(
        "POST",
        f"/api/boards/{board_id}/members",
        token=login["access_token"],
        json={"email": member_email, "role": role},
    )
    assert status in (200, 201), body


async def shared_board(
    hub: Hub,
    browser: Browser,
    role: str,
    *titles: str,
    prepare_owner: Callable[[Page], Awaitable[None]] | None = None,
) -> tuple[Page, Page]:
    """An owner's page on a new board with `titles` in To do, and a member's page
    (with `role`) on the same board; `prepare_owner` runs before the owner's page
    opens anything."""
    owner = await (await browser.new_context()).new_page()
    if prepare_owner is not None:
        await prepare_owner(owner)
    member = await (await browser.new_context()).new_page()
    owner_email = await sign_up(owner, hub, "Owner")
    member_email = await sign_up(member, hub, "Member")
    await owner.get_by_label("New board").fill("Shared")
    await owner.get_by_role("button", name="Create board").click()
    await expect(owner.get_by_role("heading", name="Shared")).to_be_visible()
    board_id = owner.url.rsplit("/", 1)[1]
    await add_member(hub, owner_email, board_id, member_email, role)
    for title in titles:
        await owner.get_by_label("New task title").fill(title)
        await owner.get_by_label("New task title").press("Enter")
        await expect(owner.get_by_text(title)).to_be_visible()
    await member.goto(f"{hub.url}/#/boards/{board_id}")
    await expect(member.get_by_role("heading", name="Shared")).to_be_visible()
    return owner, member


def column(page: Page, name: str) -> Locator:
    return page.get_by_role("list", name=f"{name} tasks")


async def test_a_card_dragged_in_one_browser_moves_in_the_other(hub: Hub, browser: Browser) -> None:
    owner, member = await shared_board(hub, browser, "editor", "First", "Second", "Third")

    # across columns
    await owner.locator("li.task", has_text="Second").drag_to(column(owner, "In progress"))
    await expect(column(owner, "In progress").get_by_text("Second")).to_be_visible()
    await expect(column(member, "In progress").get_by_text("Second")).to_be_visible()
    await expect(column(member, "To do").get_by_text("Second")).to_have_count(0)

    # within a column: Third above First, and the order is kept
    first = owner.locator("li.task", has_text="First")
    await owner.locator("li.task", has_text="Third").drag_to(
        first, target_position={"x": 20, "y": 2}
    )
    order = ["Third", "First"]
    await expect(column(owner, "To do").locator("li.task .title")).to_have_text(order)
    await expect(column(member, "To do").locator("li.task .title")).to_have_text(order)
    await member.reload()
    await expect(column(member, "To do").locator("li.task .title")).to_have_text(order)
    await expect(column(member, "In progress").locator("li.task .title")).to_have_text(["Second"])


async def test_a_refused_move_rolls_back_with_the_reason(hub: Hub, browser: Browser) -> None:
    owner, viewer = await shared_board(hub, browser, "viewer", "Look, do not touch")

    await viewer.get_by_label('Move "Look, do not touch" to').select_option("done")
    await expect(viewer.get_by_role("status")).to_contain_text("was not moved")
    await expect(column(viewer, "To do").get_by_text("Look, do not touch")).to_be_visible()
    await expect(column(viewer, "Done").get_by_text("Look, do not touch")).to_have_count(0)
    await owner.reload()
    await expect(column(owner, "To do").get_by_text("Look, do not touch")).to_be_visible()


async def edit(page: Page, title: str) -> Locator:
    """Open a card's edit panel; the panel."""
    await page.get_by_role("button", name=f'Edit "{title}"').click()
    panel = page.get_by_role("dialog")
    await expect(panel.get_by_role("heading", name="Edit task")).to_be_visible()
    return panel


async def both_retitle(hub: Hub, browser: Browser) -> tuple[Page, Page, Locator]:
    """The owner opens a card's panel and retitles it; meanwhile the member
    retitles it too and saves first; then the owner saves. The owner's panel is
    showing the conflict when this returns."""
    owner, member = await shared_board(hub, browser, "editor", "Draft title")
    mine = await edit(owner, "Draft title")
    await mine.get_by_label("Title").fill("Owner's title")
    theirs = await edit(member, "Draft title")
    await theirs.get_by_label("Title").fill("Member's title")
    await theirs.get_by_role("button", name="Save").click()
    await expect(column(owner, "To do").get_by_text("Member's title")).to_be_visible()
    await mine.get_by_role("button", name="Save").click()
    await expect(mine.get_by_role("heading", name="Someone changed this task")).to_be_visible()
    return owner, member, mine


async def test_a_conflicting_edit_shows_both_values_and_keeps_the_chosen_one(
    hub: Hub, browser: Browser, artifacts: Path
) -> None:
    owner, member, mine = await both_retitle(hub, browser)
    title = mine.get_by_role("group", name="Title")
    await expect(title.get_by_label("Keep mine")).to_be_checked()
    await expect(title).to_contain_text("Owner's title")
    await expect(title).to_contain_text("Member's title")
    await owner.screenshot(path=str(artifacts / "conflict-panel.png"))

    await mine.get_by_role("button", name="Save my choices").click()
    await expect(mine).to_be_hidden()
    for page in (owner, member):
        await expect(column(page, "To do").locator("li.task .title")).to_have_text(
            ["Owner's title"]
        )


async def test_taking_theirs_in_a_conflict_writes_nothing(hub: Hub, browser: Browser) -> None:
    owner, _, mine = await both_retitle(hub, browser)
    await mine.get_by_role("group", name="Title").get_by_label("Take theirs").check()
    await mine.get_by_role("button", name="Save my choices").click()
    await expect(mine).to_be_hidden()
    await owner.reload()
    await expect(column(owner, "To do").locator("li.task .title")).to_have_text(["Member's title"])


async def test_edits_of_different_fields_merge_without_asking(hub: Hub, browser: Browser) -> None:
    owner, member = await shared_board(hub, browser, "editor", "Merge me")
    mine = await edit(owner, "Merge me")
    await mine.get_by_label("Priority").select_option("urgent")

    theirs = await edit(member, "Merge me")
    await theirs.get_by_label("Title").fill("Merged")
    await theirs.get_by_role("button", name="Save").click()
    await expect(column(owner, "To do").get_by_text("Merged")).to_be_visible()

    await mine.get_by_role("button", name="Save").click()
    await expect(mine).to_be_hidden()
    for page in (owner, member):
        card = column(page, "To do").locator("li.task")
        await expect(card.locator(".title")).to_have_text(["Merged"])
        await expect(card.locator(".priority")).to_have_text(["urgent"])


async def test_who_is_here_and_who_just_changed_a_card(hub: Hub, browser: Browser) -> None:
    owner, member = await shared_board(hub, browser, "editor", "Watched card")
    people = member.get_by_role("list", name="On this board now")
    await expect(people.get_by_text("Owner", exact=True)).to_be_attached()
    await expect(people.get_by_text("Member", exact=True)).to_be_attached()

    await owner.get_by_label('Move "Watched card" to').select_option("review")
    card = column(member, "Review").locator("li.task", has_text="Watched card")
    await expect(card).to_contain_text("Changed by Owner")
    await expect(card).to_have_class("task changed")
    # the mover's own screen has no highlight, and the member's fades
    await expect(column(owner, "Review").locator("li.task")).not_to_contain_text("Changed by")
    await expect(card).not_to_contain_text("Changed by", timeout=5_000)

    await owner.close()
    await expect(people.get_by_text("Owner", exact=True)).not_to_be_attached()


async def test_delete_with_undo(hub: Hub, browser: Browser) -> None:
    owner, member = await shared_board(hub, browser, "editor", "Keep me", "Drop me")

    panel = await edit(owner, "Keep me")
    await panel.get_by_role("button", name="Delete").click()
    await expect(column(owner, "To do").get_by_text("Keep me")).to_have_count(0)
    toast = owner.get_by_role("status").filter(has_text='Deleted "Keep me"')
    await toast.get_by_role("button", name="Undo").click()
    await expect(column(owner, "To do").get_by_text("Keep me")).to_be_visible()

    panel = await edit(owner, "Drop me")
    await panel.get_by_role("button", name="Delete").click()
    # sent when the undo time is up: the other screen loses it then, and it stays gone
    await expect(column(member, "To do").get_by_text("Drop me")).to_have_count(0, timeout=10_000)
    await expect(toast).to_be_hidden()
    for page in (owner, member):
        await page.reload()
        await expect(column(page, "To do").locator("li.task .title")).to_have_text(["Keep me"])


async def test_filters_and_search_hide_cards_on_this_screen_only(
    hub: Hub, browser: Browser
) -> None:
    owner, member = await shared_board(hub, browser, "editor", "Fix login", "Write docs")
    panel = await edit(owner, "Fix login")
    await panel.get_by_label("Priority").select_option("urgent")
    await panel.get_by_label("Tags").fill("backend, security")
    await panel.get_by_label("Assignee").select_option(label="Member")
    await panel.get_by_role("button", name="Save").click()
    await expect(
        column(member, "To do")
        .locator("li.task", has_text="Fix login")
        .get_by_title("Assigned to Member")
    ).to_be_visible()
    todo = column(owner, "To do").locator("li.task .title")
    await expect(todo).to_have_text(["Fix login", "Write docs"])

    await owner.get_by_label("Search tasks").fill("LOGIN")
    await expect(todo).to_have_text(["Fix login"])
    await owner.get_by_role("button", name="Clear filters").click()
    await owner.get_by_label("Filter by priority").select_option("urgent")
    await expect(todo).to_have_text(["Fix login"])
    await owner.get_by_role("button", name="Clear filters").click()
    await owner.get_by_label("Filter by tag").select_option("security")
    await expect(todo).to_have_text(["Fix login"])
    await owner.get_by_role("button", name="Clear filters").click()
    await owner.get_by_label("Filter by assignee").select_option("nobody")
    await expect(todo).to_have_text(["Write docs"])
    await owner.get_by_label("Filter by assignee").select_option(label="Member")
    await expect(todo).to_have_text(["Fix login"])
    await owner.get_by_role("button", name="Clear filters").click()

    # a filtered screen still takes live events, and text being typed survives them
    await owner.get_by_label("Search tasks").fill("docs")
    await owner.get_by_label("New task title").fill("half-typed")
    await member.get_by_label("New task title").fill("More docs")
    await member.get_by_label("New task title").press("Enter")
    await expect(todo).to_have_text(["Write docs", "More docs"])
    await expect(owner.get_by_label("New task title")).to_have_value("half-typed")
    await expect(column(member, "To do").locator("li.task")).to_have_count(3)
