"""The correlation id of the work in progress.

It travels with every log line and every event row a request causes, so one id
finds a request across the hub, the database and Kafka.
"""

from __future__ import annotations

import uuid
from contextvars import ContextVar

correlation_id: ContextVar[str | None] = ContextVar("correlation_id", default=None)


def new_correlation_id() -> str:
    value = uuid.uuid4().hex
    correlation_id.set(value)
    return value


def current() -> str | None:
    return correlation_id.get()
