"""The app factory: one aiohttp application holding the REST API and Socket.IO.

Socket.IO is served twice, by one server per serializer: JSON at `/socket.io/`
(browsers) and msgpack at `/socket.io-msgpack/` (bots). Both servers' managers
are members of the process's one Socket.IO channel on Redis
(hub/fanout/redis_channel.py): an emit is delivered by its own server, handed
to the sibling server in the process and published once for the other nodes,
whose one subscription each hands it to both their servers; so rooms hold
clients of both kinds and every emit reaches both.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator

import socketio
from aiohttp import web

from handlers import accounts, audit_rest, boards_rest, bots, catch_up, health
from handlers.deps import Deps, Limits
from handlers.rest import DEPS, errors_middleware
from handlers.socket_events import ROUTES
from handlers.socket_hub import (
    HUB_NAMESPACE,
    HUB_NAMESPACES,
    HubNamespace,
    HubNamespaces,
    OrderLocks,
)
from handlers.task_boards import TaskBoards
from hub import expiry_sweep, heap, heartbeat, maintenance
from hub import web as web_page
from hub.config import Settings
from hub.fanout.redis_channel import SocketIOChannel
from hub.fanout.servers import HubRedisManager, HubSocketServer
from hub.metrics import HubMetrics
from hub.tokens import JwtAccessTokens
from hub.workers import embedded_workers
from protocol.errors import server_shutdown
from protocol.serializers import Serializer
from storage import redis_client
from storage.db import create_pool
from storage.keys import RedisKeys
from storage.presence import Presence
from storage.rate_limits import RateLimiter

log = logging.getLogger(__name__)

SETTINGS = web.AppKey("settings", Settings)
METRICS = web.AppKey("metrics", HubMetrics)
# One Socket.IO server per serializer, each attached at its own path.
SOCKETIO_SERVERS = web.AppKey("socketio_servers", dict[Serializer, socketio.AsyncServer])
# The process's Socket.IO channel on Redis, which both servers' managers share.
SOCKETIO_CHANNEL = web.AppKey("socketio_channel", SocketIOChannel)
# Passes of the shutdown's farewell (see _farewell).
FAREWELL_ROUNDS = 3
# how long a shutdown waits for events still being handled before cutting them,
# and again for the cut ones to unwind (HubNamespace.finish_handling)
HANDLING_GRACE_S = 5.0


async def _resources(app: web.Application) -> AsyncIterator[None]:
    """PostgreSQL pool, Redis client and the handlers' dependencies, closed in reverse."""
    settings = app[SETTINGS]
    pool = await create_pool(
        settings.database_url, min_size=settings.db_pool_min, max_size=settings.db_pool_max
    )
    redis = redis_client.connect(
        settings.redis_url,
        max_connections=settings.redis_pool_max,
        name=redis_client.client_name("hub", settings.node_id),
    )
    try:
        keys = RedisKeys(settings.redis_key_prefix)
        deps = Deps(
            pool=pool,
            redis=redis,
            keys=keys,
            presence=Presence(
                redis,
                keys,
                connection_ttl=settings.node_ttl * 2,
                socketio_channel=settings.socketio_channel,
            ),
            tokens=JwtAccessTokens(
                settings.jwt_secret, settings.jwt_algorithm, settings.access_token_ttl
            ),
            metrics=app[METRICS],
            limits=Limits(
                bcrypt_rounds=settings.bcrypt_rounds,
                access_token_ttl=settings.access_token_ttl,
                refresh_token_ttl=settings.refresh_token_ttl,
                max_payload_bytes=settings.max_payload_bytes,
                catch_up_window=settings.catch_up_window,
                rates=settings.rate_limits,
                max_connections_per_user=settings.max_connections_per_user,
                user_tokens_without_origin=settings.user_tokens_without_origin,
            ),
            rate_limiter=RateLimiter(redis, keys),
            node_id=settings.node_id,
            kafka_bootstrap_servers=settings.kafka_bootstrap_servers,
            trusted_proxies=settings.trusted_proxies,
        )
        app[DEPS] = deps
        # one set of emit orders (see Turn), so this node emits a board's events in seq order
        # whichever server the writers are connected to
        order_locks: OrderLocks = OrderLocks()
        task_boards = TaskBoards()
        namespaces = HubNamespaces(
            {
                serializer: HubNamespace(
                    deps, ROUTES, order_locks=order_locks, task_boards=task_boards
                )
                for serializer in app[SOCKETIO_SERVERS]
            }
        )
        for serializer, server in app[SOCKETIO_SERVERS].items():
            ns = namespaces.by_serializer[serializer]
            server.register_namespace(ns)
            if isinstance(server.manager, HubRedisManager):
                # each server's clients catch up after its manager lost the channel
                server.manager.after_gap = functools.partial(catch_up.after_lost_channel, ns)
        app[HUB_NAMESPACES] = namespaces
        app[HUB_NAMESPACE] = namespaces.primary
        yield
    finally:
        await redis.aclose()
        await pool.close()


async def _background(app: web.Application) -> AsyncIterator[None]:
    async with (
        heartbeat.running(app[SETTINGS], app[HUB_NAMESPACES]),
        maintenance.running(app[DEPS].pool),
        expiry_sweep.running(app[HUB_NAMESPACES]),
    ):
        yield


async def _workers(app: web.Application) -> AsyncIterator[None]:
    """EMBEDDED_WORKERS run as owned tasks of this process (`make run`, tests)."""
    settings = app[SETTINGS]
    async with embedded_workers(settings, settings.embedded_workers):
        yield


async def _farewell(app: web.Application) -> None:
    """On shutdown (SIGTERM: a deploy, a scale-down), tell each connection why it closes
    (`unavailable`, reason `server_shutdown`) and close it, so that clients reconnect at
    once, through the load balancer to a live node, and announce the departures
    (presence).

    aiohttp runs this after it stopped listening. Without it, every client hung on
    until the node went away and then lost its connection without a word. A few
    rounds: a connect that was being authenticated as a round began is only then
    ready to close. Then the websockets are ended from this side (see
    `HubEngineServer.end_websockets`); once the node has ended them, a connect still
    being authenticated is refused instead of taken over.
    """
    namespaces = app.get(HUB_NAMESPACES)
    if namespaces is None:
        return  # never started
    for _ in range(FAREWELL_ROUNDS):
        closed = await namespaces.close_local(server_shutdown())
        if not closed:
            break
        log.info("closed connections: shutting down", extra={"connections": closed})
    for server in app[SOCKETIO_SERVERS].values():
        if isinstance(server, HubSocketServer):
            server.end_websockets()


async def _socketio_shutdown(app: web.Application) -> AsyncIterator[None]:
    yield
    # The connections were told to close (_farewell). Websockets are not aiohttp's
    # requests once connected (hub/fanout/upgrade.py), so its shutdown did not wait
    # for them: each server gives them a few seconds to be read to the end, cuts the
    # rest, and waits for their disconnects to have run; then the events still being
    # handled get a few seconds to end (their emits need the channel, their writes
    # Redis and PostgreSQL, which close after this); then the channel's
    # subscription ends, the managers stop, and its publisher closes once Redis
    # answered what they published.
    try:
        for server in app[SOCKETIO_SERVERS].values():
            await server.shutdown()
        namespaces = app.get(HUB_NAMESPACES)
        if namespaces is not None:
            await namespaces.finish_handling(HANDLING_GRACE_S)
    finally:
        await app[SOCKETIO_CHANNEL].close()


async def metrics_view(request: web.Request) -> web.Response:
    metrics = request.app[METRICS]
    return web.Response(body=metrics.render(), headers={"Content-Type": metrics.content_type})


def socketio_channel(settings: Settings) -> SocketIOChannel:
    """The process's Socket.IO channel, for the servers `socketio_server` makes."""
    return SocketIOChannel(
        settings.redis_url,
        settings.socketio_channel,
        publisher_name=redis_client.client_name("socketio-publisher", settings.node_id),
        listener_name=redis_client.client_name("socketio-listener", settings.node_id),
    )


def socketio_server(
    settings: Settings, serializer: Serializer, channel: SocketIOChannel
) -> socketio.AsyncServer:
    """A Socket.IO server whose manager is a member of the process's `channel`."""
    return HubSocketServer(
        async_mode="aiohttp",
        client_manager=HubRedisManager(channel),
        serializer=serializer.packet_class,
        cors_allowed_origins=list(settings.cors_origins) or None,
        ping_interval=settings.ping_interval,
        ping_timeout=settings.ping_timeout,
        connect_timeout=settings.connect_timeout,
        # Over-limit events are answered with payload_too_large by the dispatcher;
        # only frames far past the limit close the connection at the transport.
        max_http_buffer_size=settings.max_payload_bytes * 16,
        outbound_buffer_bytes=settings.outbound_buffer_bytes,
    )


def create_app(settings: Settings) -> web.Application:
    app = web.Application(
        middlewares=[errors_middleware], client_max_size=settings.max_payload_bytes
    )
    app[SETTINGS] = settings
    app[METRICS] = HubMetrics()
    channel = socketio_channel(settings)
    servers = {
        serializer: socketio_server(settings, serializer, channel) for serializer in Serializer
    }
    for serializer, server in servers.items():
        server.attach(app, socketio_path=serializer.socketio_path)
    app[SOCKETIO_SERVERS] = servers
    app[SOCKETIO_CHANNEL] = channel
    app.add_routes(
        accounts.routes()
        + boards_rest.routes()
        + bots.routes()
        + audit_rest.routes()
        + health.routes()
        + web_page.routes(settings)
    )
    app.router.add_get("/metrics", metrics_view)
    app.on_shutdown.append(_farewell)
    app.cleanup_ctx.extend(
        [_resources, _background, _workers, _socketio_shutdown, heap.frozen_start_up]
    )
    return app
