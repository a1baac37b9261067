"""One exception type per error code.

Domain code raises these; the same value becomes a socket ack, a REST error
body or a worker log line, so no layer invents its own error shape.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any, ClassVar

import msgspec

from protocol.models import Task


class ErrorCode(StrEnum):
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    INVALID_PAYLOAD = "invalid_payload"
    CONFLICT = "conflict"
    VERSION_CONFLICT = "version_conflict"
    RATE_LIMITED = "rate_limited"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    UNAVAILABLE = "unavailable"
    INTERNAL = "internal"


class HubError(Exception):
    """An expected failure with a code a client can act on."""

    code: ClassVar[ErrorCode] = ErrorCode.INTERNAL
    http_status: ClassVar[int] = 500
    default_message: ClassVar[str] = "internal error"

    def __init__(self, message: str | None = None, details: Any = None) -> None:
        super().__init__(message or self.default_message)
        self.message = message or self.default_message
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": str(self.code), "message": self.message}
        if self.details is not None:
            body["details"] = self.details
        return body


class Unauthorized(HubError):
    code = ErrorCode.UNAUTHORIZED
    http_status = 401
    default_message = "authentication required"


class Forbidden(HubError):
    code = ErrorCode.FORBIDDEN
    http_status = 403
    default_message = "not allowed"


class NotFound(HubError):
    code = ErrorCode.NOT_FOUND
    http_status = 404
    default_message = "not found"


class InvalidPayload(HubError):
    code = ErrorCode.INVALID_PAYLOAD
    http_status = 400
    default_message = "invalid payload"


class Conflict(HubError):
    """A uniqueness clash outside task versions (an email already registered)."""

    code = ErrorCode.CONFLICT
    http_status = 409
    default_message = "already exists"


class VersionConflict(HubError):
    """`details` holds the current `task` and the `conflicting_fields`: rebase on them."""

    code = ErrorCode.VERSION_CONFLICT
    http_status = 409
    default_message = "the task changed since base_version"

    @property
    def task(self) -> Task | None:
        """The task as it is now, or None if the details do not carry it."""
        raw = self.details.get("task") if isinstance(self.details, dict) else None
        return msgspec.convert(raw, Task) if raw is not None else None

    @property
    def conflicting_fields(self) -> list[str]:
        fields = self.details.get("conflicting_fields") if isinstance(self.details, dict) else None
        return [str(name) for name in fields] if isinstance(fields, list) else []


class RateLimited(HubError):
    code = ErrorCode.RATE_LIMITED
    http_status = 429
    default_message = "too many requests"


class PayloadTooLarge(HubError):
    code = ErrorCode.PAYLOAD_TOO_LARGE
    http_status = 413
    default_message = "payload too large"


class Unavailable(HubError):
    code = ErrorCode.UNAVAILABLE
    http_status = 503
    default_message = "a dependency is unavailable, try again"


class Internal(HubError):
    code = ErrorCode.INTERNAL
    http_status = 500
    default_message = "internal error"


ERRORS_BY_CODE: dict[ErrorCode, type[HubError]] = {
    cls.code: cls
    for cls in (
        Unauthorized,
        Forbidden,
        NotFound,
        InvalidPayload,
        Conflict,
        VersionConflict,
        RateLimited,
        PayloadTooLarge,
        Unavailable,
        Internal,
    )
}


def from_dict(body: Mapping[str, Any]) -> HubError:
    """The exception an error body stands for: an ack's `error`, a REST error, a refused
    connect's reason. A code this version does not know becomes `Internal`."""
    code = body.get("code")
    message = str(body.get("message") or "") or None
    try:
        kind = ERRORS_BY_CODE[ErrorCode(str(code))]
    except (ValueError, KeyError):
        return Internal(f"{code}: {message}", body.get("details"))
    return kind(message, body.get("details"))


# `details.reason` of the `unavailable` a node sends in `connection:closing` when it
# stops (a deploy, a scale-down): the one closing a client is asked to come back from.
SERVER_SHUTDOWN = "server_shutdown"


def server_shutdown() -> Unavailable:
    """Why a stopping node closes its connections: nothing is wrong with the client or its
    token, so it reconnects (a load balancer sends it to a live node), after a short random
    delay, so that the node's clients do not all arrive at the same instant."""
    return Unavailable("this hub node is shutting down; reconnect", {"reason": SERVER_SHUTDOWN})


def asks_to_reconnect(error: HubError | None) -> bool:
    """Whether a `connection:closing` reason asks the client to come back, as a stopping
    node's does; every other reason ends the connection for good."""
    return (
        isinstance(error, Unavailable)
        and isinstance(error.details, dict)
        and error.details.get("reason") == SERVER_SHUTDOWN
    )
