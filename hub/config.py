"""The one settings object, read from the environment only (12-factor)."""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import TypeVar

from handlers.client_address import IPNetwork
from storage.rate_limits import Rate, RateLimits

T = TypeVar("T")


# The worker processes of the Procfile, in start order.
WORKER_NAMES = ("outbox", "bridge", "notifier", "scheduler", "audit")


class ConfigError(ValueError):
    """A missing or malformed environment variable; the message names it."""


def _default_node_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def rate_limit_env(value: str) -> dict[str, str]:
    """Every RATE_LIMIT_* variable set to `value` (`off`, or COUNT/SECONDS): for
    load generators and test suites, whose clients share one address."""
    return {f"RATE_LIMIT_{f.name.upper()}": value for f in fields(RateLimits)}


@dataclass(frozen=True)
class Settings:
    database_url: str = field(repr=False)
    redis_url: str = field(repr=False)
    kafka_bootstrap_servers: str
    jwt_secret: str = field(repr=False)
    host: str = "0.0.0.0"
    port: int = 8080
    node_id: str = field(default_factory=_default_node_id)
    env: str = "production"
    log_level: str = "INFO"
    log_format: str = "json"
    # uvloop when it is installed (see hub/event_loop.py); `asyncio` to compare or debug
    event_loop: str = "uvloop"
    jwt_algorithm: str = "HS256"
    access_token_ttl: int = 900
    refresh_token_ttl: int = 30 * 24 * 3600
    bcrypt_rounds: int = 12
    max_payload_bytes: int = 64 * 1024
    redis_key_prefix: str = ""
    kafka_topic_prefix: str = ""
    socketio_channel: str = "taskhub-socketio"
    heartbeat_interval: float = 5.0
    node_ttl: float = 15.0
    reap_interval: float = 5.0
    db_pool_min: int = 2
    db_pool_max: int = 10
    # Redis commands in flight per process; more wait for a free connection
    redis_pool_max: int = 100
    ping_interval: float = 25.0
    ping_timeout: float = 20.0
    # An Engine.IO connection must complete its Socket.IO connect within this
    # (Node's socket.io connectTimeout): a half-open handshake holds a socket.
    connect_timeout: float = 45.0
    # Per user and per IP, shared by every node (storage/rate_limits.py)
    rate_limits: RateLimits = field(default_factory=RateLimits)
    # A user's sockets at once, on all nodes (tabs, devices and bots together)
    max_connections_per_user: int = 50
    cors_origins: tuple[str, ...] = ()
    # A person's access token from a client that is not a browser (no Origin, no
    # Sec-Fetch-Site): refused by default, so automation runs on scoped, revocable
    # bot tokens (SECURITY.md); true lets people script with their own login.
    user_tokens_without_origin: bool = False
    # networks of the load balancers in front of the hub, whose X-Forwarded-For is
    # believed (handlers/client_address.py); empty: the TCP peer is the client
    trusted_proxies: tuple[IPNetwork, ...] = ()
    # What a client may leave unread before it is dropped: seconds of a busy board,
    # far more than any single ack (client payloads are capped at max_payload_bytes).
    outbound_buffer_bytes: int = 4 * 1024 * 1024
    kafka_idempotence: bool = True
    # How long the broker may hold a consumer's fetch when it has nothing new. Real
    # Kafka answers as soon as a record arrives, so this only paces idle polls; the
    # embedded broker (tansu) answers late in proportion to it (with aiokafka's
    # default of 500 ms a record waited ~115 ms, with 50 ms under 10 ms), and every
    # room emit of another service's record waits on it.
    kafka_fetch_max_wait_ms: int = 50
    catch_up_window: int = 10_000
    outbox_poll_interval: float = 1.0
    outbox_batch_size: int = 500
    scheduler_interval: float = 1.0
    audit_retention_days: tuple[tuple[str, int], ...] = (
        ("user.", 365),
        ("board.", 365),
        ("task.", 180),
    )
    embedded_workers: tuple[str, ...] = ()

    @property
    def is_dev(self) -> bool:
        return self.env == "development"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Parse and validate; the only place that knows the variable names."""
        env = os.environ if env is None else env

        def get(name: str, default: str | None = None) -> str:
            value = env.get(name, "").strip()
            if value:
                return value
            if default is None:
                raise ConfigError(f"{name} is required but not set")
            return default

        def num(name: str, default: T, kind: Callable[[str], T], low: float, high: float) -> T:
            raw = env.get(name, "").strip()
            if not raw:
                return default
            try:
                value = kind(raw)
            except ValueError:
                raise ConfigError(f"{name}={raw!r} is not a valid {kind.__name__}") from None
            if not low <= value <= high:  # type: ignore[operator]
                raise ConfigError(f"{name}={raw!r} must be between {low} and {high}")
            return value

        def choice(name: str, default: str, allowed: tuple[str, ...]) -> str:
            value = get(name, default)
            if value not in allowed:
                raise ConfigError(f"{name}={value!r} must be one of {', '.join(allowed)}")
            return value

        database_url = get("DATABASE_URL")
        if not database_url.startswith(("postgres://", "postgresql://")):
            raise ConfigError("DATABASE_URL must be a postgresql:// URL")
        redis_url = get("REDIS_URL")
        if not redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise ConfigError("REDIS_URL must be a redis:// or rediss:// URL")
        kafka = get("KAFKA_BOOTSTRAP_SERVERS")
        for server in kafka.split(","):
            host, _, port = server.strip().rpartition(":")
            if not host or not port.isdigit():
                raise ConfigError(f"KAFKA_BOOTSTRAP_SERVERS entry {server!r} is not host:port")
        jwt_secret = get("JWT_SECRET")
        if len(jwt_secret) < 32:
            raise ConfigError("JWT_SECRET must be at least 32 characters")
        node_ttl = num("NODE_TTL", cls.node_ttl, float, 1, 3600)
        heartbeat = num("HEARTBEAT_INTERVAL", cls.heartbeat_interval, float, 0.1, 600)
        if heartbeat >= node_ttl:
            raise ConfigError("HEARTBEAT_INTERVAL must be shorter than NODE_TTL")
        origins = tuple(o.strip() for o in env.get("CORS_ORIGINS", "").split(",") if o.strip())
        proxies = []
        for entry in env.get("TRUSTED_PROXIES", "").split(","):
            if entry.strip():
                try:
                    proxies.append(ipaddress.ip_network(entry.strip(), strict=False))
                except ValueError:
                    raise ConfigError(
                        f"TRUSTED_PROXIES entry {entry.strip()!r} is not an address or network"
                    ) from None

        def flag(name: str, default: bool) -> bool:
            raw = env.get(name, "").strip().lower()
            if not raw:
                return default
            if raw not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                raise ConfigError(f"{name}={raw!r} must be true or false")
            return raw in ("1", "true", "yes", "on")

        def rate(name: str, default: Rate | None) -> Rate | None:
            raw = env.get(name, "").strip().lower()
            if not raw:
                return default
            if raw == "off":
                return None
            count, _, seconds = raw.partition("/")
            try:
                parsed = Rate(int(count), float(seconds.removesuffix("s")))
            except ValueError:
                parsed = None
            if parsed is None or not (1 <= parsed.count <= 10**6 and 0 < parsed.seconds <= 86400):
                raise ConfigError(f"{name}={raw!r} must be COUNT/SECONDS (like 20/1) or off")
            return parsed

        rates = RateLimits(
            **{
                f.name: rate(name, getattr(RateLimits(), f.name))
                for f, name in zip(fields(RateLimits), rate_limit_env(""), strict=True)
            }
        )
        retention = tuple(
            (prefix, num(f"AUDIT_RETENTION_{name}_DAYS", days, int, 1, 36500))
            for (prefix, days), name in zip(
                cls.audit_retention_days, ("USER", "BOARD", "TASK"), strict=True
            )
        )
        workers = tuple(w.strip() for w in env.get("EMBEDDED_WORKERS", "").split(",") if w.strip())
        for worker in workers:
            if worker not in WORKER_NAMES:
                raise ConfigError(
                    f"EMBEDDED_WORKERS names {worker!r}; known: {', '.join(WORKER_NAMES)}"
                )
        return cls(
            database_url=database_url,
            redis_url=redis_url,
            kafka_bootstrap_servers=kafka,
            jwt_secret=jwt_secret,
            host=get("HOST", cls.host),
            port=num("PORT", cls.port, int, 0, 65535),
            node_id=get("NODE_ID", _default_node_id()),
            env=choice("TASKHUB_ENV", cls.env, ("production", "development", "test")),
            log_level=choice("LOG_LEVEL", cls.log_level, ("DEBUG", "INFO", "WARNING", "ERROR")),
            log_format=choice("LOG_FORMAT", cls.log_format, ("json", "text")),
            event_loop=choice("EVENT_LOOP", cls.event_loop, ("uvloop", "asyncio")),
            jwt_algorithm=choice("JWT_ALGORITHM", cls.jwt_algorithm, ("HS256", "HS384", "HS512")),
            access_token_ttl=num("ACCESS_TOKEN_TTL", cls.access_token_ttl, int, 10, 86400),
            refresh_token_ttl=num("REFRESH_TOKEN_TTL", cls.refresh_token_ttl, int, 60, 10**8),
            bcrypt_rounds=num("BCRYPT_ROUNDS", cls.bcrypt_rounds, int, 4, 16),
            max_payload_bytes=num("MAX_PAYLOAD_BYTES", cls.max_payload_bytes, int, 1024, 2**24),
            redis_key_prefix=get("REDIS_KEY_PREFIX", ""),
            kafka_topic_prefix=get("KAFKA_TOPIC_PREFIX", ""),
            socketio_channel=get("SOCKETIO_CHANNEL", cls.socketio_channel),
            heartbeat_interval=heartbeat,
            node_ttl=node_ttl,
            reap_interval=num("REAP_INTERVAL", cls.reap_interval, float, 0.1, 600),
            db_pool_min=num("DB_POOL_MIN", cls.db_pool_min, int, 1, 100),
            db_pool_max=num("DB_POOL_MAX", cls.db_pool_max, int, 1, 500),
            redis_pool_max=num("REDIS_POOL_MAX", cls.redis_pool_max, int, 2, 10_000),
            ping_interval=num("PING_INTERVAL", cls.ping_interval, float, 1, 600),
            ping_timeout=num("PING_TIMEOUT", cls.ping_timeout, float, 1, 600),
            connect_timeout=num("CONNECT_TIMEOUT", cls.connect_timeout, float, 0.5, 600),
            rate_limits=rates,
            max_connections_per_user=num(
                "MAX_CONNECTIONS_PER_USER", cls.max_connections_per_user, int, 1, 100_000
            ),
            cors_origins=origins,
            user_tokens_without_origin=flag(
                "USER_TOKENS_WITHOUT_ORIGIN", cls.user_tokens_without_origin
            ),
            trusted_proxies=tuple(proxies),
            outbound_buffer_bytes=num(
                "OUTBOUND_BUFFER_BYTES", cls.outbound_buffer_bytes, int, 64 * 1024, 2**30
            ),
            kafka_idempotence=flag("KAFKA_IDEMPOTENCE", cls.kafka_idempotence),
            kafka_fetch_max_wait_ms=num(
                "KAFKA_FETCH_MAX_WAIT_MS", cls.kafka_fetch_max_wait_ms, int, 1, 30_000
            ),
            catch_up_window=num("CATCH_UP_WINDOW", cls.catch_up_window, int, 1, 10**7),
            outbox_poll_interval=num(
                "OUTBOX_POLL_INTERVAL", cls.outbox_poll_interval, float, 0.01, 600
            ),
            outbox_batch_size=num("OUTBOX_BATCH_SIZE", cls.outbox_batch_size, int, 1, 100_000),
            scheduler_interval=num("SCHEDULER_INTERVAL", cls.scheduler_interval, float, 0.05, 600),
            audit_retention_days=retention,
            embedded_workers=workers,
        )

    def public_summary(self) -> dict[str, object]:
        """Every setting that is safe to log (no URL credentials, no secret)."""
        hidden = {"database_url", "redis_url", "jwt_secret"}
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in hidden}
