"""Idle connections: resident memory per connection while C authenticated clients sit
idle on the hub, next to Node socket.io and stock python-socketio holding as many.

Memory is the server process's VmRSS (from /proc/<pid>/status) after the clients
connected and settled, minus before they connected, divided by the connections:
what each one costs the server, read from outside it. Helpers (Redis, PostgreSQL)
are not counted; the hub's presence lives in Redis by design, and the number of
connections its node registered there is shown to prove it was written.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import cast

from redis import Redis

from bench.hub_report import Section, cell, ratio, show_ratio, table, verdict
from bench.hub_stack import HubStack, Say, node_command, stop_process
from bench.servers import REPO_DIR, SERVERS, RunningServer, pinned, start
from storage.keys import RedisKeys

# Let the server finish its connect work (presence writes, buffers) before reading RSS.
SETTLE_S = 2.0


@dataclass(frozen=True, slots=True)
class Plan:
    clients: int
    reps: int


@dataclass(frozen=True, slots=True)
class IdleRun:
    server: str
    connected: int
    kib_per_connection: float
    rss_before_mib: float
    rss_after_mib: float
    presence: int | None  # the hub node's connections as registered in Redis
    dropped: int
    connect_s: float


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def _hold(
    server: RunningServer,
    core: int | None,
    clients: int,
    tokens: str | None,
    presence: Callable[[], int] | None,
) -> IdleRun:
    args = ["--mode", "hold", "--url", server.url, "--count", str(clients)]
    args += ["--tokens", tokens] if tokens else ["--role", "subscriber"]
    time.sleep(0.5)  # the server's own start-up allocations are done
    before = rss_kib(server.proc.pid)
    proc = subprocess.Popen(
        pinned(node_command("connections.js", *args), core),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO_DIR,
    )
    assert proc.stdout is not None and proc.stdin is not None
    try:
        holding = json.loads(proc.stdout.readline() or "{}")
        if holding.get("event") != "holding":
            raise RuntimeError(f"connections.js did not hold its clients (exit {proc.wait()})")
        time.sleep(SETTLE_S)
        after = rss_kib(server.proc.pid)
        registered = presence() if presence else None
        proc.stdin.close()
        result = json.loads(proc.stdout.readline() or "{}")
        proc.wait(60)
    finally:
        stop_process(proc)
    connected = int(holding["connected"])
    return IdleRun(
        server=server.spec.name,
        connected=connected,
        kib_per_connection=(after - before) / connected,
        rss_before_mib=before / 1024,
        rss_after_mib=after / 1024,
        presence=registered,
        dropped=int(result.get("dropped", 0)),
        connect_s=float(holding.get("seconds", 0.0)),
    )


def _registered(redis: Redis, key: str) -> int:
    """The connections the hub node registered in Redis (its presence hash)."""
    return cast(int, redis.hlen(key))  # the sync client: an int, not an awaitable


def run(
    stack: HubStack, plan: Plan, server_core: int | None, generator_core: int | None, say: Say
) -> Section:
    users = stack.fixture.users
    if len(users) < plan.clients:
        raise RuntimeError(f"idle needs {plan.clients} users, {len(users)} seeded")
    tokens = str(stack.write_json("idle-tokens.json", list(users[: plan.clients])))
    peers = {s.name: s for s in SERVERS if s.name in ("node", "stock")}
    redis = Redis.from_url(stack.env["REDIS_URL"])
    runs: list[IdleRun] = []
    try:
        for rep in range(1, plan.reps + 1):
            for name in ("hub", "node", "stock"):
                say(f"idle {rep}/{plan.reps}: {plan.clients} idle connections on {name}")
                node_id = f"bench-idle-{uuid.uuid4().hex[:8]}"
                if name == "hub":
                    server = stack.start_hub(server_core, NODE_ID=node_id)
                else:
                    server = start(peers[name], server_core)
                key = RedisKeys("").node_connections(node_id)
                try:
                    result = _hold(
                        server,
                        generator_core,
                        plan.clients,
                        tokens if name == "hub" else None,
                        partial(_registered, redis, key) if name == "hub" else None,
                    )
                finally:
                    server.stop()
                runs.append(result)
                say(
                    f"idle {rep}/{plan.reps}: {name} {result.kib_per_connection:.1f} KiB per "
                    f"connection ({result.rss_before_mib:.0f} -> {result.rss_after_mib:.0f} MiB)"
                )
    finally:
        redis.close()
    return section(plan, runs)


def section(plan: Plan, runs: Sequence[IdleRun]) -> Section:
    names = ("hub", "node", "stock")
    by = {name: [r for r in runs if r.server == name] for name in names}
    per = {name: [r.kib_per_connection for r in mine] for name, mine in by.items()}
    header = [
        "server",
        "runs",
        "KiB per connection",
        "vs node",
        "vs stock",
        "RSS before MiB",
        "RSS after MiB",
        "presence in Redis",
        "dropped",
    ]
    rows = []
    for name in names:
        mine = by[name]
        presence = [r.presence for r in mine if r.presence is not None]
        rows.append(
            [
                name,
                f"x{len(mine)}",
                cell(per[name], ".1f"),
                show_ratio(ratio(per[name], per["node"])),
                show_ratio(ratio(per[name], per["stock"])),
                cell([r.rss_before_mib for r in mine], ".0f"),
                cell([r.rss_after_mib for r in mine], ".0f"),
                cell([float(p) for p in presence], ".0f") if presence else "-",
                str(sum(r.dropped for r in mine)),
            ]
        )
    about = (
        f"{plan.clients} websocket clients (`bench/connections.js --mode hold`, connected in "
        "batches of 100) stay idle on one server process; *KiB per connection* is its VmRSS "
        f"{SETTLE_S:g} s after the last connect minus its VmRSS before the first, divided by "
        "the connections. On the hub (`taskhub serve`) each client is a distinct user with "
        "its own JWT, so each connect writes presence to Redis; *presence in Redis* is the "
        "number of connections the node registered there (the hash `ws:node:{id}:connections`). "
        "The peers (`bench/node_server.js`, `bench/stock_server.py`) put each client in "
        "one room, unauthenticated. Hub, node and stock alternate within each repetition."
    )
    return Section(
        title="Idle connections",
        about=about,
        table=table(header, rows),
        goal=verdict(
            "resident memory per connection ≤ Node socket.io's",
            ratio(per["hub"], per["node"]),
            at_most=1.0,
        ),
    )
