"""The path every user takes: register, log in, connect, join, create, update."""

from __future__ import annotations

from tests.support import Hub


async def test_register_login_connect_join_create_update(hub: Hub) -> None:
    alice = await hub.register("Alice")
    status, body = await hub.request(
        "POST", "/api/auth/login", json={"email": alice.email.upper(), "password": alice.password}
    )
    assert status == 200, body
    alice.access_token = body["access_token"]
    bob = await hub.register("Bob")
    board_id = await hub.create_board(alice)
    await hub.add_member(alice, board_id, bob, "editor")

    a = await hub.peer(alice)
    b = await hub.peer(bob)
    try:
        joined = await a.call("board:join", {"board_id": board_id})
        assert joined["ok"], joined
        assert joined["data"]["seq"] == 0 and joined["data"]["tasks"] == []
        assert (await b.call("board:join", {"board_id": board_id}))["ok"]

        created = await a.call("task:create", {"board_id": board_id, "title": "First"})
        assert created["ok"], created
        task = created["data"]["task"]
        assert task["version"] == 1 and created["data"]["seq"] == 1
        version = 1
        for n in range(5):
            ack = await a.call(
                "task:update",
                {"task_id": task["id"], "base_version": version, "changes": {"title": f"Edit {n}"}},
            )
            assert ack["ok"], ack
            version = ack["data"]["task"]["version"]

        events = await b.wait_for("task:updated", 5)
        assert [e["seq"] for e in events] == [2, 3, 4, 5, 6]
        assert [e["task"]["title"] for e in events] == [f"Edit {n}" for n in range(5)]
        assert (await b.wait_for("task:created"))[0]["task"]["id"] == task["id"]
    finally:
        await a.close()
        await b.close()
