"""What a REST request contributes to an audit record: who sent it from where.

Kept apart from the admin view (handlers/audit_rest.py) so the account and
board views can use it without importing each other.
"""

from __future__ import annotations

import uuid

from aiohttp import web

from handlers.rest import client_ip
from protocol.audit import AuditMetadata

_USER_AGENT_MAX = 500


def request_metadata(request: web.Request, session_id: uuid.UUID | None) -> AuditMetadata:
    """Seed 001's metadata (ip, user agent, session) of the request being served."""
    agent = request.headers.get("User-Agent", "")[:_USER_AGENT_MAX]
    return AuditMetadata(ip=client_ip(request), user_agent=agent or None, session_id=session_id)
