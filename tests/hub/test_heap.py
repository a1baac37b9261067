"""A running node's start-up objects are out of the collector's walks; what its
clients bring is not, and a stopped node gives everything back."""

from __future__ import annotations

import gc
from collections.abc import Callable

from handlers.rest import DEPS
from hub.app import SOCKETIO_SERVERS
from hub.config import Settings
from protocol.serializers import Serializer
from tests.conftest import hub_starter


def _tracked(obj: object) -> bool:
    """Whether a collection walks `obj`: frozen objects are in no generation."""
    return any(o is obj for o in gc.get_objects())


async def test_start_up_is_frozen_while_the_node_runs(
    make_settings: Callable[..., Settings],
) -> None:
    async with hub_starter(make_settings) as start:
        hub = await start()
        server = hub.app[SOCKETIO_SERVERS][Serializer.JSON]
        # the pool is made by the app's first cleanup context, after create_app
        pool = hub.app[DEPS].pool
        assert gc.get_freeze_count() > 0
        assert not _tracked(server), "the node's start-up objects are walked by every collection"
        assert not _tracked(pool), "frozen before the app's resources were made"
        peer = await hub.peer(await hub.register("Alice"))
        try:
            sockets = list(server.eio.sockets.values())
            assert len(sockets) == 1
            assert _tracked(sockets[0]), "a connection's objects must stay collectable"
        finally:
            await peer.close()
    assert gc.get_freeze_count() == 0, "a stopped node left objects frozen"
    assert _tracked(server)
