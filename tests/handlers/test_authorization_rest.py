"""The authorization matrix over REST (issue 7, point 5): every call that touches a
board, a bot or the audit trail, by each kind of caller, with the status each gets
and nothing changed by a refusal.

REST hides a board from those not on it: `404` whether it exists or not, where the
socket events answer `forbidden` for an id that exists (test_authorization_matrix.py
explains why that is harmless there). A member without the role gets `403`. An
admin who is not on a board is a stranger to it; the audit trail and others'
bots' tokens are where being an admin counts.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from tests.handlers.test_authorization_matrix import snapshot
from tests.handlers.test_bots import make_admin
from tests.support import Account, Hub

CALLERS = ("stranger", "admin", "viewer", "editor", "owner")


@dataclass
class Scene:
    hub: Hub
    accounts: dict[str, Account]
    board_id: str
    bot_id: str  # made by the owner
    token_id: str  # one of the bot's tokens


Request = tuple[str, str, Any]  # method, path, body
Build = Callable[[Scene], Awaitable[Request]]


async def _newcomer(scene: Scene) -> Account:
    return await scene.hub.register("Newcomer")


async def _member_to_remove(scene: Scene) -> str:
    someone = await scene.hub.register("Leaving")
    await scene.hub.add_member(scene.accounts["owner"], scene.board_id, someone, "viewer")
    return someone.id


async def _fresh_token(scene: Scene) -> str:
    status, body = await scene.hub.request(
        "POST",
        f"/api/bots/{scene.bot_id}/tokens",
        token=scene.accounts["owner"].access_token,
        json={"name": "spare", "scopes": ["tasks:read"]},
    )
    assert status == 201, body
    return str(body["token"]["id"])


def fixed(method: str, path: str, body: Any = None) -> Build:
    async def build(scene: Scene) -> Request:
        return method, path.format(board=scene.board_id, bot=scene.bot_id), body

    return build


async def add_member(scene: Scene) -> Request:
    newcomer = await _newcomer(scene)
    body = {"email": newcomer.email, "role": "viewer"}
    return "POST", f"/api/boards/{scene.board_id}/members", body


async def remove_member(scene: Scene) -> Request:
    return "DELETE", f"/api/boards/{scene.board_id}/members/{await _member_to_remove(scene)}", None


async def revoke_token(scene: Scene) -> Request:
    return "DELETE", f"/api/bots/{scene.bot_id}/tokens/{await _fresh_token(scene)}", None


def row(**statuses: int) -> dict[str, int]:
    assert set(statuses) == set(CALLERS), statuses
    return statuses


READ = row(owner=200, editor=200, viewer=200, stranger=404, admin=404)
OWNER_ONLY = row(owner=201, editor=403, viewer=403, stranger=404, admin=404)
BOT_KEEPERS = row(owner=200, admin=200, editor=403, viewer=403, stranger=403)

MATRIX: list[tuple[str, Build, dict[str, int]]] = [
    ("get board", fixed("GET", "/api/boards/{board}"), READ),
    ("list tasks", fixed("GET", "/api/boards/{board}/tasks"), READ),
    ("add member", add_member, OWNER_ONLY),
    ("remove member", remove_member, {**OWNER_ONLY, "owner": 204}),
    (
        "create bot on board",
        fixed("POST", "/api/bots", {"name": "B", "board_id": "{board}"}),
        OWNER_ONLY,
    ),
    (
        "create bot, no board",
        fixed("POST", "/api/bots", {"name": "B"}),
        {**dict.fromkeys(CALLERS, 403), "admin": 201},
    ),
    (
        "create bot token",
        fixed("POST", "/api/bots/{bot}/tokens", {"name": "t", "scopes": ["chat:read"]}),
        {**BOT_KEEPERS, "owner": 201, "admin": 201},
    ),
    ("list bot tokens", fixed("GET", "/api/bots/{bot}/tokens"), BOT_KEEPERS),
    ("revoke bot token", revoke_token, {**BOT_KEEPERS, "owner": 204, "admin": 204}),
    (
        "audit trail",
        fixed("GET", "/api/admin/audit"),
        {**dict.fromkeys(CALLERS, 403), "admin": 200},
    ),
]


async def _scene(hub: Hub) -> Scene:
    accounts = {caller: await hub.register(caller.title()) for caller in CALLERS}
    await make_admin(hub, accounts["admin"])
    board_id = await hub.create_board(accounts["owner"])
    for role in ("editor", "viewer"):
        await hub.add_member(accounts["owner"], board_id, accounts[role], role)
    status, bot = await hub.request(
        "POST",
        "/api/bots",
        token=accounts["owner"].access_token,
        json={"name": "Helper", "board_id": board_id},
    )
    assert status == 201, bot
    scene = Scene(hub, accounts, board_id, bot["bot"]["id"], "")
    scene.token_id = await _fresh_token(scene)
    return scene


def _with_board(body: Any, scene: Scene) -> Any:
    if isinstance(body, dict) and body.get("board_id") == "{board}":
        return {**body, "board_id": scene.board_id}
    return body


@pytest.mark.timeout(120)
async def test_every_rest_call_for_every_caller(hub: Hub) -> None:
    scene = await _scene(hub)
    failures = []
    for name, build, expected in MATRIX:
        # refused callers first: a write one of them made wrongly cannot hide
        # behind an allowed one's
        for caller in sorted(CALLERS, key=lambda c: expected[c] < 300):
            method, path, body = await build(scene)
            before = await snapshot(hub)
            status, answer = await hub.request(
                method,
                path,
                token=scene.accounts[caller].access_token,
                json=_with_board(body, scene),
            )
            if status != expected[caller]:
                failures.append(f"{name} by {caller}: {status} {answer}, not {expected[caller]}")
            elif status >= 400:
                code = {403: "forbidden", 404: "not_found"}[status]
                if answer["error"]["code"] != code:
                    failures.append(f"{name} by {caller}: {answer}")
                if await snapshot(hub) != before:
                    failures.append(f"{name} by {caller}: refused, yet something changed")
    assert not failures, "\n".join(failures)


async def test_an_unknown_board_is_404_for_everyone(hub: Hub) -> None:
    owner = await hub.register("Owner")
    missing = uuid.uuid4()
    for path in (f"/api/boards/{missing}", f"/api/boards/{missing}/tasks"):
        status, body = await hub.request("GET", path, token=owner.access_token)
        assert status == 404 and body["error"]["code"] == "not_found", (path, body)
