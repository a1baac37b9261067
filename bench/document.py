"""docs/BENCHMARKS.md: the table with what a reader needs to trust or redo it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from bench.scenarios import GENERATOR_LIMIT

TASKHUB_NOTE = (
    "**What `taskhub` is in the fan-out:** the hub's own Socket.IO servers, built by "
    "`hub.app.socketio_server` from the hub's `Settings` (JSON and msgpack, their "
    "managers members of the process's Socket.IO channel on Redis, the broadcast fast "
    "path of `hub/fanout/`, uvloop) with a real Redis, so every broadcast is also "
    "published to Redis and read back by the process's subscription, as on a hub node. "
    "The publisher is a "
    "bench-only `publish` event, so the figure is the broadcast machinery alone; the "
    "edit-path section below measures the whole product path (JWT connect, `board:join`, "
    "`task:update` through PostgreSQL, the room emit). Redis runs as a child of the "
    "server, on the server's core; its CPU is *not* in the CPU column (it is in the note "
    "under the table)."
)

DEFLATE_NOTE = (
    "**No compression:** the generator's clients do not offer permessage-deflate, so "
    "every server sends the same uncompressed frames. Browsers offer it; Node's "
    'socket.io server refuses it by default and so does the hub (README: "No '
    'permessage-deflate"), while stock python-socketio on aiohttp accepts it and then '
    "deflates every frame for every recipient. `python -m bench.run --deflate` measures "
    "that case."
)


def render(
    *,
    machine: dict[str, str],
    command: str,
    pinning: str,
    table: str | None,
    notes: Sequence[str],
    sections: Sequence[str] = (),
) -> str:
    """`table` is the fan-out's (None when it was not run); `sections` are the hub
    scenarios' (bench/hub_report.Section.markdown), each with its goal."""
    versions = "\n".join(f"| {name} | {value} |" for name, value in machine.items())
    fanout = _fanout(pinning, table, notes) if table is not None else ""
    hub = "\n".join(sections)
    return f"""# Benchmarks

Written by `make bench` (`bench/run.py`); do not edit by hand, run it again.
Issue 5 sets the goals: server CPU per delivery at a fixed offered load no higher
than Node socket.io's, a p99 no worse than Node's, saturating deliveries/s at least
1.0x Node's, at 100, 500 and 1000 subscribers, measured in the same run. The
scenarios against the real hub (edit path, connect storm, idle connections, two nodes,
Kafka to room) each state their goal and whether this run met it.

Measured {dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")} with `{command}`.

| machine and versions | |
|---|---|
{versions}

{pinning} The hub scenarios' helpers (PostgreSQL, Redis, the Kafka broker) run on the
server core too; each section says where its processes ran.

{fanout}{hub}"""


def _fanout(pinning: str, table: str, notes: Sequence[str]) -> str:
    extra = "".join(f"- {note}\n" for note in notes)
    return f"""## Fan-out

One room of N websocket subscribers, one publisher (Node `socket.io-client`) outside
the room emitting `publish` with a send timestamp and a sequence number; the server
broadcasts it to the room (`to(room).emit("msg", payload)`), so each publish is N
deliveries. Servers: `node` is `bench/node_server.js` (socket.io, in-memory adapter),
`stock` is `bench/stock_server.py` (python-socketio `AsyncServer` on aiohttp,
in-memory manager), `taskhub` is `bench/taskhub_server.py`.

{pinning}

- *subscribers*: light Socket.IO clients on bare websockets (`bench/light_client.js`:
  Engine.IO 4 and Socket.IO 5 as the official client speaks them, pings answered,
  but no per-packet objects or event emitters). With `socket.io-client` subscribers
  the one generator core was the limit of the saturating runs (`--client official`
  measures with them).
- *deliveries/s*: messages received by subscribers in the measured window, per second.
- *CPU s / 1000 deliveries*: the server process's CPU time (its CPU-time clock, read
  from outside it: every thread, finer than `/proc`'s 10 ms; `bench/procstat.py`) over
  the generator's measured window, per 1000 deliveries received. At a fixed offered
  rate this is the primary figure (lower is better; ratio < 1 beats the peer).
- *p50/p99*: publish-to-receipt latency of every delivery in the window (publisher and
  subscribers share the generator's clock).
- *saturating*: the publisher keeps a window of publishes in flight, a publish leaving
  the window when every subscriber has it.
- *server core* / *generator core*: share of one core used in the window. `gen-bound`
  marks a scenario where the generator used ≥ {GENERATOR_LIMIT:.0%} of its core in some
  repetition: there the figure is a floor for the server, not its limit.
- Cells are median (min-max) over the repetitions (xcount in the server column);
  ratios are of medians.

{TASKHUB_NOTE}

{DEFLATE_NOTE}

{table}
{extra}
"""
