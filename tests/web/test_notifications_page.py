"""The bell and the task panel's due date and reminders, in a real browser against
live hubs whose workers make the notifications (the notifier for assignments, the
scheduler for reminders)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.async_api import Browser, Locator, Page, expect

from tests.conftest import StartHub
from tests.support import Hub, Peer
from tests.web.pages import (
    PASSWORD,
    column,
    create_board,
    edit,
    serious_violations,
    shared_board,
    sign_up,
)

# one xdist worker runs every browser test, one after the other (see the Makefile)
pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.xdist_group("browsers")]

NOTIFIER = {"EMBEDDED_WORKERS": "outbox,notifier", "OUTBOX_POLL_INTERVAL": "0.2"}
SCHEDULER = {"EMBEDDED_WORKERS": "scheduler", "SCHEDULER_INTERVAL": "0.1"}
# the notifier's consumer group forms on the first record: that one may take a while
FIRST_NOTIFICATION_MS = 30_000


def bell(page: Page) -> Locator:
    return page.get_by_role("button", name="Notifications,")


def notifications(page: Page) -> Locator:
    return page.get_by_role("list", name="My notifications").get_by_role("listitem")


def reminders(panel: Locator) -> Locator:
    return panel.get_by_role("list", name="My reminders").get_by_role("listitem")


async def local_time(page: Page, seconds: float) -> str:
    """A `datetime-local` value `seconds` from now, in the browser's time zone."""
    value: str = await page.evaluate(
        """(seconds) => {
            const d = new Date(Date.now() + seconds * 1000);
            const p = (n) => String(n).padStart(2, "0");
            const ss = d.getSeconds() ? `:${p(d.getSeconds())}` : "";  // as the input keeps it
            return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}` +
                `T${p(d.getHours())}:${p(d.getMinutes())}${ss}`;
        }""",
        seconds,
    )
    return value


async def peer_of(hub: Hub, page: Page) -> Peer:
    """A socket of the page's user, for what the page offers no way to do."""
    tokens = await page.evaluate(
        """fetch("/api/auth/refresh", {method: "POST", body: "{}",
            headers: {"Content-Type": "application/json"}}).then((r) => r.json())"""
    )
    peer = Peer(hub.url, tokens["access_token"])
    await peer.connect()
    return peer


async def set_reminder(panel: Locator, at: str, *, accepted: bool = True) -> None:
    """Set a reminder; when `accepted`, wait until the hub took it (the field is emptied)."""
    field = panel.get_by_label("Remind me at")
    await field.fill(at)
    await panel.get_by_role("button", name="Set reminder").click()
    if accepted:
        await expect(field).to_have_value("")


async def one_person_board(page: Page, hub: Hub, title: str) -> None:
    await sign_up(page, hub, "Remi")
    await create_board(page, "Errands")
    await page.get_by_label("New task title").fill(title)
    await page.get_by_label("New task title").press("Enter")
    await expect(column(page, "To do").get_by_text(title)).to_be_visible()


async def assign(page: Page, title: str, name: str) -> None:
    panel = await edit(page, title)
    await panel.get_by_label("Assignee").select_option(label=name)
    await panel.get_by_role("button", name="Save").click()
    await expect(panel).to_be_hidden()


async def test_an_assignment_rings_the_assignees_bell_and_reading_clears_it(
    start_hub: StartHub, browser: Browser
) -> None:
    hub = await start_hub(**NOTIFIER)
    owner, member = await shared_board(hub, browser, "editor", "Fix login", "Write docs")
    other_tab = await member.context.new_page()
    await other_tab.goto(member.url)
    await member.bring_to_front()  # the keyboard goes to the focused tab
    badge = member.locator(".bell-badge")
    await expect(bell(member)).to_have_accessible_name("Notifications, none unread")
    await expect(badge).to_be_hidden()

    await assign(owner, "Fix login", "Member")
    await expect(bell(member)).to_have_accessible_name(
        "Notifications, 1 unread", timeout=FIRST_NOTIFICATION_MS
    )
    await expect(badge).to_have_text("1")
    # said to a screen reader, politely: the focus stays where it was
    announced = member.locator("#bell").get_by_role("status")
    await expect(announced).to_have_text("New notification: Assigned to you: Fix login")
    await assign(owner, "Write docs", "Member")
    await expect(bell(member)).to_have_accessible_name("Notifications, 2 unread")
    await expect(badge).to_have_text("2")
    await expect(announced).to_have_text("New notification: Assigned to you: Write docs")
    await expect(bell(other_tab)).to_have_accessible_name("Notifications, 2 unread")
    # the one who assigned is told nothing
    await expect(bell(owner)).to_have_accessible_name("Notifications, none unread")

    await bell(member).click()
    await expect(bell(member)).to_have_attribute("aria-expanded", "true")
    await expect(notifications(member)).to_have_count(2)
    fix = notifications(member).filter(has_text="Assigned to you: Fix login")
    await expect(fix).to_contain_text("Owner assigned this task to you.")
    await expect(fix).to_contain_text("Unread")
    await expect(notifications(member).first).to_contain_text("Write docs")  # newest first

    # Escape closes the list and gives the focus back to the bell
    await member.keyboard.press("Escape")
    await expect(member.get_by_role("list", name="My notifications")).to_be_hidden()
    await expect(bell(member)).to_be_focused()

    # opening one marks it read, here and on the other tab
    await member.keyboard.press("Enter")
    await fix.get_by_role("link").click()
    await expect(bell(member)).to_have_accessible_name("Notifications, 1 unread")
    await expect(badge).to_have_text("1")
    await expect(bell(other_tab)).to_have_accessible_name("Notifications, 1 unread")
    await bell(member).click()
    await expect(fix).to_contain_text("Read")
    await expect(fix).not_to_contain_text("Unread")

    await member.reload()
    await expect(bell(member)).to_have_accessible_name("Notifications, 1 unread")

    await bell(member).click()
    await member.get_by_role("button", name="Mark all read").click()
    await expect(bell(member)).to_have_accessible_name("Notifications, none unread")
    await expect(badge).to_be_hidden()
    await expect(notifications(member).filter(has_text="Unread")).to_have_count(0)
    await expect(bell(other_tab)).to_have_accessible_name("Notifications, none unread")
    await member.reload()
    await expect(bell(member)).to_have_accessible_name("Notifications, none unread")
    await bell(member).click()
    await expect(notifications(member)).to_have_count(2)

    # after logging out, the next person on this page sees none of them
    await member.keyboard.press("Escape")
    await member.get_by_role("button", name="Log out").click()
    await member.get_by_role("button", name="New here? Sign up").click()
    await member.get_by_label("Email").fill(f"next.{uuid.uuid4().hex[:8]}@example.com")
    await member.get_by_label("Name").fill("Next")
    await member.get_by_label("Password").fill(PASSWORD)
    await member.get_by_role("button", name="Create account").click()
    await expect(member.get_by_role("heading", name="My boards")).to_be_visible()
    await expect(bell(member)).to_have_accessible_name("Notifications, none unread")
    await bell(member).click()
    await expect(notifications(member)).to_have_text(["No notifications yet."])


async def test_a_due_date_set_in_the_panel_shows_on_the_card_in_both_browsers(
    hub: Hub, browser: Browser
) -> None:
    owner, member = await shared_board(hub, browser, "editor", "Ship it")
    panel = await edit(owner, "Ship it")
    await panel.get_by_label("Due date").fill("2030-05-17")
    await panel.get_by_role("button", name="Save").click()
    await expect(panel).to_be_hidden()
    day = await owner.evaluate("new Date(2030, 4, 17).toLocaleDateString()")
    for page in (owner, member):
        card = column(page, "To do").locator("li.task", has_text="Ship it")
        await expect(card.locator("time")).to_have_text(day)

    # the panel shows it again, and clearing it takes it off the cards
    panel = await edit(member, "Ship it")
    await expect(panel.get_by_label("Due date")).to_have_value("2030-05-17")
    await panel.get_by_role("button", name="No due date").click()
    await panel.get_by_role("button", name="Save").click()
    await expect(panel).to_be_hidden()
    for page in (owner, member):
        card = column(page, "To do").locator("li.task", has_text="Ship it")
        await expect(card.locator("time")).to_have_count(0)

    # a due date before the task's start date is refused with the hub's reason
    peer = await peer_of(hub, owner)
    try:
        board_id = owner.url.rsplit("/", 1)[1]
        task = (await peer.call("board:join", {"board_id": board_id}))["data"]["tasks"][0]
        ack = await peer.call(
            "task:update",
            {
                "task_id": task["id"],
                "base_version": task["version"],
                "changes": {"start_date": "2031-01-01T09:00:00+00:00"},
            },
        )
        assert ack["ok"], ack
    finally:
        await peer.close()
    panel = await edit(owner, "Ship it")
    await panel.get_by_label("Due date").fill("2030-05-17")
    await panel.get_by_role("button", name="Save").click()
    await expect(
        panel.get_by_role("alert").filter(has_text="due_date must not be before start_date")
    ).to_be_visible()
    await expect(panel).to_be_visible()
    await expect(column(member, "To do").locator("li.task time")).to_have_count(0)


async def test_a_conflict_on_the_due_date_names_it_and_shows_both_days(
    hub: Hub, browser: Browser
) -> None:
    owner, member = await shared_board(hub, browser, "editor", "Plan the trip")
    mine = await edit(owner, "Plan the trip")
    await mine.get_by_label("Due date").fill("2030-06-01")
    theirs = await edit(member, "Plan the trip")
    await theirs.get_by_label("Due date").fill("2030-07-15")
    await theirs.get_by_role("button", name="Save").click()
    await expect(theirs).to_be_hidden()
    await expect(column(owner, "To do").locator("li.task time")).to_have_count(1)
    await mine.get_by_role("button", name="Save").click()
    due = mine.get_by_role("group", name="Due date")
    for day in ((2030, 5, 1), (2030, 6, 15)):
        await expect(due).to_contain_text(
            await owner.evaluate("([y, m, d]) => new Date(y, m, d).toLocaleDateString()", day)
        )
    await mine.get_by_role("button", name="Save my choices").click()
    await expect(mine).to_be_hidden()
    june = await owner.evaluate("new Date(2030, 5, 1).toLocaleDateString()")
    for page in (owner, member):
        await expect(column(page, "To do").locator("li.task time")).to_have_text(june)


async def test_a_reminder_is_listed_then_fires_to_the_bell_and_another_is_dismissed(
    start_hub: StartHub, browser: Browser
) -> None:
    hub = await start_hub(**SCHEDULER)
    page = await browser.new_page()
    await one_person_board(page, hub, "Call the vet")
    panel = await edit(page, "Call the vet")
    await expect(reminders(panel)).to_have_text(["No reminders set."])

    # the hub's refusal is shown, and nothing is set
    await set_reminder(panel, await local_time(page, -3600), accepted=False)
    await expect(panel.get_by_role("alert").filter(has_text="in the future")).to_be_visible()
    await expect(reminders(panel)).to_have_text(["No reminders set."])

    await set_reminder(panel, await local_time(page, 3600))
    await expect(reminders(panel)).to_have_count(1)
    await set_reminder(panel, await local_time(page, 4))
    await expect(reminders(panel)).to_have_count(2)
    soon, later = reminders(panel).nth(0), reminders(panel).nth(1)  # soonest first
    await expect(soon).to_contain_text("scheduled")
    await expect(soon).to_contain_text("In the app")
    await expect(later).to_contain_text("scheduled")

    await later.get_by_role("button", name="Dismiss the reminder at").click()
    await expect(later).to_contain_text("dismissed")
    await expect(later.get_by_role("button")).to_have_count(0)

    # it fires: the bell rings, and the panel shows it sent
    await expect(bell(page)).to_have_accessible_name("Notifications, 1 unread", timeout=15_000)
    await expect(soon).to_contain_text("sent")
    await expect(later).to_contain_text("dismissed")
    await panel.get_by_role("button", name="Cancel").click()  # the panel covers the bell
    await bell(page).click()
    await expect(notifications(page)).to_have_count(1)
    await expect(notifications(page).first).to_contain_text("Reminder: Call the vet")
    await expect(notifications(page).first).to_contain_text("Unread")


async def test_the_bell_and_reminders_pass_axe_and_fit_a_360_pixel_phone(
    start_hub: StartHub, browser: Browser, artifacts: Path
) -> None:
    hub = await start_hub(**SCHEDULER)
    page = await (await browser.new_context(viewport={"width": 360, "height": 740})).new_page()
    await one_person_board(page, hub, "Renew the passport")
    panel = await edit(page, "Renew the passport")
    await set_reminder(panel, await local_time(page, 7200))
    await expect(reminders(panel)).to_have_count(1)
    await set_reminder(panel, await local_time(page, 3))
    await expect(reminders(panel)).to_have_count(2)
    await panel.get_by_label("Remind me by").select_option("email")
    await set_reminder(panel, await local_time(page, 3600))
    await expect(reminders(panel)).to_have_count(3)
    await reminders(panel).nth(2).get_by_role("button", name="Dismiss").click()
    await expect(reminders(panel).nth(2)).to_contain_text("dismissed")
    await expect(reminders(panel).nth(0)).to_contain_text("sent", timeout=15_000)
    await expect(reminders(panel).nth(1)).to_contain_text("Email")
    await panel.get_by_role("heading", name="Reminders").scroll_into_view_if_needed()
    assert await serious_violations(page) == []
    await page.screenshot(path=str(artifacts / "reminders-360px.png"))

    await panel.get_by_role("button", name="Cancel").click()
    await expect(bell(page)).to_have_accessible_name("Notifications, 1 unread")
    await bell(page).click()
    popover = page.get_by_role("region", name="Notifications")
    await expect(notifications(page)).to_have_count(1)
    box = await popover.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 360, box
    assert await serious_violations(page) == []
    await page.screenshot(path=str(artifacts / "bell-360px.png"))

    # keyboard: into the list with Tab, Enter marks it read
    await page.keyboard.press("Tab")  # Mark all read
    await page.keyboard.press("Tab")  # the notification
    await page.keyboard.press("Enter")
    await expect(bell(page)).to_have_accessible_name("Notifications, none unread")


async def test_the_bell_pages_its_list_and_a_notification_opens_its_board(
    start_hub: StartHub, browser: Browser
) -> None:
    hub = await start_hub(**SCHEDULER)
    page = await browser.new_page()
    await one_person_board(page, hub, "Water the plants")
    board_url = page.url
    peer = await peer_of(hub, page)
    try:
        board_id = board_url.rsplit("/", 1)[1]
        task = (await peer.call("board:join", {"board_id": board_id}))["data"]["tasks"][0]
        at = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
        for _ in range(21):
            ack = await peer.call("reminders:create", {"task_id": task["id"], "remind_at": at})
            assert ack["ok"], ack
    finally:
        await peer.close()
    await page.get_by_role("link", name="← My boards").click()
    await expect(bell(page)).to_have_accessible_name("Notifications, 21 unread", timeout=15_000)
    await expect(page.locator(".bell-badge")).to_have_text("21")

    # pushed live, all 21 are listed; loaded afresh, the list comes in pages
    await page.reload()
    await expect(bell(page)).to_have_accessible_name("Notifications, 21 unread")
    await bell(page).click()
    await expect(notifications(page)).to_have_count(20)
    await page.get_by_role("button", name="Show more").click()
    await expect(notifications(page)).to_have_count(21)
    await expect(page.get_by_role("button", name="Show more")).to_be_hidden()

    await notifications(page).first.get_by_role("link", name="Reminder: Water the plants").click()
    await expect(page).to_have_url(board_url)
    await expect(column(page, "To do").get_by_text("Water the plants")).to_be_visible()
    await expect(bell(page)).to_have_accessible_name("Notifications, 20 unread")
