"""The event loops the suite runs on."""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Callable

LoopFactory = Callable[[], asyncio.AbstractEventLoop]


def reporting_leaks(factory: LoopFactory) -> LoopFactory:
    """`factory`'s loops, except that a uvloop loop closed with a transport still open
    fails the test instead of hanging it.

    uvloop's close() closes what is left open with a ResourceWarning first. The
    suite turns warnings into errors, and that error, raised inside uvloop's C
    callback, is swallowed before the handle is closed: the still-open socket then
    keeps close() waiting forever (a CI run hung so, in a fixture's teardown, on a
    Redis connection nobody closed). Here close() records those warnings, closes
    everything, and then fails with what was left open.
    """
    try:
        import uvloop
    except ImportError:
        return factory
    if factory is not uvloop.new_event_loop:
        return factory

    class LeakReportingLoop(uvloop.Loop):  # type: ignore[misc]
        def close(self) -> None:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", ResourceWarning)
                super().close()
            left_open = [str(w.message) for w in caught if w.category is ResourceWarning]
            if left_open:
                raise AssertionError(f"the event loop closed with these still open: {left_open}")

    return LeakReportingLoop
