"""`make bench`: start each server pinned to one core, drive it from the other, print the table.

Servers are alternated within each repetition (node, stock, taskhub, node, ...)
so slow drift of the machine (thermal, a neighbour) spreads over all of them
instead of favouring whichever ran first. `--scenarios` picks the fan-out and the
scenarios against the real hub (bench/hub_scenarios.py), all by default.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from bench import document, hub_scenarios, report
from bench.scenarios import Measurement, Scenario, measure
from bench.servers import REPO_DIR, SERVERS, ServerSpec, start


def say(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def cores() -> tuple[int | None, int | None, str]:
    """(server core, generator core, sentence for the report)."""
    if (os.cpu_count() or 1) >= 2 and shutil.which("taskset"):
        return (
            0,
            1,
            "Pinned with `taskset`: the server (and its Redis) on core 0, the generator on core 1.",
        )
    return (
        None,
        None,
        "Not pinned (fewer than 2 cores or no `taskset`): server and generator share the CPU.",
    )


def scenarios(args: argparse.Namespace) -> list[Scenario]:
    made = []
    for n in args.subscribers:
        for rate in args.rates:
            made.append(
                Scenario(
                    n, rate, args.duration, args.warmup, deflate=args.deflate, client=args.client
                )
            )
        if not args.no_saturate:
            made.append(
                Scenario(
                    n,
                    None,
                    args.duration,
                    args.warmup,
                    args.window,
                    deflate=args.deflate,
                    client=args.client,
                )
            )
    return made


def run(servers: Sequence[ServerSpec], plan: Sequence[Scenario], reps: int) -> list[Measurement]:
    server_core, generator_core, _ = cores()
    total = reps * len(servers) * len(plan)
    done: list[Measurement] = []
    began = time.monotonic()
    for rep in range(1, reps + 1):
        for spec in servers:
            say(f"repetition {rep}/{reps}: starting {spec.name}")
            server = start(spec, server_core)
            try:
                for scenario in plan:
                    m = measure(server, scenario, generator_core)
                    done.append(m)
                    left = (time.monotonic() - began) / len(done) * (total - len(done))
                    say(
                        f"[{len(done)}/{total}, ~{left / 60:.1f} min left] {spec.name} "
                        f"{scenario.label}: {m.deliveries_per_s:,.0f} deliveries/s, "
                        f"p99 {m.p99_ms or 0:.1f} ms, server {m.server_cpu_frac:.0%} of a core, "
                        f"generator {m.generator_cpu_frac:.0%}"
                    )
                    time.sleep(0.5)  # let the closed sockets drain before the next run
            finally:
                server.stop()
    return done


def generator_note(measurements: Sequence[Measurement]) -> str:
    bound = sorted({m.scenario.label for m in measurements if m.generator_bound})
    if not bound:
        return "The generator stayed under 90 % of its core in every run."
    return f"Generator-bound (≥ 90 % of its core) in: {', '.join(bound)}."


def redis_note(measurements: Sequence[Measurement], plan: Sequence[Scenario]) -> str | None:
    """Redis is the taskhub server's helper; its CPU is shown apart, not hidden."""
    shares = []
    for scenario in plan:
        runs = [m for m in measurements if m.scenario == scenario and m.server == "taskhub"]
        spread = report.Spread.of([m.aux_cpu_s / m.wall_s * 100 for m in runs])
        if spread is not None:
            shares.append(f"{scenario.label}: {spread.median:.0f} %")
    return (
        "Redis (taskhub's helper) used, of a core: " + "; ".join(shares) + "." if shares else None
    )


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench.run", description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 1 repetition of 2 s (fan-out: N=100)"
    )
    parser.add_argument("--subscribers", type=lambda s: [int(x) for x in s.split(",")])
    parser.add_argument("--rates", type=lambda s: [int(x) for x in s.split(",")])
    parser.add_argument("--reps", type=int)
    parser.add_argument("--duration", type=float)
    parser.add_argument("--warmup", type=float)
    parser.add_argument(
        "--window", type=int, default=16, help="publishes in flight when saturating"
    )
    parser.add_argument("--no-saturate", action="store_true")
    parser.add_argument(
        "--deflate",
        action="store_true",
        help="clients offer permessage-deflate as browsers do (aiohttp accepts; Node refuses)",
    )
    parser.add_argument(
        "--client",
        choices=("light", "official"),
        default="light",
        help="the fan-out subscribers' client: bench/light_client.js or socket.io-client",
    )
    parser.add_argument("--servers", default=",".join(s.name for s in SERVERS))
    parser.add_argument(
        "--scenarios",
        default=",".join(hub_scenarios.ALL),
        help=f"comma-separated, of: {', '.join(hub_scenarios.ALL)} (default: all)",
    )
    hub_scenarios.add_arguments(parser)
    parser.add_argument("--markdown", type=Path, help="write the report here (docs/BENCHMARKS.md)")
    parser.add_argument("--json", type=Path, help="write every repetition's raw figures here")
    args = parser.parse_args(argv)
    defaults = (
        {"subscribers": [100], "rates": [10_000], "reps": 1, "duration": 2.0, "warmup": 0.5}
        if args.quick
        else {
            "subscribers": [100, 500, 1000],
            "rates": [10_000, 50_000],
            "reps": 3,
            "duration": 5.0,
            "warmup": 1.0,
        }
    )
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def _exit_on_sigterm(signum: int, frame: object) -> None:
    """SIGTERM (a `kill`, a CI timeout) unwinds like Ctrl-C, so every server and
    embedded service the run started is stopped by its `finally`, not left behind."""
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> None:
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    args = parse(argv)
    chosen = hub_scenarios.selected(args.scenarios)
    wanted = set(args.servers.split(","))
    servers = [s for s in SERVERS if s.name in wanted]
    plan = scenarios(args) if hub_scenarios.FANOUT in chosen else []
    server_core, generator_core, pinning = cores()
    measurements: list[Measurement] = []
    table: str | None = None
    notes: list[str] = []
    print(pinning)
    if plan:
        say(f"{len(servers)} servers x {len(plan)} scenarios x {args.reps} repetitions; {pinning}")
        measurements = run(servers, plan, args.reps)
        table = report.table(measurements, plan)
        print(table)
        notes = [generator_note(measurements), *filter(None, [redis_note(measurements, plan)])]
        for note in notes:
            print(note)
    sections = hub_scenarios.run(args, chosen, server_core, generator_core, say, measurements)
    for section in sections:
        print(section.markdown())
    if args.json:
        # raw repetitions, for before/after figures in commit messages
        raw = [{**asdict(m), "cpu_per_1000": m.cpu_per_1000} for m in measurements]
        args.json.write_text(json.dumps(raw, indent=1), encoding="utf-8")
        say(f"wrote {args.json}")
    if args.markdown:
        given = list(argv if argv is not None else sys.argv[1:])
        command = shlex.join(["python", "-m", "bench.run", *given])
        if os.environ.get("MAKELEVEL"):
            extra = os.environ.get("BENCH_ARGS", "").strip()
            command = f"make bench BENCH_ARGS='{extra}'" if extra else "make bench"
        text = document.render(
            machine=report.machine(),
            command=command,
            pinning=pinning,
            table=table,
            notes=notes,
            sections=[section.markdown() for section in sections],
        )
        path = args.markdown if args.markdown.is_absolute() else REPO_DIR / args.markdown
        path.write_text(text, encoding="utf-8")
        say(f"wrote {path}")


if __name__ == "__main__":
    main()
