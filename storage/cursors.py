"""Opaque keyset-pagination cursors: the sort key of the last row, base64-wrapped.

Clients pass them back unchanged; anything else is refused with invalid_payload
naming the field, never an internal error.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from protocol.errors import InvalidPayload


def encode(parts: Sequence[object]) -> str:
    raw = "|".join(str(p) for p in parts)
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode(cursor: str, kinds: Sequence[Callable[[str], Any]], field: str) -> list[Any]:
    """Split a cursor into its parts, each parsed by its `kinds` entry."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        parts = raw.split("|")
        if len(parts) != len(kinds):
            raise ValueError(raw)
        return [kind(part) for kind, part in zip(kinds, parts, strict=True)]
    except (ValueError, UnicodeDecodeError):
        raise InvalidPayload(
            f"{field} is not a cursor this server returned", {"field": field}
        ) from None


def aware_datetime(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise ValueError(text)
    return value
