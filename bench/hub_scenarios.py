"""The scenarios of issue 5 that run against the real hub, as run.py selects them.

One embedded stack (PostgreSQL, Redis, Kafka, seeded once) serves them all; each
scenario starts and stops its own hub processes, so one's connections cannot
disturb the next one's figures.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence

from bench import connect_storm, edit_path, idle, kafka_room, two_nodes
from bench.hub_report import Section
from bench.hub_stack import HubStack, Say, allow_open_files
from bench.scenarios import Measurement

FANOUT = "fanout"
HUB_SCENARIOS = ("edit", "storm", "idle", "two-nodes", "kafka")
ALL = (FANOUT, *HUB_SCENARIOS)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The sizes of the hub scenarios; the defaults are the issue's."""
    parser.add_argument("--editors", type=int, default=50, help="edit path, two nodes")
    parser.add_argument(
        "--watchers", type=int, default=1000, help="board room size: edit path, two nodes, kafka"
    )
    parser.add_argument("--storm-clients", type=int, default=2000)
    parser.add_argument("--idle-clients", type=int, default=5000)
    parser.add_argument("--kafka-rate", type=float, default=5.0, help="records/s")


def selected(text: str) -> list[str]:
    wanted = [name.strip() for name in text.split(",") if name.strip()]
    unknown = sorted(set(wanted) - set(ALL))
    if unknown:
        raise SystemExit(f"bench.run: unknown scenarios {unknown}; known: {', '.join(ALL)}")
    return wanted


def run(
    args: argparse.Namespace,
    wanted: Sequence[str],
    server_core: int | None,
    generator_core: int | None,
    say: Say,
    fanout: Sequence[Measurement] = (),
) -> list[Section]:
    """`fanout`: the fan-out measurements of this run (the edit path holds its room
    emit against them)."""
    names = [name for name in HUB_SCENARIOS if name in wanted]
    if not names:
        return []
    reps, duration, warmup = args.reps, args.duration, args.warmup
    room = args.watchers
    users = max(args.editors + room, args.storm_clients, args.idle_clients)
    # enough records for a p99 that is not one record's luck, even in a --quick run
    kafka_records = max(20, round(args.kafka_rate * duration))
    steps: dict[str, Callable[[HubStack], Section]] = {
        "edit": lambda stack: edit_path.run(
            stack,
            edit_path.Plan(args.editors, room, duration, warmup, reps),
            server_core,
            generator_core,
            say,
            fanout,
        ),
        "storm": lambda stack: connect_storm.run(
            stack, connect_storm.Plan(args.storm_clients, reps), server_core, generator_core, say
        ),
        "idle": lambda stack: idle.run(
            stack, idle.Plan(args.idle_clients, reps), server_core, generator_core, say
        ),
        "two-nodes": lambda stack: two_nodes.run(
            stack,
            two_nodes.Plan(args.editors, room, duration, warmup, reps),
            server_core,
            generator_core,
            say,
        ),
        "kafka": lambda stack: kafka_room.run(
            stack,
            kafka_room.Plan(room, kafka_records, args.kafka_rate, reps),
            server_core,
            generator_core,
            say,
        ),
    }
    # each socket is a descriptor in the generator and another in the server
    allow_open_files(max(args.idle_clients, args.storm_clients, room + args.editors) + 1024, say)
    say(f"hub scenarios {', '.join(names)}: starting the embedded stack, seeding {users} users")
    sections = []
    with HubStack(say, server_core, users=users, editors=args.editors, members=room) as stack:
        for name in names:
            sections.append(steps[name](stack))
    return sections
