"""Accounts over REST against the real hub: register, login, refresh, logout, me."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from http.cookies import Morsel, SimpleCookie
from typing import Any

import aiohttp
import jwt
from redis.asyncio import Redis

from tests.support import Hub

PASSWORD = "s3cret-pass"


def new_email(name: str = "user") -> str:
    return f"{name}.{uuid.uuid4().hex[:8]}@example.com"


async def user_count(hub: Hub, email: str | None = None) -> int:
    conn = await hub.db()
    try:
        if email is None:
            return int(await conn.fetchval("SELECT count(*) FROM users"))
        return int(await conn.fetchval("SELECT count(*) FROM users WHERE email = $1", email))
    finally:
        await conn.close()


async def raw_post(hub: Hub, path: str, data: bytes | str, content_type: str) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(hub.url + path, data=data, headers={"Content-Type": content_type}) as resp,
    ):
        body = await resp.json() if resp.content_type == "application/json" else await resp.text()
        return resp.status, body


async def login(hub: Hub, email: str, password: str = PASSWORD) -> tuple[int, Any]:
    return await hub.request("POST", "/api/auth/login", json={"email": email, "password": password})


async def refresh(hub: Hub, refresh_token: str) -> tuple[int, Any]:
    return await hub.request("POST", "/api/auth/refresh", json={"refresh_token": refresh_token})


async def me(hub: Hub, token: str | None) -> tuple[int, Any]:
    return await hub.request("GET", "/api/me", token=token)


def assert_unauthorized(status: int, body: Any) -> None:
    assert status == 401, body
    assert body["error"]["code"] == "unauthorized", body
    assert body["error"]["message"], body


REFRESH_COOKIE = "taskhub_refresh"


@dataclass
class Answer:
    status: int
    body: Any
    cookie: Morsel[str] | None  # the refresh cookie the answer set, if any


async def browser_post(
    hub: Hub,
    path: str,
    *,
    cookie: str | None = None,
    origin: str | None = None,
    token: str | None = None,
    json: Any = None,
) -> Answer:
    """A POST as a board page makes it: the refresh cookie sent by hand, Set-Cookie read raw.

    A DummyCookieJar keeps aiohttp's own jar (which refuses cookies for an IP host
    anyway) from adding or storing anything behind the test's back.
    """
    headers: dict[str, str] = {}
    if cookie is not None:
        headers["Cookie"] = f"{REFRESH_COOKIE}={cookie}"
    if origin is not None:
        headers["Origin"] = origin
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    async with (
        aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session,
        session.post(hub.url + path, json=json, headers=headers) as resp,
    ):
        body = await resp.json() if resp.content_type == "application/json" else await resp.text()
        jar: SimpleCookie = SimpleCookie()
        for header in resp.headers.getall("Set-Cookie", []):
            jar.load(header)
        return Answer(resp.status, body, jar.get(REFRESH_COOKIE))


def assert_refresh_cookie(answer: Answer, hub: Hub) -> str:
    """The cookie carries the body's refresh token with the attributes a browser needs."""
    morsel = answer.cookie
    assert morsel is not None, answer
    assert morsel.value == answer.body["refresh_token"]
    assert morsel["httponly"] is True
    assert morsel["samesite"] == "Strict"
    assert morsel["path"] == "/api/auth"
    assert int(morsel["max-age"]) == hub.settings.refresh_token_ttl
    assert not morsel["secure"]  # plain http in tests; https requests get Secure
    return morsel.value


def session_of(access_token: str) -> str:
    """The login (session family) an access token belongs to, as the hub wrote it."""
    return str(jwt.decode(access_token, options={"verify_signature": False})["sid"])


# -- register ----------------------------------------------------------------


async def test_register_returns_user_and_both_tokens(hub: Hub) -> None:
    email = new_email("ada")
    status, body = await hub.request(
        "POST",
        "/api/auth/register",
        json={"email": email, "name": "Ada Lovelace", "password": PASSWORD},
    )
    assert status == 201, body
    user = body["user"]
    assert user["email"] == email
    assert user["name"] == "Ada Lovelace"
    assert user["role"] == "user"
    assert user["is_active"] is True
    uuid.UUID(user["id"])
    assert body["access_token"] and body["refresh_token"]
    assert body["access_token"] != body["refresh_token"]
    assert body["token_type"] == "Bearer"

    status, mine = await me(hub, body["access_token"])
    assert status == 200, mine
    assert mine["user"]["id"] == user["id"]
    assert mine["user"]["email"] == email
    assert await user_count(hub, email) == 1


async def test_password_of_exactly_eight_characters_is_accepted(hub: Hub) -> None:
    email = new_email()
    status, body = await hub.request(
        "POST", "/api/auth/register", json={"email": email, "name": "Eight", "password": "8chars!!"}
    )
    assert status == 201, body
    status, body = await login(hub, email, "8chars!!")
    assert status == 200, body


async def test_duplicate_email_differing_only_in_case_is_a_conflict(hub: Hub) -> None:
    local = f"Mixed.Case.{uuid.uuid4().hex[:8]}"
    first = f"{local}@Example.com"
    status, body = await hub.request(
        "POST", "/api/auth/register", json={"email": first, "name": "One", "password": PASSWORD}
    )
    assert status == 201, body

    again = f"{local.lower()}@EXAMPLE.COM"
    status, body = await hub.request(
        "POST", "/api/auth/register", json={"email": again, "name": "Two", "password": PASSWORD}
    )
    assert status == 409, body
    assert body["error"]["code"] == "conflict", body
    assert body["error"]["message"]
    assert await user_count(hub) == 1
    # The first account is untouched: its password still logs in, under either spelling.
    status, body = await login(hub, again)
    assert status == 200, body
    assert body["user"]["name"] == "One"


async def test_invalid_registrations_are_refused_and_write_nothing(hub: Hub) -> None:
    email = new_email("bad")
    good = {"email": email, "name": "Bad Input", "password": PASSWORD}
    json_cases: dict[str, Any] = {
        "password shorter than 8": {**good, "password": "short77"},
        "empty password": {**good, "password": ""},
        "email without @": {**good, "email": "not-an-email"},
        "email without domain dot": {**good, "email": "someone@localhost"},
        "missing name": {"email": email, "password": PASSWORD},
        "missing password": {"email": email, "name": "Bad Input"},
        "blank name": {**good, "name": "   "},
        "unknown field": {**good, "role": "admin"},
        "password not a string": {**good, "password": 12345678},
        "body is a list": [good],
        "body is null": None,
    }
    for case, payload in json_cases.items():
        status, body = await raw_post(
            hub, "/api/auth/register", json.dumps(payload), "application/json"
        )
        assert status == 400, (case, body)
        assert body["error"]["code"] == "invalid_payload", (case, body)
        assert body["error"]["message"], (case, body)

    raw_cases: dict[str, tuple[str, str]] = {
        "not JSON": ('{"email": "' + email + '", "name": ', "application/json"),
        "empty body": ("", "application/json"),
        "wrong content type": (json.dumps(good), "text/plain"),
        "form encoded": (
            f"email={email}&name=Bad&password={PASSWORD}",
            "application/x-www-form-urlencoded",
        ),
    }
    for case, (data, content_type) in raw_cases.items():
        status, body = await raw_post(hub, "/api/auth/register", data, content_type)
        assert status == 400, (case, body)
        assert body["error"]["code"] == "invalid_payload", (case, body)

    assert await user_count(hub) == 0
    # The same email with a valid body is still free.
    status, body = await hub.request("POST", "/api/auth/register", json=good)
    assert status == 201, body
    assert await user_count(hub) == 1


# -- login -------------------------------------------------------------------


async def test_login_with_the_right_password(hub: Hub) -> None:
    alice = await hub.register("Alice")
    status, body = await login(hub, alice.email)
    assert status == 200, body
    assert body["user"]["id"] == alice.id
    assert body["access_token"] and body["refresh_token"]
    # A new login is a new session with its own tokens.
    assert body["refresh_token"] != alice.refresh_token
    assert session_of(body["access_token"]) != session_of(alice.access_token)
    status, mine = await me(hub, body["access_token"])
    assert status == 200, mine
    assert mine["user"]["id"] == alice.id


async def test_wrong_password_and_unknown_email_look_the_same(hub: Hub) -> None:
    alice = await hub.register("Alice")
    wrong_status, wrong = await login(hub, alice.email, "not-the-password")
    unknown_status, unknown = await login(hub, new_email("nobody"), PASSWORD)
    assert_unauthorized(wrong_status, wrong)
    assert_unauthorized(unknown_status, unknown)
    assert wrong == unknown
    assert "access_token" not in wrong and "access_token" not in unknown


async def test_login_payload_is_validated(hub: Hub) -> None:
    status, body = await hub.request("POST", "/api/auth/login", json={"email": "a@b.co"})
    assert status == 400, body
    assert body["error"]["code"] == "invalid_payload"
    status, body = await raw_post(hub, "/api/auth/login", "email=a@b.co", "text/plain")
    assert status == 400, body
    assert body["error"]["code"] == "invalid_payload"


# -- refresh -----------------------------------------------------------------


async def test_refresh_rotates_the_refresh_token(hub: Hub) -> None:
    alice = await hub.register("Alice")
    status, first = await refresh(hub, alice.refresh_token)
    assert status == 200, first
    assert first["user"]["id"] == alice.id
    assert first["refresh_token"] != alice.refresh_token
    assert first["access_token"] != alice.access_token
    # Same login: the session carries on.
    assert session_of(first["access_token"]) == session_of(alice.access_token)
    status, mine = await me(hub, first["access_token"])
    assert status == 200, mine

    # The new refresh token works in turn...
    status, second = await refresh(hub, first["refresh_token"])
    assert status == 200, second
    assert second["refresh_token"] not in (first["refresh_token"], alice.refresh_token)

    # ...and the one already exchanged is refused.
    status, body = await refresh(hub, alice.refresh_token)
    assert_unauthorized(status, body)
    assert "access_token" not in body


async def test_unknown_refresh_token_is_refused(hub: Hub) -> None:
    await hub.register("Alice")
    status, body = await refresh(hub, "definitely-not-a-token")
    assert_unauthorized(status, body)
    status, body = await hub.request("POST", "/api/auth/refresh", json={})
    assert status == 400, body
    assert body["error"]["code"] == "invalid_payload"


async def test_reusing_a_rotated_refresh_token_revokes_the_whole_login(hub: Hub) -> None:
    alice = await hub.register("Alice")
    # A second, separate login of the same user that must survive.
    status, other = await login(hub, alice.email)
    assert status == 200, other

    status, rotated = await refresh(hub, alice.refresh_token)
    assert status == 200, rotated
    newest_refresh, newest_access = rotated["refresh_token"], rotated["access_token"]
    assert (await me(hub, newest_access))[0] == 200

    # The old token comes back (a stolen copy): refused, and the login ends.
    status, body = await refresh(hub, alice.refresh_token)
    assert_unauthorized(status, body)

    status, body = await refresh(hub, newest_refresh)
    assert_unauthorized(status, body)
    assert_unauthorized(*await me(hub, newest_access))
    assert_unauthorized(*await me(hub, alice.access_token))
    status, body = await hub.request("GET", "/api/boards", token=newest_access)
    assert_unauthorized(status, body)

    # The other login of the same user is not affected.
    status, mine = await me(hub, other["access_token"])
    assert status == 200, mine
    status, body = await refresh(hub, other["refresh_token"])
    assert status == 200, body


# -- logout ------------------------------------------------------------------


async def test_logout_ends_the_session(hub: Hub) -> None:
    alice = await hub.register("Alice")
    status, other = await login(hub, alice.email)
    assert status == 200, other

    status, body = await hub.request("POST", "/api/auth/logout", token=alice.access_token)
    assert status == 204, body

    assert_unauthorized(*await me(hub, alice.access_token))
    assert_unauthorized(*await refresh(hub, alice.refresh_token))
    # Only that login ended.
    status, mine = await me(hub, other["access_token"])
    assert status == 200, mine


async def test_logout_needs_a_bearer_token(hub: Hub) -> None:
    alice = await hub.register("Alice")
    assert_unauthorized(*await hub.request("POST", "/api/auth/logout"))
    assert_unauthorized(*await hub.request("POST", "/api/auth/logout", token="garbage"))
    # Nothing was revoked by those attempts.
    assert (await me(hub, alice.access_token))[0] == 200
    assert (await refresh(hub, alice.refresh_token))[0] == 200


# -- /api/me and access tokens -----------------------------------------------


async def test_me_without_a_valid_token_is_unauthorized(hub: Hub) -> None:
    alice = await hub.register("Alice")
    assert_unauthorized(*await me(hub, None))
    assert_unauthorized(*await me(hub, "garbage"))
    assert_unauthorized(*await me(hub, alice.refresh_token))
    assert_unauthorized(
        *await hub.request(
            "GET", "/api/me", headers={"Authorization": f"Basic {alice.access_token}"}
        )
    )
    # A token with the right claims, signed with another key.
    claims = jwt.decode(alice.access_token, options={"verify_signature": False})
    forged = jwt.encode(claims, "another-secret-" + "y" * 40, algorithm="HS256")
    assert_unauthorized(*await me(hub, forged))
    # Unsigned tokens are never accepted.
    unsigned = jwt.encode(claims, None, algorithm="none")
    assert_unauthorized(*await me(hub, unsigned))


async def test_expired_access_token_is_unauthorized(hub: Hub) -> None:
    alice = await hub.register("Alice")
    now = int(time.time())

    def token(iat: int, exp: int) -> str:
        claims = {
            "sub": alice.id,
            "sid": session_of(alice.access_token),
            "iat": iat,
            "exp": exp,
            "jti": uuid.uuid4().hex,
            "iss": "taskhub",
            "aud": "taskhub",
        }
        return jwt.encode(claims, hub.settings.jwt_secret, algorithm=hub.settings.jwt_algorithm)

    # The same claims with a future expiry are accepted, so only the expiry is refused.
    status, body = await me(hub, token(now - 60, now + 600))
    assert status == 200, body

    status, body = await me(hub, token(now - 3600, now - 1800))
    assert_unauthorized(status, body)
    assert body["error"]["details"]["reason"] == "token_expired", body


async def test_deactivated_user_cannot_log_in_and_its_tokens_stop_working(hub: Hub) -> None:
    alice = await hub.register("Alice")
    status, body = await login(hub, alice.email)
    assert status == 200, body
    conn = await hub.db()
    try:
        await conn.execute("UPDATE users SET is_active = false WHERE id = $1", uuid.UUID(alice.id))
    finally:
        await conn.close()

    status, denied = await login(hub, alice.email)
    assert_unauthorized(status, denied)
    _, wrong = await login(hub, alice.email, "not-the-password")
    assert denied == wrong  # nothing tells that the account exists but is disabled
    assert_unauthorized(*await me(hub, alice.access_token))
    assert_unauthorized(*await me(hub, body["access_token"]))
    assert_unauthorized(*await refresh(hub, alice.refresh_token))
    assert_unauthorized(
        *await hub.request("POST", "/api/boards", token=alice.access_token, json={"name": "X"})
    )


# -- stored secrets ----------------------------------------------------------


async def test_passwords_are_bcrypt_hashed_and_never_returned(hub: Hub) -> None:
    email = new_email("ada")
    responses: list[Any] = []
    status, body = await hub.request(
        "POST", "/api/auth/register", json={"email": email, "name": "Ada", "password": PASSWORD}
    )
    assert status == 201, body
    responses.append(body)
    status, body = await login(hub, email)
    assert status == 200, body
    responses.append(body)
    status, body = await refresh(hub, body["refresh_token"])
    assert status == 200, body
    responses.append(body)
    status, body = await me(hub, body["access_token"])
    assert status == 200, body
    responses.append(body)

    conn = await hub.db()
    try:
        row = await conn.fetchrow("SELECT password_hash FROM users WHERE email = $1", email)
        stored_refresh = await conn.fetch("SELECT token_hash FROM sessions")
    finally:
        await conn.close()
    password_hash = row["password_hash"]
    assert password_hash.startswith("$2b$"), password_hash
    assert PASSWORD not in password_hash

    for response in responses:
        text = json.dumps(response)
        assert password_hash not in text
        assert PASSWORD not in text
        assert "password" not in text
        assert "$2b$" not in text
    # Refresh tokens are stored hashed, not as issued.
    issued = {r["refresh_token"] for r in responses if "refresh_token" in r}
    for stored in stored_refresh:
        value = bytes(stored["token_hash"])
        assert all(token.encode() != value for token in issued)


async def test_redis_session_hash_follows_login_and_logout(hub: Hub) -> None:
    alice = await hub.register("Alice")
    status, body = await login(hub, alice.email)
    assert status == 200, body
    session_id = body["session_id"]
    assert session_id == session_of(body["access_token"])

    redis = Redis.from_url(hub.settings.redis_url, decode_responses=True)
    key = f"{hub.settings.redis_key_prefix}session:{alice.id}"
    try:
        assert await redis.exists(key) == 1
        assert await redis.hexists(key, session_id)
        assert await redis.hexists(key, session_of(alice.access_token))
        ttl = await redis.ttl(key)
        assert 0 < ttl <= 24 * 3600, ttl

        status, out = await hub.request("POST", "/api/auth/logout", token=body["access_token"])
        assert status == 204, out
        assert not await redis.hexists(key, session_id)
        # The registration's login is still there.
        assert await redis.hexists(key, session_of(alice.access_token))
    finally:
        await redis.aclose()


async def test_a_password_over_72_bytes_is_refused_not_crashed(hub: Hub) -> None:
    status, body = await hub.request(
        "POST",
        "/api/auth/register",
        json={"email": "utf8@example.com", "name": "U", "password": "é" * 40},
    )
    assert status == 400 and body["error"]["code"] == "invalid_payload", body
    assert "72 bytes" in body["error"]["message"]


# -- refresh token cookie (browser pages) --------------------------------------


async def test_register_login_and_refresh_set_the_refresh_cookie(hub: Hub) -> None:
    email = new_email("ada")
    answer = await browser_post(
        hub, "/api/auth/register", json={"email": email, "name": "Ada", "password": PASSWORD}
    )
    assert answer.status == 201, answer
    assert_refresh_cookie(answer, hub)

    answer = await browser_post(hub, "/api/auth/login", json={"email": email, "password": PASSWORD})
    assert answer.status == 200, answer
    cookie = assert_refresh_cookie(answer, hub)
    # The JSON body keeps the token too: bots and the Python client read it there.
    assert answer.body["refresh_token"] == cookie and answer.body["access_token"]

    answer = await browser_post(hub, "/api/auth/refresh", json={"refresh_token": cookie})
    assert answer.status == 200, answer
    assert assert_refresh_cookie(answer, hub) != cookie


async def test_a_failed_login_sets_no_cookie(hub: Hub) -> None:
    alice = await hub.register("Alice")
    answer = await browser_post(
        hub, "/api/auth/login", json={"email": alice.email, "password": "not-the-password"}
    )
    assert_unauthorized(answer.status, answer.body)
    assert answer.cookie is None


async def test_refresh_with_only_the_cookie_rotates_it(hub: Hub) -> None:
    alice = await hub.register("Alice")
    # No body at all, as a browser's fetch sends it; the page's own origin.
    answer = await browser_post(
        hub, "/api/auth/refresh", cookie=alice.refresh_token, origin=hub.url
    )
    assert answer.status == 200, answer
    first = assert_refresh_cookie(answer, hub)
    assert first != alice.refresh_token
    assert answer.body["user"]["id"] == alice.id
    assert session_of(answer.body["access_token"]) == session_of(alice.access_token)
    assert (await me(hub, answer.body["access_token"]))[0] == 200

    # An empty JSON object leans on the cookie as well; no Origin is fine too.
    answer = await browser_post(hub, "/api/auth/refresh", cookie=first, json={})
    assert answer.status == 200, answer
    second = assert_refresh_cookie(answer, hub)
    assert second not in (first, alice.refresh_token)


async def test_the_body_token_wins_over_the_cookie(hub: Hub) -> None:
    alice = await hub.register("Alice")
    status, other = await login(hub, alice.email)
    assert status == 200, other
    answer = await browser_post(
        hub,
        "/api/auth/refresh",
        cookie="not-a-token",
        json={"refresh_token": other["refresh_token"]},
    )
    assert answer.status == 200, answer
    assert session_of(answer.body["access_token"]) == other["session_id"]


async def test_refresh_without_body_token_or_cookie_is_invalid(hub: Hub) -> None:
    for cookie in (None, ""):
        answer = await browser_post(hub, "/api/auth/refresh", cookie=cookie, json={})
        assert answer.status == 400, (cookie, answer)
        assert answer.body["error"]["code"] == "invalid_payload", answer
        assert answer.cookie is None
    answer = await browser_post(hub, "/api/auth/refresh", cookie="not-a-token")
    assert_unauthorized(answer.status, answer.body)


async def test_an_old_cookie_after_rotation_revokes_the_login(hub: Hub) -> None:
    alice = await hub.register("Alice")
    answer = await browser_post(hub, "/api/auth/refresh", cookie=alice.refresh_token)
    assert answer.status == 200, answer
    newest = assert_refresh_cookie(answer, hub)
    newest_access = answer.body["access_token"]

    # A copy of the spent cookie comes back: refused, and the whole login ends.
    answer = await browser_post(hub, "/api/auth/refresh", cookie=alice.refresh_token)
    assert_unauthorized(answer.status, answer.body)
    assert answer.cookie is None
    assert_unauthorized(*await refresh(hub, newest))
    assert_unauthorized(*await me(hub, newest_access))


async def test_logout_with_only_the_cookie_ends_the_login_and_clears_it(hub: Hub) -> None:
    alice = await hub.register("Alice")
    status, other = await login(hub, alice.email)
    assert status == 200, other
    # The page refreshed once, so its cookie is the family's newest token...
    answer = await browser_post(hub, "/api/auth/refresh", cookie=other["refresh_token"])
    assert answer.status == 200, answer
    cookie, access = assert_refresh_cookie(answer, hub), answer.body["access_token"]

    # ...and logs out with a bearer token of the *other* login: the cookie names the one to end.
    answer = await browser_post(
        hub, "/api/auth/logout", cookie=cookie, origin=hub.url, token=alice.access_token
    )
    assert answer.status == 204, answer
    assert answer.cookie is not None
    assert answer.cookie.value == ""
    assert answer.cookie["max-age"] == "0"
    assert answer.cookie["path"] == "/api/auth"

    answer = await browser_post(hub, "/api/auth/refresh", cookie=cookie)
    assert_unauthorized(answer.status, answer.body)
    assert_unauthorized(*await me(hub, access))
    # The bearer's own login was not the one named, so it carries on.
    assert (await me(hub, alice.access_token))[0] == 200
    assert (await refresh(hub, alice.refresh_token))[0] == 200


async def test_a_cookie_from_a_foreign_origin_is_refused_and_changes_nothing(hub: Hub) -> None:
    alice = await hub.register("Alice")
    evil = "https://evil.example"
    for origin in (evil, "null", hub.url.replace("127.0.0.1", "localhost")):
        answer = await browser_post(
            hub, "/api/auth/refresh", cookie=alice.refresh_token, origin=origin
        )
        assert answer.status == 403, (origin, answer)
        assert answer.body["error"]["code"] == "forbidden", answer
        assert answer.cookie is None

    answer = await browser_post(
        hub, "/api/auth/logout", cookie=alice.refresh_token, origin=evil, token=alice.access_token
    )
    assert answer.status == 403, answer
    assert answer.body["error"]["code"] == "forbidden", answer
    assert (await me(hub, alice.access_token))[0] == 200

    # The token was neither spent nor revoked: the page's own origin still refreshes with it.
    answer = await browser_post(
        hub, "/api/auth/refresh", cookie=alice.refresh_token, origin=hub.url
    )
    assert answer.status == 200, answer
    assert_refresh_cookie(answer, hub)
