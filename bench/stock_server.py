"""The Python peer: stock python-socketio AsyncServer on aiohttp, in-memory manager.

This is what a team gets from python-socketio out of the box; Taskhub's goal is
to beat it and match Node, so it does exactly what node_server.js does.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import socketio
from aiohttp import web

from bench.readiness import ROOM, announce


def build() -> tuple[web.Application, socketio.AsyncServer]:
    sio = socketio.AsyncServer(async_mode="aiohttp")
    app = web.Application()
    sio.attach(app)

    @sio.on("connect")
    async def connect(sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        # the publisher stays out of the room so every publish is N deliveries
        if isinstance(auth, dict) and auth.get("role") == "subscriber":
            await sio.enter_room(sid, ROOM)

    @sio.on("publish")
    async def publish(sid: str, payload: Any) -> bool:
        await sio.emit("msg", payload, room=ROOM)
        return True

    return app, sio


async def serve(port: int) -> None:
    app, _ = build()
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    announce(port)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(serve(int(os.environ["PORT"])))
