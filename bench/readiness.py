"""The one line every bench server prints when it listens, so run.py knows when to start.

The servers are separate processes (pinned to their own core), so readiness is a
line on stdout rather than a poll of the port: a listening port alone does not
say the embedded Redis and the Socket.IO managers are up.
"""

from __future__ import annotations

import json
import sys

ROOM = "bench"


def announce(port: int, aux_pids: tuple[int, ...] = ()) -> None:
    """`aux_pids` are helper processes (Redis) whose CPU belongs to the server's cost."""
    line = json.dumps({"ready": True, "port": port, "aux_pids": list(aux_pids)})
    sys.stdout.write(line + "\n")
    sys.stdout.flush()
