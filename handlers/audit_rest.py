"""The audit trail over REST: the admins' read of `event_logs`.

Records are written by the views that change accounts and memberships (see
handlers/audit_context.py) and filed by the audit worker.
"""

from __future__ import annotations

from aiohttp import web

from handlers.accounts import active_user
from handlers.rest import DEPS, bearer, json_response, query
from protocol.errors import Forbidden
from protocol.models import UserRole
from protocol.payloads import AuditQuery
from storage import event_logs
from storage.event_logs import AuditFilter


def _filter(params: AuditQuery) -> AuditFilter:
    """`type=task.` (a trailing dot) asks for a whole family of types."""
    prefix = params.type if params.type and params.type.endswith(".") else None
    return AuditFilter(
        type=None if prefix else params.type,
        type_prefix=prefix,
        actor_id=params.actor_id,
        entity_type=params.entity_type,
        entity_id=params.entity_id,
        correlation_id=params.correlation_id,
        since=params.since,
        until=params.until,
    )


async def list_audit(request: web.Request) -> web.Response:
    """`GET /api/admin/audit`: the trail, newest first; admins only."""
    deps = request.app[DEPS]
    claims = bearer(request)
    params = query(request, AuditQuery)
    async with deps.pool.acquire() as conn:
        user = await active_user(conn, claims)
        if user.role != UserRole.ADMIN:
            raise Forbidden("only admins can read the audit trail")
        entries, cursor = await event_logs.page(
            conn, _filter(params), limit=params.limit, after=params.after
        )
    return json_response({"entries": entries, "next": cursor})


def routes() -> list[web.RouteDef]:
    return [web.get("/api/admin/audit", list_audit)]
