"""CPU seconds a process has used, from /proc/<pid>/stat (utime + stime).

Read from outside the process so the server under test runs no measuring code;
the difference between two reads is what the server spent in that window.
"""

from __future__ import annotations

import os

_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        # the command name (field 2) may hold spaces; the fields after ")" are fixed
        fields = stat.read().rsplit(")", 1)[1].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / _TICKS


def total_cpu_seconds(pids: tuple[int, ...]) -> float:
    return sum(cpu_seconds(pid) for pid in pids)
