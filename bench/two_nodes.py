"""Two nodes: the room broadcast with its subscribers split over two hub processes that
share Redis, next to one node measured in the same run.

The broadcast is the product's own: `task:updated` to a board's room, caused by
editors' `task:update` (bench/edits.js, as in the edit path), since the hub has no
bench-only publish event. With two nodes the watchers and the editors are dealt
round-robin over both; an emit made on one node reaches the other node's clients
through the Socket.IO Redis channel, as in production. The figure is total
`task:updated` deliveries/s.

On a 2-core machine this cannot show scaling: the second node needs a core of its
own and there is none, so it shares core 1 with the generator while the first node
shares core 0 with PostgreSQL, Redis and Kafka. The run still proves the path
(every watcher on either node receives every edit) and reports the figures, but the
goal is only judged with at least 4 cores.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from bench.hub_report import (
    Section,
    cell,
    generator_cell,
    generator_note,
    ratio,
    show_ratio,
    table,
    verdict,
)
from bench.hub_stack import HubStack, Say, drive, node_command, number, optional
from bench.servers import RunningServer

# Below this the second node has no core of its own.
MIN_CORES = 4


@dataclass(frozen=True, slots=True)
class Plan:
    editors: int
    watchers: int
    duration: float
    warmup: float
    reps: int


@dataclass(frozen=True, slots=True)
class NodesRun:
    nodes: int
    deliveries_per_s: float
    expected_per_s: float  # edits/s x watchers: what complete delivery would be
    edits_per_s: float
    delivery_p99_ms: float | None
    server_cpu_fracs: tuple[float, ...]
    generator_cpu_frac: float


def _run(
    stack: HubStack, plan: Plan, cores: Sequence[int | None], generator_core: int | None
) -> NodesRun:
    hubs: list[RunningServer] = []
    try:
        for number_, core in enumerate(cores, 1):
            hubs.append(stack.start_hub(core, name=f"node{number_}"))
        args = ["--urls", ",".join(h.url for h in hubs), "--fixture", str(stack.fixture_file())]
        args += ["--editors", str(plan.editors), "--watchers", str(plan.watchers)]
        args += ["--duration", str(plan.duration), "--warmup", str(plan.warmup)]
        driven = drive(node_command("edits.js", *args), generator_core, hubs)
    finally:
        for hub in hubs:
            hub.stop()
    r = driven.result
    wall = number(r, "wall_s")
    return NodesRun(
        nodes=len(hubs),
        deliveries_per_s=number(r, "deliveries_per_s"),
        expected_per_s=number(r, "edits_per_s") * plan.watchers,
        edits_per_s=number(r, "edits_per_s"),
        delivery_p99_ms=optional(r, "delivery_p99_ms"),
        server_cpu_fracs=tuple(cpu / wall for cpu in driven.server_cpu_s),
        generator_cpu_frac=number(r, "generator_cpu_frac"),
    )


def run(
    stack: HubStack, plan: Plan, server_core: int | None, generator_core: int | None, say: Say
) -> Section:
    # a third core, where there is one, keeps the second node off the generator's
    second = 2 if server_core is not None and (os.cpu_count() or 1) >= 3 else generator_core
    layouts: dict[int, list[int | None]] = {1: [server_core], 2: [server_core, second]}
    runs: list[NodesRun] = []
    for rep in range(1, plan.reps + 1):
        for nodes, cores in layouts.items():
            say(f"two nodes {rep}/{plan.reps}: {nodes} node(s), {plan.watchers} watchers")
            result = _run(stack, plan, cores, generator_core)
            runs.append(result)
            say(
                f"two nodes {rep}/{plan.reps}: {nodes} node(s) {result.deliveries_per_s:,.0f} "
                f"deliveries/s ({result.edits_per_s:,.0f} edits/s), cores "
                + ", ".join(f"{c:.0%}" for c in result.server_cpu_fracs)
            )
    return section(plan, runs, (server_core, second, generator_core))


def section(
    plan: Plan, runs: Sequence[NodesRun], cores: tuple[int | None, int | None, int | None]
) -> Section:
    first_core, second_core, generator_core = cores
    by = {n: [r for r in runs if r.nodes == n] for n in (1, 2)}
    rate = {n: [r.deliveries_per_s for r in mine] for n, mine in by.items()}
    header = [
        "nodes",
        "runs",
        "deliveries/s",
        "vs one node",
        "of expected",
        "edits/s",
        "send-to-watcher p99 ms",
        "node cores",
        "generator core (max)",
    ]
    rows = []
    for n, mine in by.items():
        complete = [r.deliveries_per_s / r.expected_per_s * 100 for r in mine if r.expected_per_s]
        used = ["/".join(f"{c * 100:.0f} %" for c in r.server_cpu_fracs) for r in mine]
        rows.append(
            [
                str(n),
                f"x{len(mine)}",
                cell(rate[n], ",.0f"),
                show_ratio(ratio(rate[n], rate[1])),
                cell(complete, ".0f") + " %",
                cell([r.edits_per_s for r in mine], ",.0f"),
                cell([r.delivery_p99_ms for r in mine], ".1f"),
                "; ".join(used),
                generator_cell([r.generator_cpu_frac for r in mine]),
            ]
        )
    cpus = os.cpu_count() or 1
    shared = (
        ", so with two nodes it shares that core with the second node"
        if second_core == generator_core
        else ""
    )
    pinning = (
        f"Pinned: one node on core {first_core} (with PostgreSQL, Redis and Kafka); two "
        f"nodes on cores {first_core} and {second_core}; the generator on core "
        f"{generator_core}{shared}."
    )
    about = (
        f"{plan.watchers} watchers and {plan.editors} editors (distinct users, JWTs, "
        "`board:join`; `bench/edits.js`) on one board; every editor keeps one `task:update` "
        "in flight, and each edit is broadcast as `task:updated` to the board's room. With "
        "two nodes (two `taskhub serve` processes sharing PostgreSQL and Redis) the clients "
        "are dealt round-robin over them and an emit reaches the other node's watchers "
        "through the Socket.IO Redis channel. *deliveries/s*: `task:updated` received by "
        "watchers per second, all nodes together; *of expected*: of edits/s x watchers. " + pinning
    )
    two_vs_one = ratio(rate[2], rate[1])
    if cpus < MIN_CORES:
        goal = (
            "**Goal:** total deliveries/s with two nodes ≥ 1.6x one node's: not judged on "
            f"this {cpus}-core machine (measured {show_ratio(two_vs_one)}): the second node "
            "has no core of its own (it shares one with the generator, the first node "
            "shares its core with PostgreSQL, Redis and Kafka), so the figure says the "
            f"two-node path works, not how it scales. Run on ≥ {MIN_CORES} cores to judge it."
        )
    else:
        goal = verdict(
            "total deliveries/s with two nodes ≥ 1.6x one node's", two_vs_one, at_least=1.6
        )
    return Section(
        title="Two nodes",
        about=about,
        table=table(header, rows),
        goal=goal,
        notes=generator_note([r.generator_cpu_frac for r in runs]),
    )
