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
from storage import outbox
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
    return await outbox.enqueue(
        conn,
        topic=AUDIT_TOPIC,
        key=str(entity_id),
        type=str(type),
        payload=msgspec.to_builtins(payload),
        correlation_id=correlation_id,
    )
