"""TEMPORARY probe (to be deleted): which order do bob's presence events arrive in."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable
from typing import Any

import pytest

from handlers import presence as hp
from storage import presence as sp
from tests.hub.test_presence_faults import _board, _present, _wait_present
from tests.support import Hub

T0 = time.monotonic()
LOG: list[str] = []


def note(msg: str) -> None:
    LOG.append(f"{(time.monotonic() - T0) * 1000:9.1f}ms {msg}")


async def test_probe(
    hub: Hub, node_process: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    orig_remove = sp.Presence.remove_connection
    orig_announce = hp.announce

    async def remove(self, sid, node_id):  # type: ignore[no-untyped-def]
        out = await orig_remove(self, sid, node_id)
        note(f"A remove_connection({node_id}) -> {out}")
        return out

    async def announce(ns, board_id, user_id, name, state, skip_sid=None):  # type: ignore[no-untyped-def]
        note(f"A announce {name} {state} (before emit)")
        await orig_announce(ns, board_id, user_id, name, state, skip_sid)
        note(f"A announce {name} {state} (after emit)")

    monkeypatch.setattr(sp.Presence, "remove_connection", remove)
    monkeypatch.setattr(hp, "announce", announce)
    url, proc = await node_process(NODE_ID="node-slow")
    elsewhere = Hub(url=url, app=hub.app, server=hub.server, settings=hub.settings)
    alice, bob, board_id = await _board(hub)
    watcher = await hub.peer(alice)

    @watcher.sio.on("presence")
    async def _p(data):  # type: ignore[no-untyped-def]
        note(f"watcher got {data['user']['name']} {data['state']}")
        watcher.received.append(("presence", data))

    b = await elsewhere.peer(bob)
    try:
        await watcher.call("board:join", {"board_id": board_id})
        await b.call("board:join", {"board_id": board_id})
        proc.send_signal(signal.SIGSTOP)
        note("SIGSTOP")
        try:
            await _wait_present(watcher, board_id, {alice.id}, 10)
            note("test saw {alice}")
        finally:
            proc.send_signal(signal.SIGCONT)
            note("SIGCONT")
        await _wait_present(watcher, board_id, {alice.id, bob.id}, 10)
        note("test saw {alice,bob}")
        states = [e["state"] for e in watcher.events("presence") if e["user"]["id"] == bob.id]
        await asyncio.sleep(1.5)
        later = [e["state"] for e in watcher.events("presence") if e["user"]["id"] == bob.id]
        present = await _present(watcher, board_id)
        print(f"PROBE at_check={states} after_1.5s={later} present_bob={bob.id in present}")
        if later[-2:] != ["left", "joined"] or states[-2:] != ["left", "joined"]:
            print("TRACE\n" + "\n".join(LOG))
        assert later[-2:] == ["left", "joined"], (states, later)
        assert states[-2:] == ["left", "joined"], (states, later)
    finally:
        await watcher.close()
        await b.close()
