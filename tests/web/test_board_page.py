"""The browser board in a real browser against a live hub."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from playwright.async_api import Browser, Locator, Page, Route, WebSocketRoute, expect

from handlers.socket_hub import HUB_NAMESPACES
from protocol.errors import server_shutdown
from tests.support import Hub
from tests.web.pages import (
    Gate,
    access_token,
    banner,
    column,
    create_board,
    edit,
    serious_violations,
    shared_board,
    sign_up,
)

# one xdist worker runs every browser test, one after the other (see the Makefile)
pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.xdist_group("browsers")]


async def test_sign_up_create_a_board_and_add_a_task(
    hub: Hub, browser: Browser, artifacts: Path
) -> None:
    page = await browser.new_page()
    await sign_up(page, hub, "Ada")
    await expect(page.get_by_text("No boards yet")).to_be_visible()

    await create_board(page, "Launch plan")
    for heading in ("To do", "In progress", "Review", "Done"):
        await expect(page.get_by_role("heading", name=heading)).to_be_visible()

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


async def test_a_title_typed_while_the_last_one_is_saved_is_kept(
    hub: Hub, browser: Browser
) -> None:
    page = await browser.new_page()
    gate = Gate()
    await gate.install(page)
    await sign_up(page, hub, "Swift")
    await create_board(page, "Quick list")

    # the hub's answer to the first title arrives after the second is typed
    box = page.get_by_label("New task title")
    gate.hold()
    await box.fill("First")
    await box.press("Enter")
    await expect(box).to_have_value("")
    await box.fill("Second")
    gate.release()
    await expect(column(page, "To do").get_by_text("First")).to_be_visible()
    await expect(box).to_have_value("Second")
    await box.press("Enter")
    await expect(column(page, "To do").get_by_role("listitem")).to_have_count(2)


async def test_a_board_left_while_its_code_loads_is_not_opened(hub: Hub, browser: Browser) -> None:
    page = await browser.new_page()
    email = await sign_up(page, hub, "Wanderer")
    status, _ = await hub.request(
        "POST", "/api/boards", token=await access_token(hub, email), json={"name": "Slow to load"}
    )
    assert status == 201
    gate = Gate()
    await gate.install(page)
    loaded = asyncio.Event()

    async def slowly(route: Route) -> None:
        await loaded.wait()
        await route.continue_()

    await page.route("**/static/board.js", slowly)
    await page.reload()
    await page.get_by_role("link", name="Slow to load").click()
    await page.evaluate("location.hash = '#/boards'")
    await expect(page.get_by_role("heading", name="My boards")).to_be_visible()

    # the board's code arrives after the person went back to the list: it stays
    loaded.set()
    await page.evaluate("() => import('/static/board.js')")
    await page.wait_for_timeout(500)  # what opening the board would send, it has sent by now
    await expect(page.get_by_role("heading", name="My boards")).to_be_visible()
    await expect(page.get_by_role("heading", name="Slow to load")).to_have_count(0)
    assert not any('"board:join"' in frame for frame in gate.sent)


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


async def test_the_login_and_board_pages_pass_an_accessibility_check(
    hub: Hub, browser: Browser
) -> None:
    page = await browser.new_page()
    await page.goto(hub.url)
    await expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    assert await serious_violations(page) == []

    await sign_up(page, hub, "Alan")
    await create_board(page, "Checked")
    await page.get_by_label("New task title").fill("A card to check")
    await page.get_by_label("New task title").press("Enter")
    await expect(page.get_by_text("A card to check")).to_be_visible()
    assert await serious_violations(page) == []
    await edit(page, "A card to check")
    assert await serious_violations(page) == []


async def test_a_dropped_connection_catches_up_from_its_last_seq(
    hub: Hub, browser: Browser
) -> None:
    gate = Gate()
    away, here = await shared_board(
        hub, browser, "editor", "Before the drop", prepare_owner=gate.install
    )
    await expect(here.get_by_text("Before the drop")).to_be_visible()

    await gate.cut()
    await expect(banner(away)).to_contain_text("Connection lost")
    for title in ("Made while away", "And another"):
        await here.get_by_label("New task title").fill(title)
        await here.get_by_label("New task title").press("Enter")
        await expect(here.get_by_text(title)).to_be_visible()
    await expect(away.get_by_text("Made while away")).to_have_count(0)

    gate.sent.clear()
    gate.online = True
    todo = away.get_by_role("list", name="To do tasks")
    await expect(todo.get_by_text("And another")).to_be_visible(timeout=20_000)
    await expect(todo.get_by_text("Made while away")).to_be_visible()
    await expect(todo.locator("li.task")).to_have_count(3)
    await expect(banner(away)).to_be_hidden()
    joins = [m for m in gate.sent if '"board:join"' in m]
    assert joins and '"since_seq":1' in joins[0], joins


async def test_a_connection_attempt_nobody_answers_is_given_up_and_tried_again_soon(
    hub: Hub, browser: Browser
) -> None:
    """A reconnect attempt that the network took and then never answered (no
    handshake, no close) is abandoned after 8 s and tried again, instead of the
    page waiting out socket.io-client's 20 s: back on the board well within 18 s
    of that attempt, where the old wait needs more than 20."""
    gate = Gate()
    away, here = await shared_board(
        hub, browser, "editor", "Before the drop", prepare_owner=gate.install
    )
    gate.silent = True
    await gate.cut()
    await expect(banner(away)).to_contain_text("Connection lost")
    # the first attempt, about a second after the cut, goes into the silence; the
    # network is back at once, so the next attempt gets through
    await asyncio.wait_for(gate.went_silent.wait(), 10)
    gate.online = True
    await here.get_by_label("New task title").fill("Made meanwhile")
    await here.get_by_label("New task title").press("Enter")
    await expect(here.get_by_text("Made meanwhile")).to_be_visible()
    await expect(column(away, "To do").get_by_text("Made meanwhile")).to_be_visible(timeout=18_000)
    await expect(banner(away)).to_be_hidden()
    assert time.monotonic() - gate.went_silent_at < 18


async def test_an_event_lost_on_the_way_is_fetched_when_the_next_one_shows_the_gap(
    hub: Hub, browser: Browser
) -> None:
    """An event that never reached the page (its node lost the Redis channel for a
    moment, say): the next one's seq shows the gap, and the page fetches what it
    missed with `board:join` from its last seq, instead of skipping it for good."""
    gate = Gate()
    away, here = await shared_board(
        hub, browser, "editor", "Before the gap", prepare_owner=gate.install
    )
    await expect(away.get_by_text("Before the gap")).to_be_visible()
    lost = "Lost on the way"
    # the room's task:created of this title is dropped; the join reply is not a 42 event
    gate.hold(
        lambda message: isinstance(message, str) and message.startswith("42") and lost in message
    )
    for title in (lost, "Right after it"):
        await here.get_by_label("New task title").fill(title)
        await here.get_by_label("New task title").press("Enter")
        await expect(here.get_by_text(title)).to_be_visible()
    await gate.kept_back.wait()
    todo = away.get_by_role("list", name="To do tasks")
    await expect(todo.get_by_text("Right after it")).to_be_visible()
    await expect(todo.get_by_text(lost)).to_be_visible()
    await expect(todo.locator("li.task")).to_have_count(3)
    joins = [m for m in gate.sent if '"board:join"' in m and '"since_seq":1' in m]
    assert joins, gate.sent


async def test_a_page_whose_account_was_deactivated_signs_out(hub: Hub, browser: Browser) -> None:
    """The hub closes the socket of a deactivated account (`account_inactive`, within
    seconds); the page tries a refresh, is refused, and shows the sign-in form
    instead of "Reconnecting…" forever."""
    page = await (await browser.new_context()).new_page()
    email = await sign_up(page, hub, "Leaving")
    conn = await hub.db()
    try:
        await conn.execute("UPDATE users SET is_active = false WHERE email = $1", email)
    finally:
        await conn.close()
    await expect(page.get_by_role("button", name="New here? Sign up")).to_be_visible(timeout=20_000)


async def test_a_node_shutting_down_sends_the_page_to_reconnect(hub: Hub, browser: Browser) -> None:
    """A stopping node's `server_shutdown` farewell: the page comes back by itself
    (socket.io-client would not, after a server's disconnect) and events flow again."""
    away, here = await shared_board(hub, browser, "editor", "Before the restart")
    await expect(away.get_by_text("Before the restart")).to_be_visible()

    assert await hub.app[HUB_NAMESPACES].close_local(server_shutdown()) >= 2
    await here.get_by_label("New task title").fill("After the restart")
    await here.get_by_label("New task title").press("Enter")
    await expect(here.get_by_text("After the restart")).to_be_visible(timeout=20_000)
    todo = away.get_by_role("list", name="To do tasks")
    await expect(todo.get_by_text("After the restart")).to_be_visible(timeout=20_000)
    await expect(banner(away)).to_be_hidden()
    await expect(banner(here)).to_be_hidden()


async def drag(page: Page, card: Locator, target: Locator, y: float = 10) -> None:
    """Drag `card` onto `target`, `y` pixels below its top. Chromium gets a real
    mouse drag. Playwright over WebDriver BiDi sends Firefox no drag events at all
    (drag_to and mouse down/move/up both checked with 1.64 and ESR 153), so there
    the page gets the DragEvents a drag fires, carrying one DataTransfer."""
    if page.context.browser and page.context.browser.browser_type.name != "firefox":
        await card.drag_to(target, target_position={"x": 20, "y": y})
        return
    box = await target.bounding_box()
    assert box is not None
    at = {"clientX": box["x"] + 20, "clientY": box["y"] + y}
    data = await page.evaluate_handle("() => new DataTransfer()")
    await card.dispatch_event("dragstart", {"dataTransfer": data})
    await target.dispatch_event("dragover", {"dataTransfer": data, **at})
    await target.dispatch_event("drop", {"dataTransfer": data, **at})
    await card.dispatch_event("dragend", {"dataTransfer": data})


async def test_a_card_dragged_in_one_browser_moves_in_the_other(hub: Hub, browser: Browser) -> None:
    owner, member = await shared_board(hub, browser, "editor", "First", "Second", "Third")

    # across columns
    await drag(owner, owner.locator("li.task", has_text="Second"), column(owner, "In progress"))
    await expect(column(owner, "In progress").get_by_text("Second")).to_be_visible()
    await expect(column(member, "In progress").get_by_text("Second")).to_be_visible()
    await expect(column(member, "To do").get_by_text("Second")).to_have_count(0)

    # within a column: Third above First, and the order is kept
    first = owner.locator("li.task", has_text="First")
    await drag(owner, owner.locator("li.task", has_text="Third"), first, y=2)
    order = ["Third", "First"]
    await expect(column(owner, "To do").locator("li.task .title")).to_have_text(order)
    await expect(column(member, "To do").locator("li.task .title")).to_have_text(order)
    await member.reload()
    await expect(column(member, "To do").locator("li.task .title")).to_have_text(order)
    await expect(column(member, "In progress").locator("li.task .title")).to_have_text(["Second"])


async def test_cards_are_reordered_from_the_keyboard_and_the_order_is_kept(
    hub: Hub, browser: Browser
) -> None:
    owner, member = await shared_board(hub, browser, "editor", "First", "Second", "Third")
    titles = column(owner, "To do").locator("li.task .title")
    await expect(titles).to_have_text(["First", "Second", "Third"])

    await owner.bring_to_front()  # the focus is the front tab's
    third = owner.get_by_role("button", name='Edit "Third"')
    await expect(third).to_have_accessible_description(
        "Alt+Up or Alt+Down moves it within its column."
    )
    theirs = column(member, "To do").locator("li.task .title")
    await third.focus()
    await owner.keyboard.press("Alt+ArrowUp")
    await expect(titles).to_have_text(["First", "Third", "Second"])
    await expect(third).to_be_focused()  # the focus moves with the card
    await expect(theirs).to_have_text(["First", "Third", "Second"])
    first = owner.get_by_role("button", name='Edit "First"')
    await first.focus()
    await owner.keyboard.press("Alt+ArrowDown")
    order = ["Third", "First", "Second"]
    await expect(titles).to_have_text(order)
    await expect(first).to_be_focused()
    await third.focus()
    await owner.keyboard.press("Alt+ArrowUp")  # already at the top: stays
    await expect(titles).to_have_text(order)

    await expect(column(member, "To do").locator("li.task .title")).to_have_text(order)
    await member.reload()
    await expect(column(member, "To do").locator("li.task .title")).to_have_text(order)


async def test_quick_moves_of_one_card_all_land(hub: Hub, browser: Browser) -> None:
    # three Alt+Up presses before the hub answered the first: each later move waits
    # for the answer before it, and the card ends where the person put it
    gate = Gate()
    owner, member = await shared_board(
        hub, browser, "editor", "Alpha", "Bravo", "Charlie", "Delta", prepare_owner=gate.install
    )
    titles = column(owner, "To do").locator("li.task .title")
    await expect(titles).to_have_text(["Alpha", "Bravo", "Charlie", "Delta"])
    await owner.bring_to_front()
    delta = owner.get_by_role("button", name='Edit "Delta"')
    await delta.focus()
    gate.hold()
    for order in (
        ["Alpha", "Bravo", "Delta", "Charlie"],
        ["Alpha", "Delta", "Bravo", "Charlie"],
        ["Delta", "Alpha", "Bravo", "Charlie"],
    ):
        await owner.keyboard.press("Alt+ArrowUp")
        await expect(titles).to_have_text(order)
    await gate.kept_back.wait()  # the first move's answer
    gate.release()
    theirs = column(member, "To do").locator("li.task .title")
    await expect(theirs).to_have_text(order)
    await expect(titles).to_have_text(order)
    await expect(banner(owner)).to_be_hidden()
    await member.reload()
    await expect(theirs).to_have_text(order)
    # the card keeps answering moves afterwards
    await delta.focus()
    await owner.keyboard.press("Alt+ArrowDown")
    await expect(theirs).to_have_text(["Alpha", "Delta", "Bravo", "Charlie"])


async def test_a_refused_move_rolls_back_with_the_reason(hub: Hub, browser: Browser) -> None:
    owner, viewer = await shared_board(hub, browser, "viewer", "Look, do not touch")

    await viewer.get_by_label('Move "Look, do not touch" to').select_option("done")
    await expect(banner(viewer)).to_contain_text("was not moved")
    await expect(column(viewer, "To do").get_by_text("Look, do not touch")).to_be_visible()
    await expect(column(viewer, "Done").get_by_text("Look, do not touch")).to_have_count(0)
    await owner.reload()
    await expect(column(owner, "To do").get_by_text("Look, do not touch")).to_be_visible()


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


async def test_an_owner_invites_a_member_by_email_with_a_role(hub: Hub, browser: Browser) -> None:
    owner = await (await browser.new_context()).new_page()
    guest = await (await browser.new_context()).new_page()
    await sign_up(owner, hub, "Owner")
    guest_email = await sign_up(guest, hub, "Vera")
    await create_board(owner, "Invites")
    await owner.get_by_text("Members (1)").click()
    members = owner.get_by_role("list", name="Board members")
    await expect(members).to_contain_text("Owner (you) · owner")
    assert await serious_violations(owner) == []

    # an unknown address is answered, and nobody is added
    await owner.get_by_label("Invite by email").fill("nobody.here@example.com")
    await owner.get_by_role("button", name="Invite").click()
    await expect(owner.get_by_role("alert").filter(has_text="no active account")).to_be_visible()
    await expect(members.get_by_role("listitem")).to_have_count(1)

    # what a person does to retype the field (Playwright's fill does not replace
    # an email input's text in Firefox over BiDi)
    await owner.get_by_label("Invite by email").press("ControlOrMeta+a")
    await owner.get_by_label("Invite by email").press("Delete")
    await owner.get_by_label("Invite by email").fill(guest_email)
    await owner.get_by_label("Role").select_option("viewer")
    await owner.get_by_role("button", name="Invite").click()
    await expect(members).to_contain_text("Vera · viewer")
    await expect(owner.get_by_text("Members (2)")).to_be_visible()

    # the invited person finds the board in their list, with their role, and
    # being no owner, sees the members but no invitation form
    await guest.reload()
    await expect(guest.get_by_text("· viewer")).to_be_visible()
    await guest.get_by_role("link", name="Invites").click()
    await guest.get_by_text("Members (2)").click()
    await expect(guest.get_by_role("list", name="Board members")).to_contain_text("Vera (you)")
    await expect(guest.get_by_label("Invite by email")).to_be_hidden()
    await expect(guest.get_by_role("button", name="Remove Owner from the board")).to_have_count(0)

    await owner.get_by_role("button", name="Remove Vera from the board").click()
    await expect(members.get_by_role("listitem")).to_have_count(1)
    await expect(owner.get_by_text("Members (1)")).to_be_visible()


async def test_the_socket_reconnects_with_each_refreshed_token(
    start_hub: Callable[..., Awaitable[Hub]], browser: Browser
) -> None:
    """Access tokens live 10 s here; the page refreshes each one 5 s after it is
    issued and reconnects its socket with the new one, so the board stays live
    past the first token's expiry without a reload."""
    hub = await start_hub(ACCESS_TOKEN_TTL="10")
    tokens: list[str] = []

    async def watch(ws: WebSocketRoute) -> None:
        server = ws.connect_to_server()

        def forward(message: str | bytes) -> None:
            if isinstance(message, str) and message.startswith("40"):
                tokens.append(json.loads(message[2:])["token"])
            server.send(message)

        ws.on_message(forward)

    async def watched(page: Page) -> None:
        await page.route_web_socket("**/socket.io/**", watch)

    owner, member = await shared_board(hub, browser, "editor", prepare_owner=watched)
    deadline = time.monotonic() + 30
    while len(set(tokens)) < 3:
        assert time.monotonic() < deadline, f"the socket connected with {len(set(tokens))} tokens"
        await asyncio.sleep(0.2)
    await member.get_by_label("New task title").fill("After the first token expired")
    await member.get_by_label("New task title").press("Enter")
    await expect(
        column(owner, "To do").get_by_text("After the first token expired")
    ).to_be_visible()
    await expect(owner.locator("#banner")).to_be_hidden()


async def fits(page: Page, locator: Locator | None = None) -> None:
    """Nothing sticks out sideways: no horizontal scrolling of the page, and the
    element (when given) lies within the viewport's width."""
    overflow = await page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"the page scrolls sideways by {overflow}px"
    if locator is not None:
        box = await locator.bounding_box()
        assert box is not None
        assert box["x"] >= 0 and box["x"] + box["width"] <= 360, box


async def test_the_board_is_usable_on_a_360_pixel_wide_phone(
    hub: Hub, browser: Browser, artifacts: Path
) -> None:
    page = await (await browser.new_context(viewport={"width": 360, "height": 740})).new_page()
    await sign_up(page, hub, "Pocket")
    await fits(page)
    await create_board(page, "On the go")
    await page.get_by_label("New task title").fill("Buy milk on the way")
    await page.get_by_label("New task title").press("Enter")
    card = column(page, "To do").get_by_role("listitem")
    await expect(card).to_contain_text("Buy milk on the way")
    await fits(page, card)
    # the columns stack: Done is below To do, not beside it
    todo = await column(page, "To do").bounding_box()
    done = await column(page, "Done").bounding_box()
    assert todo is not None and done is not None and done["y"] > todo["y"]

    await page.get_by_label('Move "Buy milk on the way" to').select_option("in_progress")
    await expect(column(page, "In progress")).to_contain_text("Buy milk on the way")

    panel = await edit(page, "Buy milk on the way")
    await fits(page, panel)
    await panel.get_by_label("Title").fill("Buy oat milk on the way")
    await panel.get_by_role("button", name="Save").click()
    await expect(column(page, "In progress")).to_contain_text("Buy oat milk on the way")
    await page.screenshot(path=str(artifacts / "board-360px.png"), full_page=True)

    await page.get_by_text("Members (1)").click()
    await fits(page, page.get_by_label("Invite by email"))
