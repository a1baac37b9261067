"""The three servers under test, each started pinned to its own core and stopped after.

Pinning keeps the generator (on the other core) from stealing the server's CPU,
so CPU per delivery and latency are the server's own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench.procstat import cpu_seconds
from hub.devstack import free_port

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent


@dataclass(frozen=True, slots=True)
class ServerSpec:
    name: str
    command: tuple[str, ...]
    socketio_path: str = "/socket.io/"


SERVERS: tuple[ServerSpec, ...] = (
    ServerSpec("node", ("node", str(BENCH_DIR / "node_server.js"))),
    ServerSpec("stock", (sys.executable, "-m", "bench.stock_server")),
    ServerSpec("taskhub", (sys.executable, "-m", "bench.taskhub_server")),
)


@dataclass
class RunningServer:
    spec: ServerSpec
    proc: subprocess.Popen[str]
    port: int
    aux_pids: tuple[int, ...]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cpu(self) -> float:
        return cpu_seconds(self.proc.pid)

    def aux_cpu(self) -> float:
        return sum(cpu_seconds(pid) for pid in self.aux_pids)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def pinned(command: tuple[str, ...], core: int | None) -> list[str]:
    return ["taskset", "-c", str(core), *command] if core is not None else list(command)


def start(spec: ServerSpec, core: int | None, timeout: float = 60) -> RunningServer:
    """Start `spec` and wait for its ready line; `taskset` execs, so the pid is the server's."""
    port = free_port()
    env = {**os.environ, "PORT": str(port), "PYTHONPATH": str(REPO_DIR)}
    proc = subprocess.Popen(
        pinned(spec.command, core),
        cwd=REPO_DIR,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{spec.name} server exited ({proc.wait()}) before it was ready")
        try:
            ready = json.loads(line)
        except json.JSONDecodeError:
            continue
        if ready.get("ready"):
            return RunningServer(spec, proc, port, tuple(ready.get("aux_pids", ())))
    proc.kill()
    raise RuntimeError(f"{spec.name} server was not ready within {timeout:.0f}s")
