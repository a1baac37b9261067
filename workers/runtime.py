"""How a worker process lives: run until SIGTERM/SIGINT, then finish and return."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Coroutine
from typing import Any

from workers.deps import WorkerDeps

log = logging.getLogger(__name__)

WorkerMain = Callable[[WorkerDeps, asyncio.Event], Coroutine[Any, Any, None]]


async def run_until_signalled(name: str, main: WorkerMain, deps: WorkerDeps) -> None:
    """Run `main` until it returns or a stop signal arrives.

    The signal only sets `stop`; the worker then commits what it holds and
    returns, so nothing acknowledged is lost and nothing is done twice.
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info("worker started", extra={"worker": name})
    try:
        await main(deps, stop)
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    log.info("worker stopped", extra={"worker": name})
