"""Prometheus metrics, one registry per app so several hubs can share a process."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST


class HubMetrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._connections = Gauge(
            "taskhub_connections", "Open Socket.IO connections on this node", registry=self.registry
        )
        self._events_in = Counter(
            "taskhub_events_in", "Client events received", ["event"], registry=self.registry
        )
        self._events_out = Counter(
            "taskhub_events_out", "Server events emitted", ["event"], registry=self.registry
        )
        self._errors = Counter(
            "taskhub_event_errors",
            "Client events answered with an error",
            ["event", "code"],
            registry=self.registry,
        )
        self._conflicts = Counter(
            "taskhub_version_conflicts",
            "Writes answered with version_conflict",
            registry=self.registry,
        )
        self._ack_latency = Histogram(
            "taskhub_ack_latency_seconds",
            "Time from receiving a client event to its ack",
            ["event"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=self.registry,
        )

    def event_in(self, event: str) -> None:
        self._events_in.labels(event).inc()

    def event_out(self, event: str) -> None:
        self._events_out.labels(event).inc()

    def acked(self, event: str, seconds: float, code: str | None) -> None:
        self._ack_latency.labels(event).observe(seconds)
        if code is not None:
            self._errors.labels(event, code).inc()
            if code == "version_conflict":
                self._conflicts.inc()

    def connections(self, delta: int) -> None:
        self._connections.inc(delta)

    def render(self) -> bytes:
        return generate_latest(self.registry)
