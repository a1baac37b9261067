"""The real edit path: editors' `task:update` through the hub, next to the same write in
raw asyncpg.

E editors (each editing its own task, so none conflict; conflicts are still counted)
keep one `task:update` in flight each on one board watched by W clients that joined
it, all through the real JWT auth. The hub's ack p50/p99 and edits/s at that
saturation are compared with a baseline measured in the same run, alternating with
it: E asyncpg connections doing what one edit must do in the database, in one
transaction: take the board's next seq (the row lock that serialises a board's
writers, needed for the gap-free seq of the task_events row), the version-checked
UPDATE of the task, and the INSERT of its task_events row. The gap between the two
is what the hub adds: the websocket, auth, validation, the reads of the write path,
idempotency, the Redis emit claim and the room emit.

`python -m bench.edit_path baseline ...` is the baseline's own process (pinned
like a generator); its SQL lives here, not in storage/, on purpose: it is the
yardstick, not the product.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace

import asyncpg

from bench.hub_report import (
    Section,
    cell,
    generator_cell,
    generator_note,
    ratio,
    show_ratio,
    spread,
    table,
    verdict,
)
from bench.hub_stack import (
    HubStack,
    Say,
    drive,
    node_command,
    number,
    optional,
    stop_process,
)
from bench.report import Spread
from bench.scenarios import Measurement
from bench.servers import REPO_DIR, pinned

# The seq first, as the hub took it until it moved it last (storage/task_events.py).
# Taken last here, PostgreSQL lets a writer that commits and comes straight back
# overtake the ones waiting for the board's row: at 50 connections 644 edits/s with
# p50 3.4 ms and p99 785 ms (most edits skip the queue, a few starve), so its p50
# says nothing of a round trip. Taken first, the queue is about fair (p99 ~6x p50).
NEXT_SEQ = "UPDATE boards SET last_seq = last_seq + 1 WHERE id = $1 RETURNING last_seq"
UPDATE_TASK = """UPDATE tasks SET title = $3, version = version + 1, updated_at = now()
    WHERE id = $1 AND version = $2 AND deleted_at IS NULL RETURNING *"""
INSERT_EVENT = """INSERT INTO task_events
        (board_id, seq, task_id, type, actor_id, payload, correlation_id, metadata)
    VALUES ($1, $2, $3, 'task.updated', $4, $5::jsonb, $6, '{}'::jsonb)
    RETURNING event_id, seq, created_at"""


@dataclass(frozen=True, slots=True)
class HubRun:
    edits_per_s: float
    ack_p50_ms: float | None
    ack_p99_ms: float | None
    conflicts: int
    errors: str
    deliveries_per_s: float
    delivery_p99_ms: float | None
    server_cpu_frac: float
    editors_cpu_frac: float
    watchers_cpu_frac: float
    setup_s: float

    @property
    def generator_cpu_frac(self) -> float:
        """Both generator processes share one core: their sum is that core's load."""
        return self.editors_cpu_frac + self.watchers_cpu_frac


@dataclass(frozen=True, slots=True)
class SqlRun:
    edits_per_s: float
    p50_ms: float | None
    p99_ms: float | None
    conflicts: int


def run_hub(
    stack: HubStack, server_core: int | None, generator_core: int | None, plan: Plan
) -> HubRun:
    """The watchers and the editors are two Node processes on the generator core: in
    one event loop, an editor's ack would wait behind the watchers' deliveries and
    the ack p50 would time the generator, not the hub."""
    hub = stack.start_hub(server_core)
    try:
        args = ["--urls", hub.url, "--fixture", str(stack.fixture_file())]
        args += ["--editors", str(plan.editors), "--watchers", str(plan.watchers)]
        args += ["--duration", str(plan.duration), "--warmup", str(plan.warmup)]
        with _watchers(node_command("edits.js", *args, "--role", "watchers"), generator_core) as w:
            driven = drive(
                node_command("edits.js", *args, "--role", "editors"),
                generator_core,
                [hub],
                on_line=w.relay,
            )
            watched = w.result()
    finally:
        hub.stop()
    r = driven.result
    wall = number(r, "wall_s")
    setup = next((line for line in driven.lines if line.get("event") == "setup"), {})
    errors = r.get("errors") or {}
    return HubRun(
        edits_per_s=number(r, "edits_per_s"),
        ack_p50_ms=optional(r, "ack_p50_ms"),
        ack_p99_ms=optional(r, "ack_p99_ms"),
        conflicts=int(number(r, "conflicts")),
        errors=json.dumps(errors) if errors else "",
        deliveries_per_s=number(watched, "deliveries_per_s"),
        delivery_p99_ms=optional(watched, "delivery_p99_ms"),
        server_cpu_frac=driven.server_cpu_s[0] / wall,
        editors_cpu_frac=number(r, "generator_cpu_frac"),
        watchers_cpu_frac=number(watched, "generator_cpu_frac"),
        setup_s=number(setup, "seconds") if setup else 0.0,
    )


class _Watchers:
    """The watchers' process: joined before the editors start, told by the editors'
    start and end lines (relayed to its stdin) which window to count."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc

    def relay(self, line: dict[str, object]) -> None:
        if line.get("event") in ("start", "end"):
            assert self.proc.stdin is not None
            self.proc.stdin.write(f"{line['event']}\n")
            self.proc.stdin.flush()

    def result(self) -> dict[str, object]:
        return _read_until(self.proc, "result")


def _read_until(proc: subprocess.Popen[str], event: str) -> dict[str, object]:
    assert proc.stdout is not None
    for raw in proc.stdout:
        line = json.loads(raw)
        if line.get("event") == event:
            return dict(line)
    raise RuntimeError(f"edits.js --role watchers exited ({proc.wait()}) before its {event}")


@contextmanager
def _watchers(command: Sequence[str], core: int | None) -> Iterator[_Watchers]:
    proc = subprocess.Popen(
        pinned(tuple(command), core),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO_DIR,
    )
    try:
        _read_until(proc, "ready")
        yield _Watchers(proc)
    finally:
        stop_process(proc)


def run_sql(stack: HubStack, generator_core: int | None, plan: Plan) -> SqlRun:
    fx = stack.fixture
    editors = fx.editors[: plan.editors]
    args = [sys.executable, "-m", "bench.edit_path", "baseline"]
    args += ["--dsn", stack.env["DATABASE_URL"], "--board", fx.board_id]
    args += ["--tasks", ",".join(e.task_id for e in editors)]
    args += ["--actors", ",".join(e.user_id for e in editors)]
    args += ["--duration", str(plan.duration), "--warmup", str(plan.warmup)]
    r = drive(args, generator_core).result
    return SqlRun(
        edits_per_s=number(r, "edits_per_s"),
        p50_ms=optional(r, "p50_ms"),
        p99_ms=optional(r, "p99_ms"),
        conflicts=int(number(r, "conflicts")),
    )


@dataclass(frozen=True, slots=True)
class Plan:
    editors: int
    watchers: int
    duration: float
    warmup: float
    reps: int


def run(
    stack: HubStack,
    plan: Plan,
    server_core: int | None,
    generator_core: int | None,
    say: Say,
    fanout: Sequence[Measurement] = (),
) -> Section:
    """`fanout`: the run's fan-out measurements, for what the room emit of an edit costs
    next to a broadcast of the fan-out scenario."""
    hub_runs: list[HubRun] = []
    unwatched_runs: list[HubRun] = []
    sql_runs: list[SqlRun] = []
    unwatched = replace(plan, watchers=0)
    for rep in range(1, plan.reps + 1):
        for runs, this in ((hub_runs, plan), (unwatched_runs, unwatched)):
            say(
                f"edit path {rep}/{plan.reps}: hub, {this.editors} editors, "
                f"{this.watchers} watchers"
            )
            h = run_hub(stack, server_core, generator_core, this)
            runs.append(h)
            say(
                f"edit path {rep}/{plan.reps}: hub {h.edits_per_s:,.0f} edits/s, ack p50 "
                f"{h.ack_p50_ms or 0:.1f} ms p99 {h.ack_p99_ms or 0:.1f} ms "
                f"(setup {h.setup_s:.1f} s, server {h.server_cpu_frac:.0%} of a core, "
                f"generator {h.editors_cpu_frac:.0%} editors + {h.watchers_cpu_frac:.0%} "
                "watchers)"
            )
        say(f"edit path {rep}/{plan.reps}: raw asyncpg, {plan.editors} connections")
        s = run_sql(stack, generator_core, plan)
        sql_runs.append(s)
        say(
            f"edit path {rep}/{plan.reps}: raw SQL {s.edits_per_s:,.0f} edits/s, "
            f"p50 {s.p50_ms or 0:.1f} ms p99 {s.p99_ms or 0:.1f} ms"
        )
    return section(plan, hub_runs, unwatched_runs, sql_runs, fanout)


def emit_cpu_per_1000(watched: HubRun, unwatched: HubRun) -> float | None:
    """Hub CPU seconds per 1000 `task:updated` deliveries to the watchers: what the
    watchers add to each edit (its CPU per edit with them, less its CPU per edit
    without them) over the deliveries it made to them.

    This is the emit's cost at the margin: the once-per-edit work (the handler,
    one encode, one Redis publish) is in the edits without watchers and subtracted,
    while the fan-out's figure spreads its once-per-publish work over the room, a
    small share at 1000 recipients that favours the emit. Without watchers the hub
    runs several times the edits/s, so its fixed cost per edit is probably lower
    there, which leans the other way. None where noise left nothing to measure.
    """
    if not (watched.edits_per_s and unwatched.edits_per_s and watched.deliveries_per_s):
        return None
    alone = unwatched.server_cpu_frac / unwatched.edits_per_s
    added = watched.server_cpu_frac - watched.edits_per_s * alone
    return added / watched.deliveries_per_s * 1000 if added > 0 else None


@dataclass(frozen=True, slots=True)
class FanoutCost:
    """The hub's fan-out cell the room emit is held against."""

    label: str
    cpu_per_1000: Spread


def fanout_cost(
    fanout: Sequence[Measurement], room: int, deliveries_per_s: float
) -> FanoutCost | None:
    """The hub's fan-out to a room of the same size, at the load nearest the edit path's
    deliveries/s: CPU per delivery falls as the load rises (more sends per wakeup),
    so a cell at another load would flatter one side."""
    cells: dict[str, list[Measurement]] = {}
    for m in fanout:
        scenario = m.scenario
        # the watchers are light clients without compression; so must the cell's be
        if (
            m.server == "taskhub"
            and scenario.subscribers == room
            and not scenario.deflate
            and scenario.client == "light"
        ):
            cells.setdefault(scenario.label, []).append(m)
    best: tuple[float, str, Spread] | None = None
    for label, runs in cells.items():
        rate = spread([m.deliveries_per_s for m in runs])
        cost = spread([m.cpu_per_1000 for m in runs])
        if rate is None or cost is None:
            continue
        gap = abs(rate.median - deliveries_per_s)
        if best is None or gap < best[0]:
            best = (gap, label, cost)
    return None if best is None else FanoutCost(best[1], best[2])


def section(
    plan: Plan,
    hub: Sequence[HubRun],
    unwatched: Sequence[HubRun],
    sql: Sequence[SqlRun],
    fanout: Sequence[Measurement] = (),
) -> Section:
    """The issue's scenario, the same editors with nobody else on the board (what the
    path costs without the fan-out of each edit), and the raw SQL baseline."""
    header = [
        "path",
        "runs",
        "edits/s",
        "vs raw SQL",
        "ack p50 ms",
        "vs raw SQL",
        "ack p99 ms",
        "conflicts",
        "task:updated deliveries/s",
        "send-to-watcher p99 ms",
        "server core",
        "generator core (max)",
        "editors / watchers process (max)",
    ]
    sql_rate = [r.edits_per_s for r in sql]
    sql_p50 = [r.p50_ms for r in sql]
    p50_ratio = ratio([r.ack_p50_ms for r in hub], sql_p50)
    unwatched_ratio = ratio([r.ack_p50_ms for r in unwatched], sql_p50)
    errors = "; ".join(sorted({r.errors for r in (*hub, *unwatched) if r.errors}))
    rows = [
        _hub_row(f"hub `task:update`, {plan.watchers} watchers", hub, sql),
        _hub_row("hub `task:update`, no other watchers", unwatched, sql),
        [
            "raw asyncpg (seq + UPDATE + INSERT)",
            f"x{len(sql)}",
            cell(sql_rate, ",.0f"),
            "1.00x",
            cell(sql_p50, ".1f"),
            "1.00x",
            cell([r.p99_ms for r in sql], ".1f"),
            str(sum(r.conflicts for r in sql)),
            "-",
            "-",
            "-",
            "-",
            "-",
        ],
    ]
    about = (
        f"{plan.editors} editors, each a distinct user with an editor role and its own task, "
        f"keep one `task:update` (a new title, `base_version` = the version of its last ack) "
        f"in flight on one board that {plan.watchers} other users (viewers, one connection "
        "each) joined with `board:join`; every client connects with its own JWT "
        "(`bench/edits.js`: the editors are Node `socket.io-client`s, the watchers light "
        "clients on bare websockets, `bench/light_client.js`; they are two processes, so "
        "an ack never waits in the generator behind watcher deliveries). "
        "The hub is `taskhub serve` (`bench/hub_stack.py`); the baseline is "
        f"{plan.editors} asyncpg connections (`python -m bench.edit_path baseline`) each "
        "repeating, on the same tasks of the same board, the transaction an edit needs: "
        "`UPDATE boards ... RETURNING last_seq` (the board's seq and its writers' lock), "
        "`UPDATE tasks ... WHERE id = $1 AND version = $2 ... RETURNING *` and "
        "`INSERT INTO task_events` (the hub takes the seq last, in the INSERT; the "
        "baseline takes it first, where PostgreSQL's queue for the row is about fair: "
        "taken last, a writer that commits and comes straight back overtakes the "
        "waiters, and the p50 of the few edits that do not starve is no round trip). "
        "The second hub row is the same editors on the board "
        "with no watchers: the path without the fan-out of each edit. The three alternate "
        "within each repetition; "
        f"{plan.duration:g} s measured after {plan.warmup:g} s of warm-up. "
        "*send-to-watcher*: from an edit's send to a watcher's `task:updated` of it "
        "(the send time rides in the title; both processes read the same wall clock). "
        "The hub shares the server core with PostgreSQL, Redis and Kafka; the generator's "
        "two processes (together) and the baseline's process run on the generator core, "
        "in turn; *generator core* is the two processes' sum."
    )
    notes = [
        f"Without the {plan.watchers} watchers (the editors still get each other's "
        f"`task:updated`), the hub's ack p50 is {show_ratio(unwatched_ratio)} the raw SQL's: "
        "the rest of the gap above is the fan-out of every edit to the board's room."
    ]
    emit = spread([emit_cpu_per_1000(w, u) for w, u in zip(hub, unwatched, strict=True)])
    delivered = spread([r.deliveries_per_s for r in hub])
    against = fanout_cost(fanout, plan.watchers, delivered.median) if delivered else None
    if emit is not None:
        notes.append(
            f"Room emit: the {plan.watchers} watchers add {emit.show('.4f')} hub CPU s per "
            "1000 `task:updated` deliveries to them (hub CPU per edit with them, less per "
            "edit without them, over their deliveries; each repetition's two hub rows)"
            + (
                f"; the hub's fan-out at {against.label} (the fan-out table's load nearest "
                f"these deliveries/s) spends {against.cpu_per_1000.show('.4f')}. The emit's "
                "figure is a margin (its once-per-edit work is subtracted), the fan-out's "
                "an average over its room, and their payloads differ (a task against a "
                "sequence number and a time)."
                if against
                else "."
            )
        )
    needed = _goal_load(plan, spread(sql_p50), emit)
    if needed:
        notes.append(needed)
    if errors:
        notes.append(f"Edits refused with other codes: {errors}.")
    notes.append(
        "Every write of one board takes that board's seq row lock (the hub from its "
        "event's INSERT, the baseline from its first statement) to its commit, and the hub "
        "runs one transaction of a board at a time per node (`HubNamespace.writing`): at "
        "saturation both are queues, so p50 grows with the number of editors; edits/s is "
        "the board's write throughput."
    )
    return Section(
        title="Edit path",
        about=about,
        table=table(header, rows),
        goal=verdict("ack p50 ≤ 2x the raw SQL round trip's p50", p50_ratio, at_most=2.0)
        + "\n\n"
        + verdict(
            "the room emit adds no more than fan-out costs (hub CPU per delivery, against "
            "the fan-out's at the same room size)",
            emit.median / against.cpu_per_1000.median
            if emit is not None and against is not None and against.cpu_per_1000.median
            else None,
            at_most=1.0,
            caveat=""
            if against is not None and emit is not None
            else "(The watchers' added CPU was lost in noise.)"
            if against is not None
            else f"(The fan-out was not run at N={plan.watchers} with light clients with it.)",
        ),
        notes=(*notes, *generator_note([r.generator_cpu_frac for r in (*hub, *unwatched)])),
    )


def _goal_load(plan: Plan, sql_p50: Spread | None, emit: Spread | None) -> str | None:
    """What the ack p50 goal asks of the hub with every edit fanned out to the room: by
    Little's law, E editors each keeping one edit in flight for 2x the raw p50 make
    E / (2 x p50) edits/s (about: the mean is not the p50, and an editor's pause
    between an ack and its next edit, here next to none, would lower it), each
    delivered to W."""
    if sql_p50 is None or not sql_p50.median or not plan.watchers:
        return None
    edits = plan.editors / (2 * sql_p50.median / 1000)
    deliveries = edits * plan.watchers
    cores = (
        f", {deliveries * emit.median / 1000:.1f} cores of hub CPU for the emit alone "
        "at the cost above"
        if emit
        else ""
    )
    return (
        f"What the ack p50 goal needs: {plan.editors} editors, one edit in flight each, "
        f"answered within 2x the raw SQL p50 ({2 * sql_p50.median:.1f} ms) make about "
        f"{edits:,.0f} edits/s (Little's law), so {deliveries:,.0f} `task:updated` "
        f"deliveries/s to the {plan.watchers} watchers{cores}; the fan-out table's "
        "saturating rows say what one core and this generator reach."
    )


def _hub_row(name: str, runs: Sequence[HubRun], sql: Sequence[SqlRun]) -> list[str]:
    return [
        name,
        f"x{len(runs)}",
        cell([r.edits_per_s for r in runs], ",.0f"),
        show_ratio(ratio([r.edits_per_s for r in runs], [r.edits_per_s for r in sql])),
        cell([r.ack_p50_ms for r in runs], ".1f"),
        show_ratio(ratio([r.ack_p50_ms for r in runs], [r.p50_ms for r in sql])),
        cell([r.ack_p99_ms for r in runs], ".1f"),
        str(sum(r.conflicts for r in runs)),
        cell([r.deliveries_per_s for r in runs], ",.0f")
        if any(r.deliveries_per_s for r in runs)
        else "-",
        cell([r.delivery_p99_ms for r in runs], ".1f"),
        cell([r.server_cpu_frac * 100 for r in runs], ".0f") + " %",
        generator_cell([r.generator_cpu_frac for r in runs]),
        f"{max((r.editors_cpu_frac for r in runs), default=0) * 100:.0f} % / "
        f"{max((r.watchers_cpu_frac for r in runs), default=0) * 100:.0f} %",
    ]


# -- the baseline's own process --------------------------------------------------


async def _baseline(args: argparse.Namespace) -> dict[str, object]:
    tasks = [uuid.UUID(t) for t in args.tasks.split(",")]
    actors = [uuid.UUID(a) for a in args.actors.split(",")]
    board = uuid.UUID(args.board)
    conns = [await asyncpg.connect(args.dsn) for _ in tasks]
    measuring = False
    running = True
    latencies: list[float] = []
    edits = conflicts = 0

    async def editor(conn: asyncpg.Connection, task: uuid.UUID, actor: uuid.UUID) -> None:
        nonlocal edits, conflicts
        version = await conn.fetchval("SELECT version FROM tasks WHERE id = $1", task)
        count = 0
        while running:
            count += 1
            started = time.perf_counter()
            async with conn.transaction():
                seq = await conn.fetchval(NEXT_SEQ, board)
                row = await conn.fetchrow(UPDATE_TASK, task, version, f"SQL edit {count}")
                if row is not None:
                    changes = {"title": {"before": None, "after": row["title"]}}
                    payload = {"version": row["version"], "changes": changes, "task": dict(row)}
                    await conn.fetchrow(
                        INSERT_EVENT,
                        board,
                        seq,
                        task,
                        actor,
                        json.dumps(payload, default=str),
                        "bench-sql",
                    )
            took = (time.perf_counter() - started) * 1000
            if row is None:
                conflicts += measuring
                version = await conn.fetchval("SELECT version FROM tasks WHERE id = $1", task)
                continue
            version = row["version"]
            if measuring:
                edits += 1
                latencies.append(took)

    loops = [
        asyncio.create_task(editor(c, t, a)) for c, t, a in zip(conns, tasks, actors, strict=True)
    ]
    try:
        await asyncio.sleep(args.warmup)
        measuring = True
        _line({"event": "start"})
        started = time.perf_counter()
        await asyncio.sleep(args.duration)
        measuring = False
        wall = time.perf_counter() - started
        _line({"event": "end"})
        running = False
        await asyncio.gather(*loops)
    finally:
        for loop in loops:
            loop.cancel()
        for conn in conns:
            await conn.close()
    latencies.sort()

    def pct(p: float) -> float | None:
        return (
            latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))] if latencies else None
        )

    return {
        "event": "result",
        "wall_s": wall,
        "edits": edits,
        "edits_per_s": edits / wall,
        "p50_ms": pct(50),
        "p99_ms": pct(99),
        "conflicts": conflicts,
    }


def _line(obj: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench.edit_path", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    base = sub.add_parser("baseline", help="the raw asyncpg edit loop (one JSON result line)")
    base.add_argument("--dsn", required=True)
    base.add_argument("--board", required=True)
    base.add_argument("--tasks", required=True, help="comma-separated task ids, one per editor")
    base.add_argument("--actors", required=True, help="comma-separated user ids, one per task")
    base.add_argument("--duration", type=float, default=5.0)
    base.add_argument("--warmup", type=float, default=1.0)
    args = parser.parse_args(argv)
    _line(asyncio.run(_baseline(args)))


if __name__ == "__main__":
    main()
