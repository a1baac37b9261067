"""The board's chat in real browsers against a live hub: the board's channel and
DMs, edits and deletes, unread badges, typing, history on scroll, the hub's
refusals, and accessibility (axe-core, the keyboard, a 360 px wide phone)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from playwright.async_api import Browser, Locator, Page, expect

from tests.support import Hub
from tests.web.pages import (
    Gate,
    add_member,
    banner,
    create_board,
    serious_violations,
    shared_board,
    sign_up,
    socket_client,
)

# one xdist worker runs every browser test, one after the other (see the Makefile)
pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.xdist_group("browsers")]


def toggle(page: Page) -> Locator:
    """The chat's button in the board's head; its name says the unread count."""
    return page.get_by_role("button", name=re.compile(r"^Chat"))


def chat(page: Page) -> Locator:
    return page.get_by_role("complementary", name="Chat")


def messages(page: Page) -> Locator:
    return chat(page).get_by_role("log").get_by_role("listitem")


def message(page: Page, text: str) -> Locator:
    return messages(page).filter(has_text=text)


def channel(page: Page, name: str) -> Locator:
    """A channel in the chat's list, by its name (with ", n unread" when it has some)."""
    return (
        chat(page)
        .get_by_role("navigation", name="Channels")
        .get_by_role("button", name=re.compile(rf"^{re.escape(name)}(, \d+ unread)?$"))
    )


async def open_chat(page: Page) -> None:
    await toggle(page).click()
    await expect(chat(page)).to_be_visible()
    await expect(toggle(page)).to_have_attribute("aria-expanded", "true")


async def start_dm(page: Page, name: str) -> None:
    """Open (or start) the direct messages with `name`."""
    await chat(page).get_by_text("New direct message").click()
    people = chat(page).get_by_role("list", name="People to message")
    await people.get_by_role("button", name=name).click()
    await expect(chat(page).get_by_role("heading", name=name)).to_be_visible()


async def send(page: Page, to: str, text: str) -> None:
    """Type into the message box of the open channel `to` and press Enter."""
    box = chat(page).get_by_role("textbox", name=f"Message {to}")
    await box.fill(text)
    await box.press("Enter")
    await expect(box).to_have_value("")


async def test_a_message_sent_in_one_browser_appears_in_the_other(
    hub: Hub, browser: Browser
) -> None:
    owner, member = await shared_board(hub, browser, "editor")
    await open_chat(owner)
    await open_chat(member)
    await expect(chat(owner).get_by_role("heading", name="# general")).to_be_visible()
    await expect(channel(owner, "general")).to_have_attribute("aria-current", "true")

    await send(owner, "general", "Hello from the owner")
    seen = message(member, "Hello from the owner")
    await expect(seen).to_be_visible()
    await expect(seen).to_contain_text("Owner")
    await expect(seen.locator("time")).to_be_visible()
    # the ack and the room's echo are one message, on both sides
    await expect(message(owner, "Hello from the owner")).to_have_count(1)
    await expect(seen).to_have_count(1)

    # Shift+Enter is a new line; Enter sends both lines as one message
    box = chat(member).get_by_role("textbox", name="Message general")
    await box.press_sequentially("first line")
    await box.press("Shift+Enter")
    await box.press_sequentially("second line")
    await box.press("Enter")
    both = message(owner, "first line")
    await expect(both).to_contain_text("first line\nsecond line")
    await expect(both).to_contain_text("Member")
    await expect(messages(owner)).to_have_count(2)


async def test_my_messages_can_be_edited_and_deleted_and_others_see_it(
    hub: Hub, browser: Browser
) -> None:
    owner, member = await shared_board(hub, browser, "editor")
    await open_chat(owner)
    await open_chat(member)
    await send(owner, "general", "Meeting at noon")
    theirs = message(member, "Meeting at noon")
    await expect(theirs).to_be_visible()
    # someone else's message offers no edit or delete
    await expect(theirs.get_by_role("button")).to_have_count(0)

    await owner.bring_to_front()  # the focus goes to the tab in front
    mine = message(owner, "Meeting at noon")
    await mine.get_by_role("button", name="Edit").click()
    # the text becomes a box (its words are no longer the item's text)
    edit_box = chat(owner).get_by_role("textbox", name="Edit message")
    await expect(edit_box).to_have_value("Meeting at noon")
    await expect(edit_box).to_be_focused()
    await edit_box.fill("Meeting at one")
    await edit_box.press("Enter")
    changed = message(member, "Meeting at one")
    await expect(changed).to_contain_text("(edited)")
    await expect(message(member, "Meeting at noon")).to_have_count(0)
    await expect(message(owner, "Meeting at one")).to_contain_text("(edited)")

    mine = message(owner, "Meeting at one")
    await mine.get_by_role("button", name="Delete").click()
    await mine.get_by_role("button", name="Yes, delete").click()
    await expect(message(member, "Message deleted")).to_be_visible()
    await expect(message(member, "Meeting at one")).to_have_count(0)
    await expect(messages(member)).to_have_count(1)
    gone = message(owner, "Message deleted")
    await expect(gone).to_be_visible()
    await expect(gone.get_by_role("button")).to_have_count(0)


async def test_a_late_answer_to_an_edit_leaves_the_focus_where_i_went(
    hub: Hub, browser: Browser
) -> None:
    page = await browser.new_page()
    gate = Gate()
    await gate.install(page)
    await sign_up(page, hub, "Quick")
    await create_board(page, "Notes")
    await open_chat(page)
    await send(page, "general", "Frist draft")
    await message(page, "Frist draft").get_by_role("button", name="Edit").click()
    edit_box = chat(page).get_by_role("textbox", name="Edit message")
    await edit_box.fill("First draft")

    # the hub's answer to the edit comes after I went on to write the next message
    gate.hold(lambda frame: str(frame).startswith("43"))  # acks
    await edit_box.press("Enter")
    await asyncio.wait_for(gate.kept_back.wait(), 5)
    box = chat(page).get_by_role("textbox", name="Message general")
    await box.click()
    gate.release()
    await expect(message(page, "First draft")).to_contain_text("(edited)")
    await expect(box).to_be_focused()
    await send(page, "general", "Second thought")
    await expect(message(page, "Second thought")).to_be_visible()


async def test_unread_badges_rise_while_unseen_and_reading_clears_them(
    hub: Hub, browser: Browser
) -> None:
    owner, member = await shared_board(hub, browser, "editor")
    other_tab = await member.context.new_page()
    await other_tab.goto(member.url)
    await expect(toggle(other_tab)).to_have_accessible_name("Chat")
    await member.bring_to_front()
    await expect(toggle(member)).to_have_accessible_name("Chat")
    await open_chat(owner)

    # my chat is closed: the other person's messages add up on the toggle, in both tabs
    await send(owner, "general", "Are you there?")
    await expect(toggle(member)).to_have_accessible_name("Chat, 1 unread")
    await send(owner, "general", "Hello?")
    await expect(toggle(member)).to_have_accessible_name("Chat, 2 unread")
    await expect(toggle(member)).to_contain_text("2")
    await expect(toggle(other_tab)).to_have_accessible_name("Chat, 2 unread")
    # my own messages are never unread to me
    await expect(toggle(owner)).to_have_accessible_name("Chat")

    # opening the chat shows them and reads them, here and in my other tab
    await open_chat(member)
    await expect(message(member, "Hello?")).to_be_visible()
    await expect(toggle(member)).to_have_accessible_name("Chat")
    await expect(channel(member, "general")).to_have_accessible_name("general")
    await expect(toggle(other_tab)).to_have_accessible_name("Chat")

    # with another conversation open, the board's channel counts again
    await start_dm(member, "Owner")
    await send(owner, "general", "Back to work")
    await expect(channel(member, "general")).to_have_accessible_name("general, 1 unread")
    await expect(toggle(member)).to_have_accessible_name("Chat, 1 unread")
    await channel(member, "general").click()
    await expect(message(member, "Back to work")).to_be_visible()
    await expect(channel(member, "general")).to_have_accessible_name("general")
    await expect(toggle(member)).to_have_accessible_name("Chat")
    await expect(toggle(other_tab)).to_have_accessible_name("Chat")


async def test_the_other_person_sees_who_is_typing_until_they_stop(
    hub: Hub, browser: Browser
) -> None:
    owner, member = await shared_board(hub, browser, "editor")
    await open_chat(owner)
    await open_chat(member)
    typing = chat(member).get_by_text("Owner is typing…")
    box = chat(owner).get_by_role("textbox", name="Message general")

    await owner.bring_to_front()  # the focus goes to the tab in front
    await box.press_sequentially("Let me th")
    await expect(typing).to_be_visible()
    # I am not told that I am typing
    await expect(chat(owner).get_by_text("is typing…")).to_have_count(0)
    # leaving the box says "stopped" at once (not after the typing's expiry)
    await box.blur()
    await expect(typing).to_be_hidden(timeout=2000)

    # typing again shows it again; sending ends it
    await box.press_sequentially("ink")
    await expect(typing).to_be_visible()
    await box.press("Enter")
    await expect(message(member, "Let me think")).to_be_visible()
    await expect(typing).to_be_hidden(timeout=2000)


async def test_a_direct_message_between_two_board_members(hub: Hub, browser: Browser) -> None:
    owner, member = await shared_board(hub, browser, "editor")
    await open_chat(owner)
    await open_chat(member)

    await start_dm(member, "Owner")
    await expect(chat(member).get_by_role("log")).to_contain_text("No messages yet.")
    await send(member, "Owner", "Just between us")
    await expect(message(member, "Just between us")).to_be_visible()
    await expect(channel(member, "Owner")).to_have_attribute("aria-current", "true")

    # the owner, in the board's channel, gets the new conversation with its count
    await expect(channel(owner, "Owner")).to_have_count(0)
    await expect(channel(owner, "Member")).to_have_accessible_name("Member, 1 unread")
    await expect(message(owner, "Just between us")).to_have_count(0)
    await channel(owner, "Member").click()
    await expect(message(owner, "Just between us")).to_contain_text("Member")
    await expect(channel(owner, "Member")).to_have_accessible_name("Member")
    await send(owner, "Member", "Sure thing")
    await expect(message(member, "Sure thing")).to_contain_text("Owner")

    # the board's channel has none of it
    await channel(member, "general").click()
    await expect(chat(member).get_by_role("heading", name="# general")).to_be_visible()
    await expect(chat(member).get_by_role("log")).to_contain_text("No messages yet.")
    await expect(messages(member)).to_have_count(0)
    # and the DM is there again with both messages
    await channel(member, "Owner").click()
    await expect(messages(member)).to_have_count(2)


async def test_a_channel_i_am_added_to_appears_and_counts_unread(
    hub: Hub, browser: Browser
) -> None:
    owner = await (await browser.new_context()).new_page()
    member = await (await browser.new_context()).new_page()
    gate = Gate()
    await gate.install(member)
    owner_email = await sign_up(owner, hub, "Owner")
    member_email = await sign_up(member, hub, "Member")
    await create_board(owner, "Design")
    board_id = owner.url.rsplit("/", 1)[1]
    await add_member(hub, owner_email, board_id, member_email)
    await member.goto(f"{hub.url}/#/boards/{board_id}")
    await open_chat(member)
    await expect(channel(member, "general")).to_have_attribute("aria-current", "true")

    # the owner, from another client, makes a channel of the board with the member in it
    async with socket_client(hub, owner_email) as peer:
        listed = await peer.call("board:members", {"board_id": board_id})
        assert listed["ok"], listed
        member_id = next(m["user_id"] for m in listed["data"]["members"] if m["name"] == "Member")
        # the page joins the new channel's room to hear it; the hub's answer, which
        # counts what is unread, reaches the page only after the first message
        gate.hold(lambda frame: str(frame).startswith("43") and '"messages"' in str(frame))
        created = await peer.call(
            "chat:create", {"name": "reviews", "board_id": board_id, "member_ids": [member_id]}
        )
        assert created["ok"], created
        await expect(channel(member, "reviews")).to_be_visible()
        await asyncio.wait_for(gate.kept_back.wait(), 5)
        channel_id = created["data"]["channel"]["id"]
        for body in ("Review at three", "Bring the drafts"):
            sent = await peer.call("chat:send", {"channel_id": channel_id, "body": body})
            assert sent["ok"], sent
            if gate.holding is not None:
                await expect(channel(member, "reviews")).to_have_accessible_name(
                    "reviews, 1 unread"
                )
                gate.release()

    # both count while the board's channel is open, and opening it reads them
    await expect(channel(member, "reviews")).to_have_accessible_name("reviews, 2 unread")
    await expect(toggle(member)).to_have_accessible_name("Chat, 2 unread")
    await expect(message(member, "Review at three")).to_have_count(0)
    await channel(member, "reviews").click()
    await expect(chat(member).get_by_role("heading", name="# reviews")).to_be_visible()
    await expect(message(member, "Review at three")).to_contain_text("Owner")
    await expect(channel(member, "reviews")).to_have_accessible_name("reviews")
    await expect(toggle(member)).to_have_accessible_name("Chat")


async def test_older_messages_load_when_scrolling_to_the_top(hub: Hub, browser: Browser) -> None:
    page = await (await browser.new_context(viewport={"width": 1280, "height": 800})).new_page()
    email = await sign_up(page, hub, "Hana")
    await create_board(page, "Chatty")
    board_id = page.url.rsplit("/", 1)[1]

    # 70 messages, sent by the same person from another client before the chat opens
    async with socket_client(hub, email) as peer:
        joined = await peer.call("board:join", {"board_id": board_id})
        assert joined["ok"], joined
        for n in range(1, 71):
            sent = await peer.call(
                "chat:send", {"channel_id": joined["data"]["channel_id"], "body": f"Old {n}"}
            )
            assert sent["ok"], sent

    await open_chat(page)
    log = chat(page).get_by_role("log")
    await expect(log.get_by_text("Old 70", exact=True)).to_be_in_viewport()
    await expect(messages(page)).to_have_count(50)  # the newest page: 21..70
    await expect(log.get_by_text("Old 20", exact=True)).to_have_count(0)

    await log.hover()
    await page.mouse.wheel(0, -100_000)
    await expect(messages(page)).to_have_count(70)
    await expect(messages(page).first.get_by_text("Old 1", exact=True)).to_be_attached()
    # the view stays where it was: what was at the top is still in sight, the
    # older messages are above it
    await expect(log.get_by_text("Old 21", exact=True)).to_be_in_viewport()
    await expect(log.get_by_text("Old 1", exact=True)).not_to_be_in_viewport()
    await log.hover()
    await page.mouse.wheel(0, -100_000)
    await expect(log.get_by_text("Old 1", exact=True)).to_be_in_viewport()
    await expect(log).to_contain_text("This is the start of the conversation.")
    await expect(chat(page).get_by_role("button", name="Load older messages")).to_be_hidden()
    await expect(messages(page)).to_have_count(70)


async def test_the_open_channel_catches_up_after_a_reconnect(hub: Hub, browser: Browser) -> None:
    gate = Gate()
    away, here = await shared_board(hub, browser, "editor", prepare_owner=gate.install)
    await open_chat(away)
    await open_chat(here)
    await send(here, "general", "Before the drop")
    await expect(message(away, "Before the drop")).to_be_visible()

    await gate.cut()
    await expect(banner(away)).to_contain_text("Connection lost")
    await send(here, "general", "Sent while you were away")
    await expect(message(here, "Sent while you were away")).to_be_visible()
    await expect(message(away, "Sent while you were away")).to_have_count(0)

    gate.online = True
    await expect(message(away, "Sent while you were away")).to_be_visible(timeout=20_000)
    await expect(messages(away)).to_have_count(2)
    # and it is live again
    await send(here, "general", "After the reconnect")
    await expect(message(away, "After the reconnect")).to_be_visible()
    await expect(messages(away)).to_have_count(3)


async def test_a_refusal_of_the_hub_is_shown_in_the_chat(hub: Hub, browser: Browser) -> None:
    owner, member = await shared_board(hub, browser, "editor")
    await open_chat(member)
    await send(member, "general", "Still here")
    await expect(message(member, "Still here")).to_be_visible()

    # the owner removes the member; their next message is refused, and kept in the box
    await owner.get_by_text("Members (2)").click()
    await owner.get_by_role("button", name="Remove Member from the board").click()
    await expect(owner.get_by_text("Members (1)")).to_be_visible()
    box = chat(member).get_by_role("textbox", name="Message general")
    await box.fill("Hello?")
    await box.press("Enter")
    await expect(chat(member).get_by_role("alert")).to_contain_text(
        "Not sent: you are not a member of this channel"
    )
    await expect(box).to_have_value("Hello?")
    await expect(message(member, "Hello?")).to_have_count(0)


async def test_the_chat_passes_axe_with_messages_typing_and_edits(
    hub: Hub, browser: Browser, artifacts: Path
) -> None:
    owner, member = await shared_board(hub, browser, "editor", "A card")
    await open_chat(owner)
    await open_chat(member)
    await send(member, "general", "A message from the member")
    await send(owner, "general", "And one from the owner")
    await message(owner, "And one from the owner").get_by_role("button", name="Edit").click()
    await chat(owner).get_by_role("textbox", name="Edit message").fill("Edited by the owner")
    await chat(owner).get_by_role("textbox", name="Edit message").press("Enter")
    await send(owner, "general", "To be deleted")
    await message(owner, "To be deleted").get_by_role("button", name="Delete").click()
    await message(owner, "To be deleted").get_by_role("button", name="Yes, delete").click()
    await expect(message(owner, "Message deleted")).to_be_visible()
    # the focus goes to the tab in front: typing in a tab behind may blur at once,
    # which says "stopped typing"
    await member.bring_to_front()
    await chat(member).get_by_role("textbox", name="Message general").press_sequentially("Hm")
    await expect(chat(owner).get_by_text("Member is typing…")).to_be_visible()
    await chat(owner).get_by_text("New direct message").click()
    await message(owner, "Edited by the owner").get_by_role("button", name="Delete").click()
    await expect(message(owner, "Edited by the owner")).to_contain_text("(edited)")
    await owner.screenshot(path=str(artifacts / "chat.png"))
    assert await serious_violations(owner) == []
    assert await serious_violations(member) == []


async def test_the_chat_works_by_keyboard_on_a_360_pixel_wide_phone(
    hub: Hub, browser: Browser, artifacts: Path
) -> None:
    page = await (await browser.new_context(viewport={"width": 360, "height": 740})).new_page()
    await sign_up(page, hub, "Pocket")
    await create_board(page, "On the go")

    await toggle(page).focus()
    await page.keyboard.press("Enter")
    box = chat(page).get_by_role("textbox", name="Message general")
    await expect(box).to_be_focused()
    await page.keyboard.type("Typed on a phone")
    await page.keyboard.press("Enter")
    sent = message(page, "Typed on a phone")
    await expect(sent).to_be_visible()
    # back from the message box: my message's Delete and Edit, then the list
    # itself (which the arrow keys scroll)
    await page.keyboard.press("Shift+Tab")
    await expect(sent.get_by_role("button", name="Delete")).to_be_focused()
    await page.keyboard.press("Shift+Tab")
    await expect(sent.get_by_role("button", name="Edit")).to_be_focused()
    await page.keyboard.press("Shift+Tab")
    await expect(chat(page).get_by_role("log")).to_be_focused()
    # Edit by keyboard: Enter opens the box, Escape gives up, the focus comes back
    await page.keyboard.press("Tab")
    await page.keyboard.press("Enter")
    await expect(chat(page).get_by_role("textbox", name="Edit message")).to_be_focused()
    await page.keyboard.press("Escape")
    await expect(sent.get_by_role("button", name="Edit")).to_be_focused()

    for locator in (chat(page), box, sent):
        box_of = await locator.bounding_box()
        assert box_of is not None
        assert box_of["x"] >= 0 and box_of["x"] + box_of["width"] <= 360, box_of
    overflow = await page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"the page scrolls sideways by {overflow}px"
    await page.screenshot(path=str(artifacts / "chat-360px.png"), full_page=True)
    assert await serious_violations(page) == []

    # the toggle collapses it again, and says so
    await toggle(page).focus()
    await page.keyboard.press("Enter")
    await expect(chat(page)).to_be_hidden()
    await expect(toggle(page)).to_have_attribute("aria-expanded", "false")
