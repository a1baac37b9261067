"""Audit records of account and membership changes, written to the outbox.

A record is inserted in the transaction of the change it describes, so the
trail can neither miss a committed change nor mention one that rolled back; the
outbox relay publishes it to `audit_events` and the audit worker files it.
"""

from __future__ import annotations

import uuid
from typing import Any

import msgspec

from protocol.audit import AUDIT_TOPIC, AuditMetadata, AuditPayload, AuditType, EntityType
from storage.db import Connection


async def record(
    conn: Connection,
    *,
    type: AuditType,
    actor_id: uuid.UUID | None,
    entity_type: EntityType,
    entity_id: uuid.UUID,
    metadata: AuditMetadata,
    correlation_id: str | None,
    data: dict[str, Any] | None = None,
) -> uuid.UUID:
    """Queue one audit record in the caller's transaction; returns its event_id.

    The Kafka key is the entity id, so one entity's records stay in order.
    """
    payload = AuditPayload(
        actor_id=actor_id,
        entity_type=entity_type,
        entity_id=entity_id,
        metadata=metadata,
        data=data or {},
    )
    event_id: uuid.UUID = await conn.fetchval(
        """INSERT INTO outbox (topic, key, type, payload, correlation_id)
           VALUES ($1, $2, $3, $4, $5) RETURNING event_id""",
        AUDIT_TOPIC,
        str(entity_id),
        str(type),
        msgspec.to_builtins(payload),
        correlation_id,
    )
    return event_id
