"""Which failures mean a dependency (PostgreSQL, Redis) is down, not that we are wrong.

Storage owns the drivers, so it is the one place that knows their exceptions.
Handlers ask `is_outage` to answer `unavailable` (the client retries, nothing is
logged as a bug) instead of `internal` (a traceback someone must read). A failure
that is not on this list stays `internal`: a missed outage costs a traceback, a
bug taken for an outage would hide.
"""

from __future__ import annotations

import asyncpg
import redis.exceptions

# How long a client is told to wait before retrying (REST Retry-After, ack details):
# a restarted server takes a few seconds to accept connections again.
RETRY_AFTER_SECONDS = 1

# SQLSTATEs of a server that is going away, has crashed, is still starting
# (crash recovery included), or has no room for another connection.
_POSTGRES_DOWN_STATES = frozenset({"57P01", "57P02", "57P03", "53300"})

_OUTAGE_TYPES: tuple[type[BaseException], ...] = (
    # class 08: the connection failed or was cut (ConnectionDoesNotExistError among them)
    asyncpg.PostgresConnectionError,
    # refused, reset, no socket file, unreachable, timed out (TimeoutError is one too):
    # the only OS-level I/O on a request's path is network I/O to a dependency
    OSError,
    # BusyLoadingError (a restarted Redis replaying its AOF) is a ConnectionError
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
)


def is_outage(exc: BaseException) -> bool:
    """True if `exc`, or an exception it was raised from or while handling, says a
    dependency is unreachable, cut off, restarting or out of connections.

    The chain matters: asyncpg reports a dropped connection once, and what is
    raised afterwards (a transaction's rollback on the dead connection) is an
    InterfaceError that only carries the original as its context.
    """
    return bool(_outage_links(exc))


def describe(exc: BaseException) -> str:
    """A one-line account for the log (no traceback: an outage is not a bug), naming
    the original failure too when `exc` only followed from it."""
    links = _outage_links(exc) or [exc]
    if links[0] is not exc:
        links.insert(0, exc)
    text = " <- ".join(f"{type(link).__name__}: {link}" for link in links[:3])
    return " ".join(text.split())[:300]


def _outage_links(exc: BaseException) -> list[BaseException]:
    """The exceptions of `exc`'s chain (itself first) that each say a dependency is down."""
    found: list[BaseException] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if _is_outage_itself(current):
            found.append(current)
        current = current.__cause__ or current.__context__
    return found


def _is_outage_itself(exc: BaseException) -> bool:
    if isinstance(exc, _OUTAGE_TYPES):
        return True
    if isinstance(exc, asyncpg.PostgresError):
        return getattr(exc, "sqlstate", None) in _POSTGRES_DOWN_STATES
    # asyncpg has no subclass for "used a connection the server closed": InterfaceError
    # is mostly misuse (DataError, a subclass, is bad input), so only this message counts
    return type(exc) is asyncpg.InterfaceError and "connection is closed" in str(exc)
