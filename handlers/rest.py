"""What every REST view shares: JSON bodies, bearer auth, and errors as values."""

from __future__ import annotations

import json
import logging
import math
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiohttp import web

from handlers.client_address import client_address
from handlers.deps import AccessClaims, Deps
from protocol import correlation
from protocol.errors import (
    HubError,
    Internal,
    InvalidPayload,
    NotFound,
    PayloadTooLarge,
    Unauthorized,
    Unavailable,
)
from protocol.models import to_wire
from protocol.payloads import Payload, parse
from storage import outages

log = logging.getLogger(__name__)

DEPS = web.AppKey("deps", Deps)

P = TypeVar("P", bound=Payload)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.json_response(to_wire(data), status=status)


def unexpected(exc: Exception, logger: logging.Logger, what: str, **context: Any) -> HubError:
    """What an exception no handler turned into a HubError answers, logged once;
    `what` names the request or event in the log line.

    A dependency that is down (`storage.outages`) is `unavailable` with a
    `retry_after`: a retry is the cure, so one warning line without a traceback
    says so. Anything else is `internal` with its traceback, since it is a bug.
    Both messages name the correlation id, which every log line carries too.
    Shared by the REST middleware and the Socket.IO dispatcher, so they agree.
    """
    cid = correlation.current()
    if outages.is_outage(exc):
        logger.warning(
            "%s: a dependency is unavailable",
            what,
            extra={**context, "error": outages.describe(exc)},
        )
        return Unavailable(
            f"a dependency is unavailable, try again (correlation id {cid})",
            {"retry_after": outages.RETRY_AFTER_SECONDS},
        )
    logger.error("%s: unhandled error", what, exc_info=exc, extra=context)
    return Internal(f"internal error (correlation id {cid})")


def error_response(exc: HubError) -> web.Response:
    headers = {}
    retry_after = exc.details.get("retry_after") if isinstance(exc.details, dict) else None
    if isinstance(retry_after, int | float):
        headers["Retry-After"] = str(math.ceil(retry_after))  # whole seconds (RFC 9110)
    return web.json_response({"error": exc.to_dict()}, status=exc.http_status, headers=headers)


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure leaves as `{"error": {"code", "message"}}` with its status."""
    header = request.headers.get("X-Request-ID", "")
    cid = header[:64] if header else correlation.new_correlation_id()
    correlation.correlation_id.set(cid)
    try:
        response = await handler(request)
    except HubError as exc:
        response = error_response(exc)
    except web.HTTPRequestEntityTooLarge:
        response = error_response(PayloadTooLarge("request body is too large"))
    except web.HTTPNotFound:
        response = error_response(NotFound(f"no route for {request.path}"))
    except web.HTTPMethodNotAllowed as exc:
        response = web.json_response(
            {"error": {"code": "invalid_payload", "message": f"{request.method} not allowed"}},
            status=405,
            headers={"Allow": ",".join(sorted(exc.allowed_methods))},
        )
    except web.HTTPException:
        raise
    except Exception as exc:
        failure = unexpected(exc, log, f"{request.method} {request.path}")
        response = error_response(failure)
    response.headers["X-Request-ID"] = cid
    return response


async def body(request: web.Request, kind: type[P]) -> P:
    """The JSON body validated into `kind`."""
    if request.content_type != "application/json":
        raise InvalidPayload("send a JSON body with Content-Type: application/json")
    try:
        raw = json.loads(await request.read())
    except (ValueError, UnicodeDecodeError):
        raise InvalidPayload("the body is not valid JSON") from None
    return parse(kind, raw)


def query(request: web.Request, kind: type[P]) -> P:
    return parse(kind, dict(request.query), from_strings=True)


def path_uuid(request: web.Request, name: str) -> uuid.UUID:
    try:
        return uuid.UUID(request.match_info[name])
    except ValueError:
        raise NotFound(f"{name} is not a valid id") from None


def bearer(request: web.Request) -> AccessClaims:
    """The caller's verified access token; 401 without one."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("send Authorization: Bearer <access_token>")
    return request.app[DEPS].tokens.verify(token.strip())


def client_ip(request: web.Request) -> str | None:
    """The client's address, for per-address limits and audit rows: the TCP peer, or
    what a trusted load balancer says it is (handlers/client_address.py)."""
    return client_address(
        request.remote,
        request.headers.getall("X-Forwarded-For", ()),
        request.app[DEPS].trusted_proxies,
    )
