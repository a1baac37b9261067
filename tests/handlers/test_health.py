"""Probes and metrics of a running hub, as an orchestrator and Prometheus see them."""

from __future__ import annotations

import asyncio

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from tests.support import Hub


async def scrape(hub: Hub) -> tuple[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]]:
    """The /metrics text and its samples by (name, sorted labels)."""
    async with aiohttp.ClientSession() as session, session.get(hub.url + "/metrics") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain"), resp.headers
        text = await resp.text()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    return text, samples


def sample(samples: dict, name: str, **labels: str) -> float:  # type: ignore[type-arg]
    return float(samples.get((name, tuple(sorted(labels.items()))), 0.0))


async def wait_for_sample(hub: Hub, name: str, value: float, timeout: float = 5) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        _, samples = await scrape(hub)
        if sample(samples, name) == value:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{name} stayed at {sample(samples, name)}, expected {value}")
        await asyncio.sleep(0.05)


async def test_healthz_is_ok(hub: Hub) -> None:
    status, body = await hub.request("GET", "/healthz")
    assert status == 200
    assert body == {"status": "ok"}


async def test_readyz_checks_every_dependency(hub: Hub) -> None:
    status, body = await hub.request("GET", "/readyz")
    assert status == 200, body
    assert body["status"] == "ready"
    assert body["checks"] == {"postgres": "ok", "redis": "ok", "kafka": "ok"}


async def test_metrics_are_prometheus_text(hub: Hub) -> None:
    text, samples = await scrape(hub)
    families = {f.name: f.type for f in text_string_to_metric_families(text)}
    expected = {
        "taskhub_connections": "gauge",
        "taskhub_events_in": "counter",
        "taskhub_ack_latency_seconds": "histogram",
        "taskhub_version_conflicts": "counter",
    }
    for name, kind in expected.items():
        assert name in text, name
        assert families.get(name) == kind, (name, families)
    assert sample(samples, "taskhub_connections") == 0
    assert sample(samples, "taskhub_version_conflicts_total") == 0


async def test_metrics_move_with_real_socket_events(hub: Hub) -> None:
    alice = await hub.register("Alice")
    board_id = await hub.create_board(alice)
    _, before = await scrape(hub)
    assert sample(before, "taskhub_events_in_total", event="task:create") == 0
    assert sample(before, "taskhub_ack_latency_seconds_count", event="task:update") == 0

    peer = await hub.peer(alice)
    try:
        await wait_for_sample(hub, "taskhub_connections", 1)
        assert (await peer.call("board:join", {"board_id": board_id}))["ok"]
        created = await peer.call("task:create", {"board_id": board_id, "title": "Metered"})
        assert created["ok"], created
        task_id = created["data"]["task"]["id"]
        ack = await peer.call(
            "task:update", {"task_id": task_id, "base_version": 1, "changes": {"title": "Two"}}
        )
        assert ack["ok"], ack
        # The same field edited again from the stale version: a conflict the client sees.
        stale = await peer.call(
            "task:update", {"task_id": task_id, "base_version": 1, "changes": {"title": "Three"}}
        )
        assert not stale["ok"], stale
        assert stale["error"]["code"] == "version_conflict", stale

        _, after = await scrape(hub)
        assert sample(after, "taskhub_connections") == 1
        assert sample(after, "taskhub_events_in_total", event="board:join") == 1
        assert sample(after, "taskhub_events_in_total", event="task:create") == 1
        assert sample(after, "taskhub_events_in_total", event="task:update") == 2
        assert sample(after, "taskhub_ack_latency_seconds_count", event="task:create") == 1
        assert sample(after, "taskhub_ack_latency_seconds_count", event="task:update") == 2
        assert sample(after, "taskhub_ack_latency_seconds_sum", event="task:create") > 0
        assert sample(after, "taskhub_version_conflicts_total") == 1
    finally:
        await peer.close()
    await wait_for_sample(hub, "taskhub_connections", 0)


async def test_unknown_route_is_a_json_404(hub: Hub) -> None:
    status, body = await hub.request("GET", "/api/no-such-thing")
    assert status == 404, body
    assert body["error"]["code"] == "not_found", body
    assert body["error"]["message"], body

    status, body = await hub.request("DELETE", "/healthz")
    assert status == 405, body
    assert body["error"]["message"], body
