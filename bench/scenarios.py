"""A fan-out scenario and one measured run of it: the generator's figures plus the
server CPU spent between the generator's start and end lines."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass

from bench.servers import BENCH_DIR, RunningServer, pinned

# Above this share of its core the generator, not the server, may be what limits.
GENERATOR_LIMIT = 0.9


@dataclass(frozen=True, slots=True)
class Scenario:
    subscribers: int
    rate: int | None  # offered deliveries/s; None saturates
    duration: float
    warmup: float
    window: int = 16
    # off: the same uncompressed frames from every server (see DEFLATE_NOTE in document.py)
    deflate: bool = False
    # the subscribers' client: "light" (bench/light_client.js) or "official" (socket.io-client)
    client: str = "light"

    @property
    def label(self) -> str:
        load = f"{self.rate:,}/s" if self.rate else "saturating"
        return f"N={self.subscribers} {load}"


@dataclass(frozen=True, slots=True)
class Measurement:
    server: str
    scenario: Scenario
    deliveries: int
    deliveries_per_s: float
    p50_ms: float | None
    p99_ms: float | None
    server_cpu_s: float
    aux_cpu_s: float
    generator_cpu_frac: float
    wall_s: float

    @property
    def cpu_per_1000(self) -> float | None:
        """Server CPU seconds per 1000 deliveries; helper processes (Redis) not included."""
        return self.server_cpu_s / self.deliveries * 1000 if self.deliveries else None

    @property
    def server_cpu_frac(self) -> float:
        return self.server_cpu_s / self.wall_s

    @property
    def generator_bound(self) -> bool:
        return self.generator_cpu_frac >= GENERATOR_LIMIT


def generator_command(server: RunningServer, scenario: Scenario) -> tuple[str, ...]:
    args = ["--url", server.url, "--path", server.spec.socketio_path]
    args += ["--subscribers", str(scenario.subscribers), "--duration", str(scenario.duration)]
    args += ["--warmup", str(scenario.warmup), "--window", str(scenario.window)]
    args += ["--deflate", "1" if scenario.deflate else "0", "--client", scenario.client]
    if scenario.rate:
        args += ["--mode", "rate", "--rate", str(scenario.rate)]
    else:
        args += ["--mode", "saturate"]
    return ("node", str(BENCH_DIR / "generator.js"), *args)


def measure(server: RunningServer, scenario: Scenario, core: int | None) -> Measurement:
    proc = subprocess.Popen(
        pinned(generator_command(server, scenario), core), stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    cpu0 = aux0 = cpu1 = aux1 = 0.0
    result: dict[str, object] = {}
    for line in proc.stdout:
        event = json.loads(line)
        if event["event"] == "start":
            cpu0, aux0 = server.cpu(), server.aux_cpu()
        elif event["event"] == "end":
            cpu1, aux1 = server.cpu(), server.aux_cpu()
        elif event["event"] == "result":
            result = event
    if proc.wait() != 0 or not result:
        raise RuntimeError(f"generator failed against {server.spec.name} ({scenario.label})")
    return Measurement(
        server=server.spec.name,
        scenario=scenario,
        deliveries=int(_number(result, "deliveries")),
        deliveries_per_s=_number(result, "deliveries_per_s"),
        p50_ms=_optional(result, "p50_ms"),
        p99_ms=_optional(result, "p99_ms"),
        server_cpu_s=cpu1 - cpu0,
        aux_cpu_s=aux1 - aux0,
        generator_cpu_frac=_number(result, "generator_cpu_frac"),
        wall_s=_number(result, "wall_s"),
    )


def _optional(result: dict[str, object], key: str) -> float | None:
    """A latency is null when nothing was received in the window."""
    return None if result.get(key) is None else _number(result, key)


def _number(result: dict[str, object], key: str) -> float:
    value = result.get(key)
    if not isinstance(value, int | float):
        raise RuntimeError(f"generator result has no number {key!r}: {value!r}")
    return float(value)
