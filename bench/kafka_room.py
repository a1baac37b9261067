"""Kafka to room: a record another service produces on `task_events` until M members of
the board's room have it.

The producer is a plain aiokafka producer in the bench process (another process than
the hub, as another service would be), sending the record workers/bridge.py accepts
for a foreign task event: a `TaskEventRecord` (protocol/records.py) of type
`task.updated` about a stored task of the board, key = task_id, no seq. The bridge
is `taskhub worker bridge` (its Procfile line) and the room is served by `taskhub
serve`: the record goes broker -> bridge (kept as the board's next event in
PostgreSQL, claimed in Redis) -> Socket.IO Redis channel -> hub -> members. Each
record's correlation_id carries its send time (wall clock), which the listeners
(bench/room_listener.js) subtract from their receipt time.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from aiokafka import AIOKafkaProducer

from bench.hub_report import Section, cell, spread, table, verdict
from bench.hub_stack import HubStack, Say, drive, node_command, number, optional, stop_process
from bench.procstat import cpu_seconds
from protocol.records import TaskEventRecord, encode

GOAL_P99_MS = 50.0


@dataclass(frozen=True, slots=True)
class Plan:
    members: int
    records: int
    rate: float  # records/s
    reps: int


@dataclass(frozen=True, slots=True)
class KafkaRun:
    deliveries: int
    expected: int
    p50_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    warm_s: float
    hub_cpu_frac: float | None  # from the first warm-up receipt to the result
    bridge_cpu_frac: float | None


class Producer(threading.Thread):
    """Plays the other service: warm-up records until the listeners hear one, then the
    measured records at a fixed rate. A thread with its own loop, because the bench
    reads the listeners' lines on the main thread meanwhile."""

    def __init__(
        self, bootstrap: str, topic: str, board_id: str, task_id: str, run_id: str, plan: Plan
    ) -> None:
        super().__init__(name="bench-kafka-producer", daemon=True)
        self.bootstrap, self.topic, self.plan, self.run_id = bootstrap, topic, plan, run_id
        self.board_id, self.task_id = uuid.UUID(board_id), uuid.UUID(task_id)
        self.warm = threading.Event()
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.warm_s = 0.0

    def run(self) -> None:
        try:
            asyncio.run(self._produce())
        except BaseException as exc:  # handed to the main thread, which raises it
            self.error = exc

    def record(self, kind: str) -> bytes:
        stamp = f"{kind}:{self.run_id}:{time.time() * 1000:.3f}"
        return encode(
            TaskEventRecord(
                event_id=uuid.uuid4(),
                type="task.updated",
                occurred_at=datetime.now(UTC),
                source="bench-producer",
                correlation_id=stamp,
                board_id=self.board_id,
                task_id=self.task_id,
                changes={"title": {"before": "bench", "after": "bench"}},
            )
        )

    async def _produce(self) -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap, acks="all", enable_idempotence=False
        )
        await producer.start()
        key = str(self.task_id).encode()
        try:
            started = time.monotonic()
            # the bridge's consumer group forms after it starts: until then records wait
            while not self.warm.is_set() and not self.stop.is_set():
                await producer.send_and_wait(self.topic, self.record("bench-warm"), key=key)
                await asyncio.sleep(0.5)
            self.warm_s = time.monotonic() - started
            await asyncio.sleep(1.0)  # let the warm-up records drain from the room
            interval = 1 / self.plan.rate
            began = time.monotonic()
            for sent in range(self.plan.records):
                if self.stop.is_set():
                    break
                await asyncio.sleep(max(0.0, began + sent * interval - time.monotonic()))
                await producer.send_and_wait(self.topic, self.record("bench"), key=key)
        finally:
            await producer.stop()


def _run(
    stack: HubStack, plan: Plan, server_core: int | None, generator_core: int | None, say: Say
) -> KafkaRun:
    fx = stack.fixture
    run_id = uuid.uuid4().hex[:8]
    hub = stack.start_hub(server_core)
    bridge = stack.start_worker("bridge", server_core)
    producer = Producer(
        stack.env["KAFKA_BOOTSTRAP_SERVERS"],
        "task_events",
        fx.board_id,
        fx.editors[0].task_id,
        run_id,
        plan,
    )

    samples: list[tuple[float, float, float]] = []  # (wall, hub cpu, bridge cpu)

    def sample() -> None:
        samples.append((time.monotonic(), hub.cpu(), cpu_seconds(bridge.pid)))

    def on_line(line: dict[str, object]) -> None:
        if line.get("event") == "ready":
            say(f"kafka to room: {plan.members} members joined; producing warm-up records")
            producer.start()
        elif line.get("event") == "warm":
            sample()
            producer.warm.set()
        elif line.get("event") == "result":
            sample()

    try:
        args = ["--url", hub.url, "--fixture", str(stack.fixture_file())]
        args += ["--members", str(plan.members), "--records", str(plan.records)]
        args += ["--run", run_id, "--timeout", str(60 + plan.records / plan.rate)]
        r = drive(node_command("room_listener.js", *args), generator_core, on_line=on_line).result
    finally:
        producer.stop.set()
        if producer.is_alive():
            producer.join(30)
        stop_process(bridge)
        hub.stop()
    if producer.error is not None:
        raise RuntimeError(f"the Kafka producer failed: {producer.error!r}")
    return KafkaRun(
        deliveries=int(number(r, "deliveries")),
        expected=int(number(r, "expected")),
        p50_ms=optional(r, "p50_ms"),
        p99_ms=optional(r, "p99_ms"),
        max_ms=optional(r, "max_ms"),
        warm_s=producer.warm_s,
        hub_cpu_frac=_share(samples, 1),
        bridge_cpu_frac=_share(samples, 2),
    )


def _share(samples: Sequence[tuple[float, float, float]], which: int) -> float | None:
    if len(samples) != 2 or samples[1][0] <= samples[0][0]:
        return None
    return (samples[1][which] - samples[0][which]) / (samples[1][0] - samples[0][0])


def run(
    stack: HubStack, plan: Plan, server_core: int | None, generator_core: int | None, say: Say
) -> Section:
    if stack.fixture.editors == () or len(stack.fixture.members) < plan.members:
        raise RuntimeError("kafka to room needs a task and enough board members")
    runs: list[KafkaRun] = []
    for rep in range(1, plan.reps + 1):
        say(f"kafka to room {rep}/{plan.reps}: {plan.records} records to {plan.members} members")
        result = _run(stack, plan, server_core, generator_core, say)
        runs.append(result)
        say(
            f"kafka to room {rep}/{plan.reps}: {result.deliveries:,}/{result.expected:,} "
            f"delivered, p50 {result.p50_ms or 0:.1f} ms, p99 {result.p99_ms or 0:.1f} ms "
            f"(bridge warm after {result.warm_s:.1f} s)"
        )
    return section(plan, runs)


def _percent(fractions: Sequence[float | None]) -> str:
    found = [f * 100 for f in fractions if f is not None]
    return cell(found, ".0f") + " %" if found else "-"


def section(plan: Plan, runs: Sequence[KafkaRun]) -> Section:
    header = [
        "runs",
        "records x members",
        "delivered",
        "p50 ms",
        "p99 ms",
        "max ms",
        "bridge warm-up s",
        "hub core",
        "bridge core",
    ]
    delivered = [r.deliveries / r.expected * 100 for r in runs if r.expected]
    rows = [
        [
            f"x{len(runs)}",
            f"{plan.records} x {plan.members}",
            cell(delivered, ".1f") + " %",
            cell([r.p50_ms for r in runs], ".1f"),
            cell([r.p99_ms for r in runs], ".1f"),
            cell([r.max_ms for r in runs], ".1f"),
            cell([r.warm_s for r in runs], ".1f"),
            _percent([r.hub_cpu_frac for r in runs]),
            _percent([r.bridge_cpu_frac for r in runs]),
        ]
    ]
    about = (
        f"A plain aiokafka producer in the bench process sends {plan.records} `task.updated` "
        f"records at {plan.rate:g}/s on `task_events` (the foreign-event format of "
        "`protocol.records.TaskEventRecord`: no seq, about a stored task of the board, key = "
        "task_id). `taskhub worker bridge` keeps each as the board's next event and emits "
        "it; `taskhub serve` (both pinned to the server core) delivers `task:updated` to "
        f"{plan.members} members of the board (distinct users with JWTs, `board:join`; "
        "`bench/room_listener.js` on the generator core, light clients on bare websockets "
        "that read the stamp from the frame's text). Latency is from the producer's "
        "send (its wall-clock stamp in `correlation_id`) to each member's receipt, over "
        "every delivery; *hub core* / *bridge core*: the share of a core each process used "
        "from the first warm-up receipt to the last delivery. Before measuring, warm-up "
        "records are produced until one reaches the room (the bridge's consumer group "
        "forming). The rate is low on purpose: the goal is a record's latency, not the "
        "bridge's throughput (`--kafka-rate` changes it)."
    )
    p99 = spread([r.p99_ms for r in runs])
    missing = sum(r.expected - r.deliveries for r in runs)
    notes = [f"{missing:,} deliveries never arrived within the timeout."] if missing else []
    return Section(
        title="Kafka to room",
        about=about,
        table=table(header, rows),
        goal=verdict(
            f"p99 ≤ {GOAL_P99_MS:g} ms",
            p99.median if p99 else None,
            at_most=GOAL_P99_MS,
            unit=" ms",
        ),
        notes=tuple(notes),
    )
