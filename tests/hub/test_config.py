"""Settings read from an environment mapping: what is refused, and what is never shown."""

from __future__ import annotations

import pytest

from hub.config import ConfigError, Settings

SECRET = "jwt-secret-that-must-never-leak-0123456789"
DB_PASSWORD = "db-pa55word-never-shown"
REDIS_PASSWORD = "redis-pa55word-never-shown"


def env(**overrides: str | None) -> dict[str, str]:
    base = {
        "DATABASE_URL": f"postgresql://taskhub:{DB_PASSWORD}@db.internal:5432/taskhub",
        "REDIS_URL": f"redis://:{REDIS_PASSWORD}@cache.internal:6379/0",
        "KAFKA_BOOTSTRAP_SERVERS": "kafka-1:9092,kafka-2:9092",
        "JWT_SECRET": SECRET,
        "NODE_ID": "node-a",
    }
    for name, value in overrides.items():
        if value is None:
            base.pop(name, None)
        else:
            base[name] = value
    return base


def refused(mapping: dict[str, str], variable: str) -> str:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(mapping)
    message = str(caught.value)
    assert variable in message, message
    return message


def test_a_complete_environment_parses() -> None:
    settings = Settings.from_env(env(PORT="9000"))
    assert settings.port == 9000
    assert settings.database_url.endswith("@db.internal:5432/taskhub")
    assert settings.kafka_bootstrap_servers == "kafka-1:9092,kafka-2:9092"
    assert settings.jwt_secret == SECRET
    assert settings.node_id == "node-a"
    assert Settings.from_env(env()).port == 8080


@pytest.mark.parametrize("value", [None, "", "   "])
def test_missing_database_url(value: str | None) -> None:
    refused(env(DATABASE_URL=value), "DATABASE_URL")


def test_database_url_of_another_kind_is_refused_without_echoing_it() -> None:
    message = refused(env(DATABASE_URL=f"mysql://root:{DB_PASSWORD}@db/x"), "DATABASE_URL")
    assert DB_PASSWORD not in message


@pytest.mark.parametrize("value", ["eighty", "80.5", "-1", "65536", "99999999"])
def test_bad_port(value: str) -> None:
    refused(env(PORT=value), "PORT")


@pytest.mark.parametrize("value", [None, "", "short", "x" * 31])
def test_short_or_missing_jwt_secret(value: str | None) -> None:
    message = refused(env(JWT_SECRET=value), "JWT_SECRET")
    if value:
        assert value not in message


def test_a_secret_of_32_characters_is_enough() -> None:
    assert Settings.from_env(env(JWT_SECRET="s" * 32)).jwt_secret == "s" * 32


@pytest.mark.parametrize(
    "value",
    [None, "kafka", "kafka:", ":9092", "kafka:port", "kafka-1:9092,kafka-2", "kafka-1:9092,,"],
)
def test_bad_kafka_bootstrap_servers(value: str | None) -> None:
    refused(env(KAFKA_BOOTSTRAP_SERVERS=value), "KAFKA_BOOTSTRAP_SERVERS")


def test_other_settings_name_their_variable() -> None:
    refused(env(REDIS_URL=None), "REDIS_URL")
    refused(env(BCRYPT_ROUNDS="3"), "BCRYPT_ROUNDS")
    refused(env(TASKHUB_ENV="staging"), "TASKHUB_ENV")
    refused(env(HEARTBEAT_INTERVAL="30", NODE_TTL="10"), "HEARTBEAT_INTERVAL")
    refused(env(TRUSTED_PROXIES="10.0.0.0/8, balancer.internal"), "TRUSTED_PROXIES")


def test_trusted_proxies_are_addresses_or_networks() -> None:
    settings = Settings.from_env(env(TRUSTED_PROXIES="10.0.0.0/8, 127.0.0.1,::1"))
    assert [str(n) for n in settings.trusted_proxies] == ["10.0.0.0/8", "127.0.0.1/32", "::1/128"]


def test_secrets_never_show_in_repr_or_summary() -> None:
    settings = Settings.from_env(env(PORT="9000"))
    summary = settings.public_summary()
    shown = [repr(settings), str(settings), repr(summary), str(summary)]
    for text in shown:
        assert SECRET not in text, text
        assert DB_PASSWORD not in text, text
        assert REDIS_PASSWORD not in text, text
    # The summary is still useful: it carries the harmless settings.
    assert summary["port"] == 9000
    assert summary["node_id"] == "node-a"
    assert summary["kafka_bootstrap_servers"] == "kafka-1:9092,kafka-2:9092"
