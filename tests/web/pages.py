"""What the browser tests do on the page again and again: sign up, share a board
between two people, find a column, open a card, run axe-core."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from playwright.async_api import Browser, Locator, Page, WebSocketRoute, expect

from tests.support import Hub, Peer

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


async def create_board(page: Page, name: str) -> None:
    """From My boards: make a board called `name`; the page is on it when this returns."""
    await page.get_by_label("New board").fill(name)
    await page.get_by_role("button", name="Create board").click()
    await expect(page.get_by_role("heading", name=name)).to_be_visible()


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


async def access_token(hub: Hub, email: str) -> str:
    """A fresh access token of someone who signed up on a page (over the REST API)."""
    status, login = await hub.request(
        "POST", "/api/auth/login", json={"email": email, "password": PASSWORD}
    )
    assert status == 200, login
    return str(login["access_token"])


@asynccontextmanager
async def socket_client(hub: Hub, email: str) -> AsyncIterator[Peer]:
    """The same person on another client: a python-socketio connection of theirs."""
    peer = Peer(hub.url, await access_token(hub, email))
    await peer.connect()
    try:
        yield peer
    finally:
        await peer.close()


async def add_member(
    hub: Hub, owner_email: str, board_id: str, member_email: str, role: str = "editor"
) -> None:
    """The board's owner adds the member, over the REST API."""
    status, body = await hub.request(
        "POST",
        f"/api/boards/{board_id}/members",
        token=await access_token(hub, owner_email),
        json={"email": member_email, "role": role},
    )
    assert status in (200, 201), body


class Gate:
    """The network between one page and the hub: forwards its websockets while
    online (keeping what the page sent), and refuses new ones while offline (or,
    `silent`, takes them and never answers); what the hub sends that `hold` picks
    waits until `release`."""

    def __init__(self) -> None:
        self.online = True
        # offline, take new websockets and never answer them (a connection dropped in
        # silence) instead of refusing them
        self.silent = False
        self.silenced: list[WebSocketRoute] = []
        self.went_silent = asyncio.Event()  # an attempt was taken into the silence
        self.went_silent_at = 0.0  # when (time.monotonic()) the last one was
        self.holding: Callable[[str | bytes], bool] | None = None
        self.live: list[WebSocketRoute] = []
        self.sent: list[str] = []
        self.held: list[tuple[WebSocketRoute, str | bytes]] = []
        self.kept_back = asyncio.Event()

    async def install(self, page: Page) -> None:
        await page.route_web_socket("**/socket.io/**", self._route)

    async def _route(self, ws: WebSocketRoute) -> None:
        if not self.online:
            if self.silent:
                self.silenced.append(ws)  # opened by Playwright, answered by nobody
                self.went_silent_at = time.monotonic()
                self.went_silent.set()
            else:
                await ws.close()
            return
        server = ws.connect_to_server()

        def forward(message: str | bytes) -> None:
            self.sent.append(str(message))
            server.send(message)

        def receive(message: str | bytes) -> None:
            if self.holding is not None and self.holding(message):
                self.held.append((ws, message))
                self.kept_back.set()
            else:
                ws.send(message)

        ws.on_message(forward)
        server.on_message(receive)
        self.live.append(ws)

    def hold(self, which: Callable[[str | bytes], bool] = lambda message: True) -> None:
        """Keep back what the hub sends that `which` picks (everything by default)."""
        self.holding = which

    def release(self) -> None:
        """Deliver what was kept back, in order, and stop holding."""
        self.holding = None
        self.kept_back.clear()
        for ws, message in self.held:
            ws.send(message)
        self.held.clear()

    async def cut(self) -> None:
        """Go offline, closing the connections that are open."""
        self.online = False
        for ws in self.live:
            await ws.close()


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
    await create_board(owner, "Shared")
    board_id = owner.url.rsplit("/", 1)[1]
    await add_member(hub, owner_email, board_id, member_email, role)
    for title in titles:
        await owner.get_by_label("New task title").fill(title)
        await owner.get_by_label("New task title").press("Enter")
        await expect(owner.get_by_text(title)).to_be_visible()
    await member.goto(f"{hub.url}/#/boards/{board_id}")
    await expect(member.get_by_role("heading", name="Shared")).to_be_visible()
    return owner, member


def banner(page: Page) -> Locator:
    """The page's status line: the connection, or what became of my last action."""
    return page.locator("#banner")


def column(page: Page, name: str) -> Locator:
    return page.get_by_role("list", name=f"{name} tasks")


async def edit(page: Page, title: str) -> Locator:
    """Open a card's edit panel; the panel."""
    await page.get_by_role("button", name=f'Edit "{title}"').click()
    panel = page.get_by_role("dialog")
    await expect(panel.get_by_role("heading", name="Edit task")).to_be_visible()
    return panel
