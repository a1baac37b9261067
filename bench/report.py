"""Turning repetitions into the table: median and min-max per server and scenario,
with ratios against Node and stock python-socketio measured in the same run."""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import statistics
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bench.scenarios import Measurement, Scenario
from bench.servers import BENCH_DIR


@dataclass(frozen=True, slots=True)
class Spread:
    median: float
    low: float
    high: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread | None:
        return Spread(statistics.median(values), min(values), max(values)) if values else None

    def show(self, fmt: str) -> str:
        if self.low == self.high:
            return format(self.median, fmt)
        return f"{self.median:{fmt}} ({self.low:{fmt}}-{self.high:{fmt}})"


def _spread(
    runs: Sequence[Measurement], get: Callable[[Measurement], float | None]
) -> Spread | None:
    return Spread.of([v for v in map(get, runs) if v is not None])


def _ratio(mine: Spread | None, peer: Spread | None) -> str:
    if mine is None or peer is None or peer.median == 0:
        return "-"
    return f"{mine.median / peer.median:.2f}x"


def _cell(spread: Spread | None, fmt: str) -> str:
    return spread.show(fmt) if spread else "-"


HEADER = (
    "| scenario | server | deliveries/s | vs node | vs stock | CPU s / 1000 deliveries "
    "| vs node | vs stock | p50 ms | p99 ms | server core | generator core (max) |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|\n"
)


def table(measurements: Sequence[Measurement], scenarios: Sequence[Scenario]) -> str:
    """Markdown; 'gen-bound' marks a run whose generator used ≥ 90 % of its core."""
    lines = [HEADER]
    servers = list(dict.fromkeys(m.server for m in measurements))
    for scenario in scenarios:
        runs = {
            s: [m for m in measurements if m.scenario == scenario and m.server == s]
            for s in servers
        }
        rate = {s: _spread(r, lambda m: m.deliveries_per_s) for s, r in runs.items()}
        cpu = {s: _spread(r, lambda m: m.cpu_per_1000) for s, r in runs.items()}
        for server in servers:
            mine = runs[server]
            if not mine:
                continue
            gen = max(m.generator_cpu_frac for m in mine)
            bound = " gen-bound" if any(m.generator_bound for m in mine) else ""
            cells = [
                scenario.label,
                f"{server} x{len(mine)}",
                _cell(rate[server], ",.0f"),
                _ratio(rate[server], rate.get("node")),
                _ratio(rate[server], rate.get("stock")),
                _cell(cpu[server], ".4f"),
                _ratio(cpu[server], cpu.get("node")),
                _ratio(cpu[server], cpu.get("stock")),
                _cell(_spread(mine, lambda m: m.p50_ms), ".1f"),
                _cell(_spread(mine, lambda m: m.p99_ms), ".1f"),
                _cell(_spread(mine, lambda m: m.server_cpu_frac * 100), ".0f") + " %",
                f"{gen * 100:.0f} %{bound}",
            ]
            lines.append("| " + " | ".join(cells) + " |\n")
    return "".join(lines)


def machine() -> dict[str, str]:
    model = "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    node = subprocess.run(["node", "--version"], capture_output=True, text=True, check=False)
    with open(BENCH_DIR / "node_modules" / "socket.io" / "package.json", encoding="utf-8") as pkg:
        socketio_js = json.load(pkg)["version"]
    return {
        "cores": str(os.cpu_count()),
        "cpu": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "python-socketio": importlib.metadata.version("python-socketio"),
        "python-engineio": importlib.metadata.version("python-engineio"),
        "aiohttp": importlib.metadata.version("aiohttp"),
        "node": node.stdout.strip(),
        "socket.io (server and client)": socketio_js,
    }
