"""The suite's event loops (tests/loops.py)."""

from __future__ import annotations

import asyncio
import gc
import socket
import warnings

import pytest

from hub import event_loop
from hub.config import Settings
from tests.loops import reporting_leaks


def test_a_loop_closed_with_a_connection_open_fails_instead_of_hanging() -> None:
    """What hung a CI run: uvloop closing a loop with an open stream while warnings
    are errors (pyproject's filterwarnings)."""
    pytest.importorskip("uvloop")
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        loop = reporting_leaks(event_loop.loop_factory(Settings.event_loop))()
        _reader, writer = loop.run_until_complete(asyncio.open_connection("127.0.0.1", port))
        with pytest.raises(AssertionError, match="still open"):
            loop.close()  # before the fix: a hang here, never returning
        assert loop.is_closed()
        with warnings.catch_warnings():  # the stream's own goodbye: "loop is closed"
            warnings.simplefilter("ignore", ResourceWarning)
            del writer
            gc.collect()
