"""The Redis channel the nodes share carries JSON only: whatever else is published
on it (a pickle, as python-socketio before 5.14 would have loaded) is ignored."""

from __future__ import annotations

import pickle
from pathlib import Path

from redis.asyncio import Redis

from tests.support import Hub


class _OpensAFile:
    """Unpickling this calls open(path, "w"): the file exists iff someone unpickled it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.path), "w"))


async def test_a_pickle_published_on_the_channel_is_never_loaded(hub: Hub, tmp_path: Path) -> None:
    alice = await hub.register("Alice")
    board_id = await hub.create_board(alice)
    peer = await hub.peer(alice)
    marker = tmp_path / "unpickled"
    redis = Redis.from_url(hub.settings.redis_url)
    try:
        assert (await peer.call("board:join", {"board_id": board_id}))["ok"]
        bomb = pickle.dumps(_OpensAFile(marker))
        listeners = await redis.publish(hub.settings.socketio_channel, bomb)
        assert listeners >= 1  # the hub's managers did receive it
        # the channel still works, and the pickle was not loaded
        created = await peer.call("task:create", {"board_id": board_id, "title": "after"})
        assert created["ok"], created
        assert (await peer.wait_for("task:created"))[0]["task"]["title"] == "after"
        assert not marker.exists()
    finally:
        await redis.aclose()
        await peer.close()
