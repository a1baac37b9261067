"""500 clients reconnecting at once: the node holding them dies, and every one of
them comes back through the balancer to the surviving node within 30 s, on its
board again (the next edit reaches all of them)."""

from __future__ import annotations

import asyncio
import time

import pytest

from protocol.client import TaskhubClient
from tests.chaos.clients import Editor, Watcher, client, close_all, team
from tests.chaos.stack import Balancer, Deployment, ports_of, until

CLIENTS = 500
USERS = 100  # five tabs each
BACK_WITHIN = 30.0


@pytest.mark.timeout(300)
async def test_five_hundred_clients_are_back_within_30_s(deployed: Deployment) -> None:
    doomed = await deployed.node("node-a")
    nodes = [doomed]
    balancer = Balancer(lambda: ports_of(nodes))
    await balancer.start()
    people = await team(doomed.url, editors=1, watchers=USERS)
    members = people.watchers
    hubs = [
        TaskhubClient(
            balancer.url,
            token=members[n % USERS].access_token,
            reconnection_delay=0.5,
            reconnection_delay_max=5.0,
        )
        for n in range(CLIENTS)
    ]
    editor_hub = client(doomed.url, people.editors[0])
    try:
        for batch in range(0, CLIENTS, 50):
            await asyncio.gather(*(hub.connect() for hub in hubs[batch : batch + 50]))
        watchers = [await Watcher.on_board(hub, people.board_id) for hub in hubs]
        await editor_hub.connect()
        editor = await Editor.on_board(editor_hub, people.board_id)

        survivor = await deployed.node("node-b")
        nodes.append(survivor)
        before = [hub.sio.get_sid() for hub in hubs]
        await doomed.kill()
        killed_at = time.monotonic()
        # back: connected again, as a new connection (a new sid) on the survivor
        back = await until(
            lambda: all(
                hub.sio.connected and hub.sio.get_sid() not in (None, old)
                for hub, old in zip(hubs, before, strict=True)
            ),
            BACK_WITHIN,
            "every client connected again",
        )
        # On their board again: an edit made now reaches every one of them.
        await editor_hub.close()
        editor_hub = editor.hub = client(survivor.url, people.editors[0])
        await editor_hub.connect()
        edit = await editor.edit(1)
        await until(
            lambda: all(str(edit.event_id) in {e for _, e in w.seen} for w in watchers),
            BACK_WITHIN,
            "the edit reaching every client",
        )
        everyone = time.monotonic() - killed_at
        assert everyone < BACK_WITHIN, f"all back on the board after {everyone:.1f} s"
        print(
            f"\n{CLIENTS} clients: all connected again {back:.1f} s after the kill, "
            f"all on the board again (an edit reached every one) after {everyone:.1f} s"
        )
    finally:
        await close_all([*hubs, editor_hub])
        await balancer.close()
