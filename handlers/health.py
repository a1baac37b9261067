"""Liveness and readiness probes."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from handlers.rest import DEPS
from storage import db, topics

log = logging.getLogger(__name__)

PROBE_TIMEOUT = 3.0


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Ready only when PostgreSQL, Redis and Kafka all answer."""
    deps = request.app[DEPS]

    async def postgres() -> None:
        await db.ping(deps.pool)

    async def redis() -> None:
        await deps.redis.ping()

    async def kafka() -> None:
        await topics.ping(deps.kafka_bootstrap_servers)

    checks = {"postgres": postgres, "redis": redis, "kafka": kafka}
    results: dict[str, str] = {}

    async def run(name: str) -> None:
        try:
            await asyncio.wait_for(checks[name](), PROBE_TIMEOUT)
            results[name] = "ok"
        except Exception as exc:
            log.warning("readiness check failed", extra={"check": name, "error": repr(exc)})
            results[name] = "unavailable"

    await asyncio.gather(*(run(name) for name in checks))
    ready = all(v == "ok" for v in results.values())
    return web.json_response(
        {"status": "ready" if ready else "unavailable", "checks": results},
        status=200 if ready else 503,
    )


def routes() -> list[web.RouteDef]:
    return [web.get("/healthz", healthz), web.get("/readyz", readyz)]
