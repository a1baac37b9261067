"""The real hub for the hub scenarios: embedded PostgreSQL, Redis and Kafka, seeded users,
and `taskhub serve` / `taskhub worker` processes pinned with taskset.

The hub scenarios (edit path, connect storm, idle, two nodes, Kafka to room) measure
the product as it is deployed, not a bench server: each hub node is the `taskhub
serve` command of the Procfile, configured by the environment only, started against
the embedded servers of `hub/devstack.py` (the ones `make run` and the tests use).
The services are started once per bench run, pinned to the server core like the
hub, since on a deployment they are the server side too; the data they hold is
seeded once (users, their sessions and JWTs, one board with its editors' tasks)
through the storage modules, so the hub sees rows exactly as its own writes make them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import secrets
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from bench.servers import BENCH_DIR, REPO_DIR, RunningServer, ServerSpec, pinned
from handlers import passwords, task_service
from hub.config import rate_limit_env
from hub.devstack import EmbeddedStack, free_port
from hub.tokens import JwtAccessTokens
from protocol.models import BoardRole
from protocol.payloads import TaskCreate
from storage import boards, sessions, users
from storage.db import create_pool, transaction
from storage.migrate import migrate
from storage.task_events import Origin

Say = Callable[[str], None]

# What a hub process inherits from the bench's environment: the process basics, and the
# tuning knobs bench/taskhub_server.py passes on too (one export changes every hub the
# bench runs); every other setting is set here.
_PASSED_ENV = frozenset(
    {"PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR", "TZ", "USER"}
    | {"PING_INTERVAL", "PING_TIMEOUT", "EVENT_LOOP"}
)

# Every client of a bench shares one address and connects or edits as fast as it
# can: limits that are checked on every action (their cost is in the figures) but
# never reached.
UNREACHABLE_RATE_LIMITS = rate_limit_env("1000000/1") | {"MAX_CONNECTIONS_PER_USER": "100000"}

# Tokens outlive the whole bench run (the hub's own default TTL is 15 minutes).
TOKEN_TTL = 24 * 3600


@dataclass(frozen=True, slots=True)
class Editor:
    token: str
    user_id: str
    task_id: str  # each editor edits its own task, so no two edits conflict


@dataclass(frozen=True, slots=True)
class Fixture:
    """What the seeding made: one board and the users the scenarios connect as.

    `members` are viewers of the board (watchers, room members); `editors` are its
    editors; `users` are every seeded user (members and editors included), each
    distinct, each with its own login session, for the connection scenarios.
    """

    board_id: str
    editors: tuple[Editor, ...]
    members: tuple[str, ...]
    users: tuple[str, ...]


def allow_open_files(needed: int, say: Say) -> None:
    """Raise this process's soft RLIMIT_NOFILE so its children (the Node generator holding
    thousands of sockets, the servers accepting them) inherit enough descriptors.

    Node cannot raise its own limit, and a shell's default soft limit (often 1024)
    would make the idle scenario fail with EMFILE rather than measure anything.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return
    wanted = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    say(f"raised the open-files limit from {soft} to {wanted} (ulimit -n) for the generators")
    if wanted < needed:
        say(f"warning: the hard limit {hard} is below the {needed} descriptors needed")


@contextlib.contextmanager
def on_core(core: int | None) -> Iterator[None]:
    """Run the body with this process pinned to `core`: whatever it starts inherits it.

    The embedded servers fork their own helpers (PostgreSQL's backends), which
    `taskset` on one pid would not cover; the affinity inherited at fork does.
    """
    if core is None:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {core})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


class HubStack:
    """Embedded servers + a seeded database, shared by every hub scenario of a run."""

    def __init__(
        self, say: Say, core: int | None, *, users: int, editors: int, members: int
    ) -> None:
        self.say = say
        self.core = core
        self._counts = (users, editors, members)
        self._tmp = tempfile.TemporaryDirectory(prefix="taskhub-bench-hub-")
        self.folder = Path(self._tmp.name)
        self._stack = EmbeddedStack(self.folder / "data", persistent=False)
        self.env: dict[str, str] = {}
        self._fixture: Fixture | None = None
        self._nodes = 0

    @property
    def fixture(self) -> Fixture:
        assert self._fixture is not None, "HubStack used outside its with-block"
        return self._fixture

    def __enter__(self) -> HubStack:
        try:
            with on_core(self.core):
                self.env = self._stack.fill_env({}, self.say)
            self.env["JWT_SECRET"] = secrets.token_urlsafe(48)
            started = time.monotonic()
            self._fixture = asyncio.run(self._seed())
            self.say(f"seeded the hub's database in {time.monotonic() - started:.1f} s")
        except BaseException:
            self._stop()
            raise
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if error is not None:
            # the folder (and the hub's logs in it) goes with the stack: show them first
            for log in sorted(self.folder.glob("*.log")):
                self.say(f"{log.name}, last lines:\n{_tail(log)}")
        self._stop()

    def _stop(self) -> None:
        self.say("stopping the embedded PostgreSQL, Redis and Kafka")
        self._stack.stop()
        self._tmp.cleanup()

    # -- seeding ---------------------------------------------------------------

    async def _seed(self) -> Fixture:
        """Users with a live session each, one board, and one task per editor.

        All through the storage modules and task_service, so rows (the board's
        channel, the `task.created` events, the seq) are what the hub makes.
        """
        dsn = self.env["DATABASE_URL"]
        await migrate(dsn)
        n_users, n_editors, n_members = self._counts
        tokens = JwtAccessTokens(self.env["JWT_SECRET"], "HS256", TOKEN_TTL)
        # nobody logs in with a password here; one hash serves every user
        password_hash = await passwords.hash_password(secrets.token_urlsafe(16), 4)
        pool = await create_pool(dsn, min_size=1, max_size=2)
        try:
            async with transaction(pool) as conn:
                owner = await users.create(
                    conn, "owner@bench.invalid", "Bench Owner", password_hash
                )
                board = await boards.create(conn, "Bench board", owner.id)
                everyone: list[str] = []
                ids: list[uuid.UUID] = []
                for number in range(n_users):
                    if number % 1000 == 0:
                        self.say(f"seeding users {number}-{min(number + 999, n_users - 1)}")
                    user = await users.create(
                        conn, f"user{number}@bench.invalid", f"Bench User {number}", password_hash
                    )
                    session = await sessions.create(
                        conn, user.id, secrets.token_urlsafe(32), TOKEN_TTL
                    )
                    everyone.append(tokens.issue(user.id, session.family_id))
                    ids.append(user.id)
                editors: list[Editor] = []
                for number in range(n_editors):
                    await boards.add_member(conn, board.id, ids[number], BoardRole.EDITOR)
                    created = await task_service.create(
                        conn,
                        owner.id,
                        TaskCreate(board_id=board.id, title=f"Bench task {number}"),
                        Origin("bench-seed"),
                    )
                    editors.append(Editor(everyone[number], str(ids[number]), str(created.task_id)))
                members = range(n_editors, n_editors + n_members)
                for number in members:
                    await boards.add_member(conn, board.id, ids[number], BoardRole.VIEWER)
        finally:
            await pool.close()
        return Fixture(
            board_id=str(board.id),
            editors=tuple(editors),
            members=tuple(everyone[n] for n in members),
            users=tuple(everyone),
        )

    def write_json(self, name: str, value: object) -> Path:
        """Hand tokens to a Node generator through a file (too long for a command line)."""
        path = self.folder / name
        path.write_text(json.dumps(value), encoding="utf-8")
        return path

    def fixture_file(self) -> Path:
        """The board, its editors and members, as the Node generators read them."""
        fx = self.fixture
        return self.write_json(
            "fixture.json",
            {
                "board_id": fx.board_id,
                "editors": [{"token": e.token, "task_id": e.task_id} for e in fx.editors],
                "members": list(fx.members),
            },
        )

    # -- processes -------------------------------------------------------------

    def node_env(self, port: int, **overrides: str) -> dict[str, str]:
        """The environment of one hub node: settings as production reads them.

        Little is taken from the bench's own environment (_PASSED_ENV): a
        Taskhub setting exported in the shell (a DATABASE_URL, EMBEDDED_WORKERS) must
        not point a bench node elsewhere or change what it runs. LOG_LEVEL=WARNING
        keeps a log line per connect out of the figures (the Node peer logs nothing);
        the embedded broker refuses idempotent producers.
        """
        self._nodes += 1
        return {
            **{k: v for k, v in os.environ.items() if k in _PASSED_ENV},
            **self.env,
            "PORT": str(port),
            "HOST": "127.0.0.1",
            "NODE_ID": f"bench-node-{self._nodes}-{uuid.uuid4().hex[:6]}",
            "LOG_LEVEL": "WARNING",
            "LOG_FORMAT": "text",
            "KAFKA_IDEMPOTENCE": "false",
            "PYTHONPATH": str(REPO_DIR),
            **UNREACHABLE_RATE_LIMITS,
            **overrides,
        }

    def start_hub(self, core: int | None, name: str = "hub", **overrides: str) -> RunningServer:
        """`taskhub serve` pinned to `core`, ready once /readyz answers 200."""
        port = free_port()
        command = (sys.executable, "-m", "hub.cli", "serve")
        log = (self.folder / f"{name}-{port}.log").open("w", encoding="utf-8")
        proc = subprocess.Popen(
            pinned(command, core),
            cwd=REPO_DIR,
            env=self.node_env(port, **overrides),
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
        log.close()
        server = RunningServer(ServerSpec(name, command), proc, port, ())
        try:
            _wait_ready(server, self.folder / f"{name}-{port}.log")
        except BaseException:
            server.stop()
            raise
        return server

    def start_worker(self, worker: str, core: int | None) -> subprocess.Popen[str]:
        """`taskhub worker NAME`, as its Procfile line runs it."""
        command = (sys.executable, "-m", "hub.cli", "worker", worker)
        log = (self.folder / f"worker-{worker}.log").open("w", encoding="utf-8")
        proc = subprocess.Popen(
            pinned(command, core),
            cwd=REPO_DIR,
            env=self.node_env(0),
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
        log.close()
        return proc


def _wait_ready(server: RunningServer, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"the hub exited ({server.proc.returncode}): {_tail(log)}")
        try:
            with urllib.request.urlopen(server.url + "/readyz", timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the hub was not ready within {timeout:.0f} s: {_tail(log)}")


def _tail(log: Path, lines: int = 20) -> str:
    try:
        return "\n".join(log.read_text(encoding="utf-8").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def stop_process(proc: subprocess.Popen[str], timeout: float = 15) -> None:
    """SIGTERM, then SIGKILL if it does not go: no bench process outlives its scenario."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass(frozen=True, slots=True)
class Driven:
    """A generator's result line, the CPU the watched servers spent between its start
    and end lines, and every other line it printed (setup times, readiness)."""

    result: dict[str, object]
    server_cpu_s: tuple[float, ...]
    lines: tuple[dict[str, object], ...]


def node_command(script: str, *args: str) -> tuple[str, ...]:
    return ("node", str(BENCH_DIR / script), *args)


def drive(
    command: Sequence[str],
    core: int | None,
    watched: Sequence[RunningServer] = (),
    on_line: Callable[[dict[str, object]], None] | None = None,
    timeout: float = 600,
) -> Driven:
    """Run a generator pinned to `core` until it prints its result.

    `on_line` sees every line as it comes, so a scenario can act on one (produce
    Kafka records once the listeners say they are ready).
    """
    label = " ".join(Path(part).name for part in command[:4])
    proc = subprocess.Popen(
        pinned(tuple(command), core), stdout=subprocess.PIPE, text=True, cwd=REPO_DIR
    )
    assert proc.stdout is not None
    cpu0: list[float] = []
    cpu1: list[float] = []
    lines: list[dict[str, object]] = []
    result: dict[str, object] = {}
    deadline = time.monotonic() + timeout
    try:
        for raw in proc.stdout:
            line = json.loads(raw)
            lines.append(line)
            if line.get("event") == "start":
                cpu0 = [s.cpu() for s in watched]
            elif line.get("event") == "end":
                cpu1 = [s.cpu() for s in watched]
            elif line.get("event") == "result":
                result = line
            if on_line is not None:
                on_line(line)
            if time.monotonic() > deadline:
                raise RuntimeError(f"{label} ran past {timeout:.0f} s")
        if proc.wait(30) != 0 or not result:
            raise RuntimeError(f"{label} failed (exit {proc.returncode})")
    finally:
        stop_process(proc)
    spent = tuple(b - a for a, b in zip(cpu0, cpu1, strict=True)) if cpu1 else ()
    return Driven(result, spent, tuple(lines))


def number(result: dict[str, object], key: str) -> float:
    value = result.get(key)
    if not isinstance(value, int | float):
        raise RuntimeError(f"generator result has no number {key!r}: {value!r}")
    return float(value)


def optional(result: dict[str, object], key: str) -> float | None:
    """A latency is null when nothing arrived in the window."""
    return None if result.get(key) is None else number(result, key)
