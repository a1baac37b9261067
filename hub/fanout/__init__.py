"""The broadcast fast path: a room emit encodes its packet once, frames it once, and
writes the same bytes to every websocket recipient.

Stock python-socketio spends a broadcast's time per recipient: one task, one
Engine.IO queue hop, one writer-task wake-up, one encode and one websocket frame
build for each of them. Here a websocket connection has no writer task and no
queue: every packet sent to it (acks, pings and broadcasts alike) is framed and
written to its transport at once, so packets keep the order they were sent in,
and a broadcast is a loop of `transport.write(frame)`. Long-polling connections,
connections still upgrading and emits that want a client ack keep the stock path.

Reading is the hub's own too: after the handshake a websocket connection is taken
from aiohttp (`upgrade.py`) and its frames are parsed by `connection.py`, so an
idle connection keeps no request, handler task or reader queue.

A connection whose client stops reading fills its transport buffer instead of a
queue; past the configured bound it is dropped (`transport error`), which removes
it from its rooms like any disconnect.
"""
