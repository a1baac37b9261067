"""The event loop every taskhub process runs on: uvloop when it is installed.

uvloop's transports write and buffer in C; with the fast broadcast path, whose
per-recipient work is one `transport.write`, that is most of what is left.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")
log = logging.getLogger(__name__)


def loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop]:
    """`name` is Settings.event_loop: "uvloop" (falls back to asyncio's loop where
    uvloop is not installed, as on Windows) or "asyncio"."""
    if name == "uvloop":
        try:
            import uvloop
        except ImportError:
            log.info("uvloop is not installed; running on asyncio's event loop")
        else:
            return uvloop.new_event_loop
    return asyncio.new_event_loop


def run(main: Coroutine[Any, Any, T], name: str) -> T:
    """`asyncio.run` on the loop `loop_factory(name)` makes."""
    with asyncio.Runner(loop_factory=loop_factory(name)) as runner:
        return runner.run(main)
