"""Connect storm: C clients connecting at once to the hub, each with a valid JWT of a
distinct user, next to the same storm of bare connects against Node socket.io.

The hub verifies each token, loads its user and session from PostgreSQL and writes
presence to Redis before the Socket.IO connect ack; the Node peer
(bench/node_server.js) does nothing but accept. The issue's goal allows for that:
half of Node's connects/s. Hub and Node alternate within each repetition, each a
fresh process on the server core.

Once connected, the hub's clients that are members of the seeded board (up to the
board's size) send `board:join` at once: the time for that many distinct people to
join one board (their queries, presence, and the `joined` each announces to the room
so far) is what "no N+1 on board:join" is judged by.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from bench.hub_report import Section, cell, generator_cell, ratio, show_ratio, table, verdict
from bench.hub_stack import HubStack, Say, drive, node_command, number, optional
from bench.servers import SERVERS, RunningServer, start


@dataclass(frozen=True, slots=True)
class Plan:
    clients: int
    reps: int


@dataclass(frozen=True, slots=True)
class StormRun:
    server: str
    connects_per_s: float | None
    p50_ms: float | None
    p99_ms: float | None
    failed: int
    errors: str
    generator_cpu_frac: float
    joins: int = 0
    join_failed: int = 0
    join_wall_s: float | None = None
    join_p50_ms: float | None = None
    join_p99_ms: float | None = None
    # the server process's own CPU (not its database's or Redis's), per connect / join
    cpu_ms_per_connect: float | None = None
    cpu_ms_per_join: float | None = None
    join_generator_cpu_frac: float | None = None


@dataclass(frozen=True, slots=True)
class Join:
    """Who joins the board after the storm: the first `joiners` tokens are its members."""

    board_id: str
    joiners: int


def _storm(
    server: RunningServer,
    core: int | None,
    clients: int,
    tokens: str | None,
    join: Join | None = None,
) -> StormRun:
    args = ["--mode", "storm", "--url", server.url, "--count", str(clients)]
    if tokens:
        args += ["--tokens", tokens]
    if join is not None and join.joiners > 0:
        args += ["--join", join.board_id, "--joiners", str(join.joiners)]
    marks: dict[str, float] = {}

    def mark(line: dict[str, object]) -> None:
        event = line.get("event")
        if event in ("start", "joining", "end"):
            marks[str(event)] = server.cpu()

    r = drive(node_command("connections.js", *args), core, on_line=mark).result
    connected = number(r, "count") - number(r, "failed")
    joins = int(optional(r, "joins") or 0)
    storm_end = marks.get("joining", marks.get("end"))
    per_connect = (
        (storm_end - marks["start"]) * 1000 / connected
        if storm_end is not None and "start" in marks and connected
        else None
    )
    per_join = (
        (marks["end"] - marks["joining"]) * 1000 / joins
        if joins and "joining" in marks and "end" in marks
        else None
    )
    errors = r.get("errors") or {}
    return StormRun(
        server=server.spec.name,
        connects_per_s=optional(r, "connects_per_s"),
        p50_ms=optional(r, "p50_ms"),
        p99_ms=optional(r, "p99_ms"),
        failed=int(number(r, "failed")),
        errors=json.dumps(errors) if errors else "",
        generator_cpu_frac=number(r, "generator_cpu_frac"),
        joins=joins,
        join_failed=int(optional(r, "join_failed") or 0),
        join_wall_s=optional(r, "join_wall_s"),
        join_p50_ms=optional(r, "join_p50_ms"),
        join_p99_ms=optional(r, "join_p99_ms"),
        cpu_ms_per_connect=per_connect,
        cpu_ms_per_join=per_join,
        join_generator_cpu_frac=optional(r, "join_generator_cpu_frac"),
    )


def run(
    stack: HubStack, plan: Plan, server_core: int | None, generator_core: int | None, say: Say
) -> Section:
    users = stack.fixture.users
    if len(users) < plan.clients:
        raise RuntimeError(f"connect storm needs {plan.clients} users, {len(users)} seeded")
    tokens = str(stack.write_json("storm-tokens.json", list(users[: plan.clients])))
    fixture = stack.fixture
    # the seeded users begin with the board's editors, then its members (hub_stack)
    join = Join(fixture.board_id, min(plan.clients, len(fixture.editors) + len(fixture.members)))
    node_spec = next(s for s in SERVERS if s.name == "node")
    runs: list[StormRun] = []
    for rep in range(1, plan.reps + 1):
        for name in ("hub", "node"):
            say(f"connect storm {rep}/{plan.reps}: {plan.clients} clients at once to {name}")
            server = (
                stack.start_hub(server_core) if name == "hub" else start(node_spec, server_core)
            )
            try:
                result = _storm(
                    server,
                    generator_core,
                    plan.clients,
                    tokens if name == "hub" else None,
                    join if name == "hub" else None,
                )
            finally:
                server.stop()
            runs.append(result)
            say(
                f"connect storm {rep}/{plan.reps}: {name} {result.connects_per_s or 0:,.0f} "
                f"connects/s, p99 {result.p99_ms or 0:.0f} ms, {result.failed} failed, "
                f"server CPU {result.cpu_ms_per_connect or 0:.2f} ms/connect"
            )
    return section(plan, runs)


def section(plan: Plan, runs: Sequence[StormRun]) -> Section:
    by = {name: [r for r in runs if r.server == name] for name in ("hub", "node")}
    rate = {name: [r.connects_per_s for r in mine] for name, mine in by.items()}
    vs_node = ratio(rate["hub"], rate["node"])
    header = [
        "server",
        "runs",
        "connects/s",
        "vs node",
        "p50 ms",
        "p99 ms",
        "server CPU ms/connect",
        "failed",
        "generator core (max)",
    ]
    rows = []
    for name, label in (("hub", "hub (JWT + user + presence)"), ("node", "node (bare)")):
        mine = by[name]
        rows.append(
            [
                label,
                f"x{len(mine)}",
                cell(rate[name], ",.0f"),
                show_ratio(ratio(rate[name], rate["node"])),
                cell([r.p50_ms for r in mine], ".0f"),
                cell([r.p99_ms for r in mine], ".0f"),
                cell([r.cpu_ms_per_connect for r in mine], ".2f"),
                str(sum(r.failed for r in mine)),
                generator_cell([r.generator_cpu_frac for r in mine]),
            ]
        )
    errors = "; ".join(sorted({f"{r.server}: {r.errors}" for r in runs if r.errors}))
    about = (
        f"{plan.clients} websocket clients (Node `socket.io-client`, `bench/connections.js "
        "--mode storm`) are created at once; each connect is timed from its creation to its "
        "Socket.IO connect ack. Against the hub (`taskhub serve`) each client is a distinct "
        "user with its own login session and JWT (`auth: {token}`): the hub verifies the "
        "token, reads the user and the session, joins the user's room and writes presence "
        "to Redis. Against Node (`bench/node_server.js`) the connect is bare. "
        "*connects/s*: connected clients / time from the first creation to the last ack; "
        "*server CPU ms/connect*: the server process's own CPU time (its CPU-time clock; not its "
        "database's or Redis's) during the storm, per connected client: steadier than "
        "connects/s on a busy machine."
    )
    notes = [f"Failed connects: {errors}."] if errors else []
    joined = [r for r in by["hub"] if r.joins or r.join_failed]
    if joined:
        notes.append(
            f"`board:join` right after the storm: {max(r.joins for r in joined)} distinct "
            "members of one board join at once, each timed to its ack: all joined in "
            f"{cell([r.join_wall_s for r in joined], '.2f')} s, p50 "
            f"{cell([r.join_p50_ms for r in joined], '.0f')} ms, p99 "
            f"{cell([r.join_p99_ms for r in joined], '.0f')} ms, hub CPU "
            f"{cell([r.cpu_ms_per_join for r in joined], '.2f')} ms per join, generator core "
            f"{generator_cell([r.join_generator_cpu_frac or 0.0 for r in joined])}, "
            f"{sum(r.join_failed for r in joined)} failed."
        )
    return Section(
        title="Connect storm",
        about=about,
        table=table(header, rows),
        goal=verdict("connects/s ≥ 0.5x Node socket.io's bare connects/s", vs_node, at_least=0.5),
        notes=tuple(notes),
    )
