"""Boards over REST against the real hub: boards, members and the task list."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.support import Account, Hub


async def make_tasks(hub: Hub, account: Account, *payloads: dict[str, Any]) -> list[dict[str, Any]]:
    """Create tasks as a real socket client would; returns them in creation order."""
    peer = await hub.peer(account)
    try:
        created = []
        for payload in payloads:
            ack = await peer.call("task:create", payload)
            assert ack["ok"], ack
            created.append(ack["data"]["task"])
        return created
    finally:
        await peer.close()


async def list_tasks(hub: Hub, account: Account, board_id: str, query: str = "") -> tuple[int, Any]:
    return await hub.request(
        "GET", f"/api/boards/{board_id}/tasks{query}", token=account.access_token
    )


async def task_ids(hub: Hub, account: Account, board_id: str, query: str = "") -> set[str]:
    status, body = await list_tasks(hub, account, board_id, query)
    assert status == 200, (query, body)
    assert body["next"] is None, (query, body)
    return {t["id"] for t in body["tasks"]}


def ago(**delta: float) -> str:
    return (datetime.now(UTC) - timedelta(**delta)).isoformat()


def ahead(**delta: float) -> str:
    return (datetime.now(UTC) + timedelta(**delta)).isoformat()


def member_roles(body: dict[str, Any]) -> dict[str, str]:
    return {m["user_id"]: m["role"] for m in body["members"]}


def assert_error(status: int, body: Any, expected_status: int, code: str) -> None:
    assert status == expected_status, body
    assert body["error"]["code"] == code, body
    assert body["error"]["message"], body


# -- boards ------------------------------------------------------------------


async def test_create_board_makes_the_creator_its_owner(hub: Hub) -> None:
    alice = await hub.register("Alice")
    status, board = await hub.request(
        "POST", "/api/boards", token=alice.access_token, json={"name": "  Roadmap  "}
    )
    assert status == 201, board
    assert board["name"] == "Roadmap"
    assert board["owner_id"] == alice.id
    assert board["role"] == "owner"
    assert board["seq"] == 0
    uuid.UUID(board["id"])

    status, body = await hub.request("GET", f"/api/boards/{board['id']}", token=alice.access_token)
    assert status == 200, body
    assert body["board"]["id"] == board["id"]
    assert body["board"]["role"] == "owner"
    assert body["members"] == [
        {"user_id": alice.id, "email": alice.email, "name": "Alice", "role": "owner"}
    ]


async def test_create_board_validates_and_needs_a_token(hub: Hub) -> None:
    alice = await hub.register("Alice")
    for payload in ({"name": ""}, {"name": "   "}, {}, {"name": "x" * 121}, {"name": "A", "x": 1}):
        status, body = await hub.request(
            "POST", "/api/boards", token=alice.access_token, json=payload
        )
        assert_error(status, body, 400, "invalid_payload")
    status, body = await hub.request("POST", "/api/boards", json={"name": "Anon"})
    assert_error(status, body, 401, "unauthorized")
    status, body = await hub.request("GET", "/api/boards", token=alice.access_token)
    assert status == 200, body
    assert body["boards"] == []


async def test_list_boards_shows_only_my_boards(hub: Hub) -> None:
    alice = await hub.register("Alice")
    bob = await hub.register("Bob")
    first = await hub.create_board(alice, "First")
    second = await hub.create_board(alice, "Second")
    await hub.create_board(bob, "Bob's own")

    status, body = await hub.request("GET", "/api/boards", token=alice.access_token)
    assert status == 200, body
    assert [(b["id"], b["name"], b["role"]) for b in body["boards"]] == [
        (first, "First", "owner"),
        (second, "Second", "owner"),
    ]

    await hub.add_member(alice, second, bob, "viewer")
    status, body = await hub.request("GET", "/api/boards", token=bob.access_token)
    assert status == 200, body
    assert sorted((b["name"], b["role"]) for b in body["boards"]) == [
        ("Bob's own", "owner"),
        ("Second", "viewer"),
    ]
    assert first not in {b["id"] for b in body["boards"]}
    status, body = await hub.request("GET", "/api/boards")
    assert_error(status, body, 401, "unauthorized")


async def test_non_members_cannot_tell_a_board_exists(hub: Hub) -> None:
    alice = await hub.register("Alice")
    mallory = await hub.register("Mallory")
    board_id = await hub.create_board(alice)
    missing = str(uuid.uuid4())

    status, hidden = await hub.request("GET", f"/api/boards/{board_id}", token=mallory.access_token)
    assert_error(status, hidden, 404, "not_found")
    status, absent = await hub.request("GET", f"/api/boards/{missing}", token=mallory.access_token)
    assert_error(status, absent, 404, "not_found")
    assert hidden == absent

    status, body = await hub.request("GET", "/api/boards/not-a-uuid", token=alice.access_token)
    assert_error(status, body, 404, "not_found")

    # The task list answers a non-member exactly as it answers for a missing board.
    status, hidden = await list_tasks(hub, mallory, board_id)
    assert_error(status, hidden, 404, "not_found")
    status, absent = await list_tasks(hub, mallory, missing)
    assert_error(status, absent, 404, "not_found")
    assert hidden == absent


# -- members -----------------------------------------------------------------


async def test_owner_adds_members_by_email_with_a_role(hub: Hub) -> None:
    alice = await hub.register("Alice")
    bob = await hub.register("Bob")
    carol = await hub.register("Carol")
    dave = await hub.register("Dave")
    board_id = await hub.create_board(alice)

    status, member = await hub.request(
        "POST",
        f"/api/boards/{board_id}/members",
        token=alice.access_token,
        json={"email": bob.email.upper(), "role": "viewer"},
    )
    assert status == 201, member
    assert member == {"user_id": bob.id, "email": bob.email, "name": "Bob", "role": "viewer"}

    await hub.add_member(alice, board_id, carol, "owner")
    # Without a role, a member is an editor.
    status, member = await hub.request(
        "POST",
        f"/api/boards/{board_id}/members",
        token=alice.access_token,
        json={"email": dave.email},
    )
    assert status == 201, member
    assert member["role"] == "editor"

    status, body = await hub.request("GET", f"/api/boards/{board_id}", token=bob.access_token)
    assert status == 200, body
    assert body["board"]["role"] == "viewer"
    assert member_roles(body) == {
        alice.id: "owner",
        bob.id: "viewer",
        carol.id: "owner",
        dave.id: "editor",
    }


async def test_only_owners_add_members(hub: Hub) -> None:
    alice = await hub.register("Alice")
    editor = await hub.register("Eddie")
    viewer = await hub.register("Vera")
    outsider = await hub.register("Olive")
    newcomer = await hub.register("Newt")
    board_id = await hub.create_board(alice)
    await hub.add_member(alice, board_id, editor, "editor")
    await hub.add_member(alice, board_id, viewer, "viewer")

    for account in (editor, viewer):
        status, body = await hub.request(
            "POST",
            f"/api/boards/{board_id}/members",
            token=account.access_token,
            json={"email": newcomer.email, "role": "editor"},
        )
        assert_error(status, body, 403, "forbidden")
    # Someone outside the board is not even told it exists.
    status, body = await hub.request(
        "POST",
        f"/api/boards/{board_id}/members",
        token=outsider.access_token,
        json={"email": newcomer.email, "role": "editor"},
    )
    assert_error(status, body, 404, "not_found")

    status, body = await hub.request("GET", f"/api/boards/{board_id}", token=alice.access_token)
    assert newcomer.id not in member_roles(body)
    status, body = await hub.request("GET", f"/api/boards/{board_id}", token=newcomer.access_token)
    assert_error(status, body, 404, "not_found")


async def test_adding_members_refuses_bad_requests(hub: Hub) -> None:
    alice = await hub.register("Alice")
    bob = await hub.register("Bob")
    board_id = await hub.create_board(alice)
    await hub.add_member(alice, board_id, bob, "editor")
    path = f"/api/boards/{board_id}/members"

    status, body = await hub.request(
        "POST", path, token=alice.access_token, json={"email": "nobody@example.com"}
    )
    assert_error(status, body, 404, "not_found")

    status, body = await hub.request(
        "POST", path, token=alice.access_token, json={"email": bob.email, "role": "viewer"}
    )
    assert_error(status, body, 409, "conflict")

    for payload in (
        {"email": bob.email, "role": "admin"},
        {"email": bob.email, "role": ""},
        {"role": "editor"},
        {"email": bob.email, "role": "editor", "extra": True},
    ):
        status, body = await hub.request("POST", path, token=alice.access_token, json=payload)
        assert_error(status, body, 400, "invalid_payload")

    status, body = await hub.request("GET", f"/api/boards/{board_id}", token=alice.access_token)
    # The duplicate did not change Bob's role, and nothing else was added.
    assert member_roles(body) == {alice.id: "owner", bob.id: "editor"}


async def test_owner_removes_a_member(hub: Hub) -> None:
    alice = await hub.register("Alice")
    bob = await hub.register("Bob")
    board_id = await hub.create_board(alice)
    await hub.add_member(alice, board_id, bob, "editor")

    status, body = await hub.request(
        "DELETE", f"/api/boards/{board_id}/members/{bob.id}", token=alice.access_token
    )
    assert status == 204, body

    status, body = await hub.request("GET", f"/api/boards/{board_id}", token=bob.access_token)
    assert_error(status, body, 404, "not_found")
    status, body = await hub.request("GET", "/api/boards", token=bob.access_token)
    assert body["boards"] == []
    status, body = await hub.request("GET", f"/api/boards/{board_id}", token=alice.access_token)
    assert member_roles(body) == {alice.id: "owner"}

    # Removing someone who is not (or no longer) a member.
    status, body = await hub.request(
        "DELETE", f"/api/boards/{board_id}/members/{bob.id}", token=alice.access_token
    )
    assert_error(status, body, 404, "not_found")


async def test_members_other_than_owners_cannot_remove_others(hub: Hub) -> None:
    alice = await hub.register("Alice")
    bob = await hub.register("Bob")
    carol = await hub.register("Carol")
    board_id = await hub.create_board(alice)
    await hub.add_member(alice, board_id, bob, "editor")
    await hub.add_member(alice, board_id, carol, "viewer")

    for target in (carol, alice):
        status, body = await hub.request(
            "DELETE", f"/api/boards/{board_id}/members/{target.id}", token=bob.access_token
        )
        assert_error(status, body, 403, "forbidden")
    # A member may leave on their own.
    status, body = await hub.request(
        "DELETE", f"/api/boards/{board_id}/members/{carol.id}", token=carol.access_token
    )
    assert status == 204, body
    status, body = await hub.request("GET", f"/api/boards/{board_id}", token=alice.access_token)
    assert member_roles(body) == {alice.id: "owner", bob.id: "editor"}


async def test_the_last_owner_cannot_be_removed(hub: Hub) -> None:
    alice = await hub.register("Alice")
    carol = await hub.register("Carol")
    board_id = await hub.create_board(alice)

    status, body = await hub.request(
        "DELETE", f"/api/boards/{board_id}/members/{alice.id}", token=alice.access_token
    )
    assert_error(status, body, 400, "invalid_payload")
    status, body = await hub.request("GET", f"/api/boards/{board_id}", token=alice.access_token)
    assert status == 200, body
    assert member_roles(body) == {alice.id: "owner"}

    # With a second owner, the first may go; then the second is the last one.
    await hub.add_member(alice, board_id, carol, "owner")
    status, body = await hub.request(
        "DELETE", f"/api/boards/{board_id}/members/{alice.id}", token=carol.access_token
    )
    assert status == 204, body
    status, body = await hub.request(
        "DELETE", f"/api/boards/{board_id}/members/{carol.id}", token=carol.access_token
    )
    assert_error(status, body, 400, "invalid_payload")
    status, body = await hub.request("GET", f"/api/boards/{board_id}", token=carol.access_token)
    assert member_roles(body) == {carol.id: "owner"}


# -- the task list -------------------------------------------------------------


async def test_task_list_filters(hub: Hub) -> None:
    alice = await hub.register("Alice")
    bob = await hub.register("Bob")
    board_id = await hub.create_board(alice)
    await hub.add_member(alice, board_id, bob, "editor")
    b = board_id
    late_todo, future_wip, late_done, undated, late_review, late_cancelled, gone = await make_tasks(
        hub,
        alice,
        {"board_id": b, "title": "late todo", "assignee_id": bob.id, "due_date": ago(days=2)},
        {"board_id": b, "title": "on time", "status": "in_progress", "due_date": ahead(days=3)},
        {
            "board_id": b,
            "title": "late but done",
            "status": "done",
            "assignee_id": bob.id,
            "due_date": ago(hours=5),
        },
        {"board_id": b, "title": "no due date"},
        {
            "board_id": b,
            "title": "late review",
            "status": "review",
            "assignee_id": alice.id,
            "due_date": ago(minutes=1),
        },
        {"board_id": b, "title": "late cancelled", "status": "cancelled", "due_date": ago(days=1)},
        {"board_id": b, "title": "deleted", "assignee_id": bob.id, "due_date": ago(days=1)},
    )
    peer = await hub.peer(alice)
    try:
        ack = await peer.call("task:delete", {"task_id": gone["id"], "base_version": 1})
        assert ack["ok"], ack
    finally:
        await peer.close()

    status, body = await list_tasks(hub, bob, board_id)
    assert status == 200, body
    # Oldest first; a deleted task is not listed.
    assert [t["id"] for t in body["tasks"]] == [
        t["id"] for t in (late_todo, future_wip, late_done, undated, late_review, late_cancelled)
    ]
    assert body["next"] is None

    assert await task_ids(hub, bob, b, "?status=todo") == {late_todo["id"], undated["id"]}
    assert await task_ids(hub, bob, b, "?status=done") == {late_done["id"]}
    assert await task_ids(hub, bob, b, f"?assignee_id={bob.id}") == {
        late_todo["id"],
        late_done["id"],
    }
    assert await task_ids(hub, bob, b, f"?assignee_id={alice.id}") == {late_review["id"]}
    assert await task_ids(hub, bob, b, "?overdue=true") == {late_todo["id"], late_review["id"]}
    assert await task_ids(hub, bob, b, "?overdue=false") == {
        future_wip["id"],
        late_done["id"],
        undated["id"],
        late_cancelled["id"],
    }
    assert await task_ids(hub, bob, b, f"?overdue=true&assignee_id={bob.id}") == {late_todo["id"]}
    assert await task_ids(hub, bob, b, "?status=todo&overdue=false") == {undated["id"]}
    assert await task_ids(hub, bob, b, "?status=review&overdue=false") == set()

    for query in (
        "?status=open",
        "?assignee_id=bob",
        "?overdue=perhaps",
        "?limit=0",
        "?limit=201",
        "?limit=ten",
        "?colour=red",
    ):
        status, body = await list_tasks(hub, bob, b, query)
        assert_error(status, body, 400, "invalid_payload")


async def test_viewers_may_list_tasks(hub: Hub) -> None:
    alice = await hub.register("Alice")
    vera = await hub.register("Vera")
    board_id = await hub.create_board(alice)
    await hub.add_member(alice, board_id, vera, "viewer")
    [task] = await make_tasks(hub, alice, {"board_id": board_id, "title": "visible"})
    status, body = await list_tasks(hub, vera, board_id)
    assert status == 200, body
    assert [(t["id"], t["title"], t["version"]) for t in body["tasks"]] == [
        (task["id"], "visible", 1)
    ]
    status, body = await hub.request("GET", f"/api/boards/{board_id}/tasks")
    assert_error(status, body, 401, "unauthorized")


async def test_task_list_keyset_pagination(hub: Hub) -> None:
    alice = await hub.register("Alice")
    board_id = await hub.create_board(alice)
    created = await make_tasks(
        hub,
        alice,
        *(
            {"board_id": board_id, "title": f"task {n}", "status": "done" if n % 3 == 0 else "todo"}
            for n in range(11)
        ),
    )

    async def walk_pages(query: str) -> tuple[list[str], list[int]]:
        seen: list[str] = []
        sizes: list[int] = []
        cursor: str | None = None
        for _ in range(20):
            suffix = f"&after={cursor}" if cursor else ""
            status, body = await list_tasks(hub, alice, board_id, f"?{query}{suffix}")
            assert status == 200, body
            seen += [t["id"] for t in body["tasks"]]
            sizes.append(len(body["tasks"]))
            cursor = body["next"]
            if cursor is None:
                return seen, sizes
        raise AssertionError("pagination never ended")

    seen, sizes = await walk_pages("limit=4")
    assert sizes == [4, 4, 3]
    assert seen == [t["id"] for t in created]  # every task once, oldest first

    # An exact multiple of the page size ends without an empty extra page.
    seen, sizes = await walk_pages("limit=11")
    assert sizes == [11]
    assert seen == [t["id"] for t in created]

    # Filters hold across pages.
    todo = [t["id"] for t in created if t["status"] == "todo"]
    seen, sizes = await walk_pages("limit=3&status=todo")
    assert sizes == [3, 3, 1]
    assert seen == todo

    # A task created while paging shows up on a later page, not twice.
    status, first = await list_tasks(hub, alice, board_id, "?limit=5")
    assert status == 200, first
    [late] = await make_tasks(hub, alice, {"board_id": board_id, "title": "late arrival"})
    rest: list[str] = []
    cursor = first["next"]
    while cursor:
        status, body = await list_tasks(hub, alice, board_id, f"?limit=5&after={cursor}")
        assert status == 200, body
        rest += [t["id"] for t in body["tasks"]]
        cursor = body["next"]
    assert [t["id"] for t in first["tasks"]] + rest == [t["id"] for t in created] + [late["id"]]


async def test_task_list_refuses_a_garbage_cursor(hub: Hub) -> None:
    alice = await hub.register("Alice")
    board_id = await hub.create_board(alice)
    await make_tasks(hub, alice, *({"board_id": board_id, "title": f"t{n}"} for n in range(3)))
    for cursor in ("garbage", "!!!", "bm90IGEgY3Vyc29y", "x" * 201):
        status, body = await list_tasks(hub, alice, board_id, f"?limit=1&after={cursor}")
        assert_error(status, body, 400, "invalid_payload")
