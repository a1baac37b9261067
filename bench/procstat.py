"""CPU seconds a process has used, read from outside it through its CPU-time clock.

Read from outside the process so the server under test runs no measuring code;
the difference between two reads is what the server spent in that window.

The clock is Linux's process CPU clock (what clock_getcpuclockid(3) returns):
the scheduler's own count of every thread's run time, those that ended included.
Read from another process it may lag by up to a scheduler tick per thread that is
running at that moment; /proc/<pid>/stat's utime + stime come in whole 10 ms
ticks, ±7 % of a 0.14 CPU-second window (100 subscribers at 10,000 deliveries/s
for 5 s), enough to flip a ratio at the line.
"""

from __future__ import annotations

import time


def _process_clock(pid: int) -> int:
    # include/linux/posix-timers.h: MAKE_PROCESS_CPUCLOCK(pid, CPUCLOCK_SCHED)
    return ((~pid) << 3) | 2


def cpu_seconds(pid: int) -> float:
    try:
        return time.clock_gettime(_process_clock(pid))
    except OSError as exc:  # EINVAL: no such process (reaped)
        raise OSError(exc.errno, f"no CPU clock for pid {pid}: {exc.strerror}") from None
