"""Kafka topic names and their shape; (re)created at start.

The embedded broker forgets its topics when restarted, so every process that
needs them makes sure they exist rather than trusting an earlier setup step.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int


TOPICS = (
    TopicSpec("task_events", 4),
    TopicSpec("chat_messages", 4),
    TopicSpec("reminders", 1),
    TopicSpec("audit_events", 4),
)


# Created only by the outbox relay and never written: when a relay finds it
# missing, the broker has lost its log (the embedded broker forgets everything
# on restart), and recently published rows are published again.
BROKER_EPOCH = TopicSpec("taskhub_broker_epoch", 1)


def topic_name(prefix: str, base: str) -> str:
    return f"{prefix}{base}"


async def ensure_topics(
    bootstrap_servers: str, prefix: str = "", extra: tuple[TopicSpec, ...] = ()
) -> list[str]:
    """Create the missing topics (TOPICS and `extra`); returns their names."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=10_000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [
            NewTopic(topic_name(prefix, t.name), num_partitions=t.partitions, replication_factor=1)
            for t in (*TOPICS, *extra)
            if topic_name(prefix, t.name) not in existing
        ]
        if wanted:
            try:
                await admin.create_topics(wanted)
            except TopicAlreadyExistsError:
                pass  # another node created them first
        return [t.name for t in wanted]
    finally:
        await admin.close()


async def ping(bootstrap_servers: str, timeout_ms: int = 3000) -> None:
    """Raise unless a broker answers a metadata request."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap_servers,
        request_timeout_ms=timeout_ms,
        connections_max_idle_ms=timeout_ms * 2,
    )
    await admin.start()
    try:
        await admin.list_topics()
    finally:
        await admin.close()
