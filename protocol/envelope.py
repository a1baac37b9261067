"""The one ack envelope every client event answers with."""

from __future__ import annotations

from typing import Any

from protocol.errors import HubError


def ok(data: Any = None) -> dict[str, Any]:
    return {"ok": True, "data": data}


def error(exc: HubError) -> dict[str, Any]:
    return {"ok": False, "error": exc.to_dict()}
