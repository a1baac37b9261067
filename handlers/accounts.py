"""Accounts over REST: register, login, refresh, logout, me.

Access tokens are short-lived JWTs; refresh tokens are random, stored hashed and
rotated on every use (see storage/sessions.py for reuse detection). Every
answer that issues a refresh token also sets it as an httpOnly cookie, so a
browser page keeps only the access token in memory; refresh and logout accept
the token from that cookie when the body does not carry one.
"""

from __future__ import annotations

import logging
import secrets
import uuid
from typing import Any

from aiohttp import web
from yarl import URL

from handlers import passwords, rate_limits
from handlers.audit_context import request_metadata
from handlers.deps import AccessClaims, Deps
from handlers.rest import DEPS, bearer, body, client_ip, json_response
from protocol import correlation
from protocol.audit import AuditType, EntityType
from protocol.catalog import Limit
from protocol.errors import Forbidden, InvalidPayload, Unauthorized
from protocol.models import User
from protocol.payloads import Login, LogoutRequest, RefreshRequest, Register
from storage import audit, session_cache, sessions, users
from storage.db import Connection, transaction

log = logging.getLogger(__name__)

_BAD_LOGIN = "wrong email or password"

REFRESH_COOKIE = "taskhub_refresh"
# Only the calls that take a refresh token get it; boards, tasks and sockets never see it.
_REFRESH_COOKIE_PATH = "/api/auth"


def _set_refresh_cookie(
    response: web.StreamResponse, request: web.Request, token: str, max_age: int
) -> None:
    """The one place that knows the cookie's name and attributes.

    HttpOnly keeps it from page scripts (an XSS cannot read it), SameSite=Strict
    keeps other sites' pages from sending it, and Secure follows the request so
    plain-http development still works. `max_age=0` clears it.
    """
    response.set_cookie(
        REFRESH_COOKIE,
        token,
        max_age=max_age,
        path=_REFRESH_COOKIE_PATH,
        httponly=True,
        samesite="Strict",
        secure=request.secure,
    )


def _same_origin(request: web.Request) -> bool:
    """No Origin header, or one whose host:port is the request's Host.

    Browsers send Origin on every cross-site POST, so a foreign or `null` origin
    means a page of another site is spending this browser's cookie.
    """
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    try:
        theirs = URL(origin)
        ours = URL.build(scheme=theirs.scheme, authority=request.host)
    except (ValueError, TypeError):
        return False
    return (
        theirs.scheme in ("http", "https")
        and theirs.host is not None
        and (theirs.host, theirs.port) == (ours.host, ours.port)
    )


def _refresh_token(request: web.Request, given: str | None) -> str | None:
    """The body's refresh token, else the cookie's; a cookie needs a same-origin caller."""
    if given:
        return given
    cookie = request.cookies.get(REFRESH_COOKIE)
    if not cookie:
        return None
    if not _same_origin(request):
        raise Forbidden("the refresh cookie is only accepted from this site's pages")
    return cookie


def _token_response(
    deps: Deps, request: web.Request, tokens: dict[str, Any], status: int = 200
) -> web.Response:
    response = json_response(tokens, status=status)
    _set_refresh_cookie(response, request, tokens["refresh_token"], deps.limits.refresh_token_ttl)
    return response


def account_inactive() -> Unauthorized:
    """Why a deactivated user is refused, and why their connections are closed."""
    return Unauthorized("this account is not active", {"reason": "account_inactive"})


def session_revoked() -> Unauthorized:
    """Why an ended login is refused, and why its connections are closed."""
    return Unauthorized("this session has ended; log in again", {"reason": "session_revoked"})


async def active_user(conn: Connection, claims: AccessClaims) -> User:
    """The token's user, if still active and its login not revoked.

    Both are read from PostgreSQL on every call, in one query: a logout or a
    deactivation refuses the next connect at once, which a check of the JWT alone
    could not promise before the token expires.
    """
    found = await users.get_with_login(conn, claims.user_id, claims.session_id)
    if found is None or not found[0].is_active:
        raise account_inactive()
    user, login_live = found
    if not login_live:
        raise session_revoked()
    return user


async def authenticate(deps: Deps, token: str) -> tuple[User, AccessClaims]:
    """Verify an access token and load its user, for a socket connect and `auth:refresh`;
    the claims say until when the connection may live on it."""
    claims = deps.tokens.verify(token)
    async with deps.pool.acquire() as conn:
        return await active_user(conn, claims), claims


async def _issue(
    deps: Deps, conn: Connection, user: User, request: web.Request, family: Any = None
) -> dict[str, Any]:
    refresh = secrets.token_urlsafe(32)
    session = await sessions.create(
        conn,
        user.id,
        refresh,
        deps.limits.refresh_token_ttl,
        family_id=family,
        user_agent=request.headers.get("User-Agent", "")[:500] or None,
        ip=client_ip(request),
    )
    return {
        "user": user,
        "access_token": deps.tokens.issue(user.id, session.family_id),
        "refresh_token": refresh,
        "token_type": "Bearer",
        "expires_in": deps.limits.access_token_ttl,
        "session_id": session.family_id,
    }


async def _audit_user(
    conn: Connection,
    request: web.Request,
    kind: AuditType,
    user_id: uuid.UUID,
    session_id: uuid.UUID | None,
) -> None:
    """An account event for the audit trail, in the transaction of the change."""
    await audit.record(
        conn,
        type=kind,
        actor_id=user_id,
        entity_type=EntityType.USER,
        entity_id=user_id,
        metadata=request_metadata(request, session_id),
        correlation_id=correlation.current(),
    )


async def _remember(deps: Deps, tokens: dict[str, Any], request: web.Request) -> None:
    await session_cache.remember(
        deps.redis,
        deps.keys,
        tokens["user"].id,
        tokens["session_id"],
        user_agent=request.headers.get("User-Agent"),
        ip=client_ip(request),
    )


async def register(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    payload = await body(request, Register)
    password_hash = await passwords.hash_password(payload.password, deps.limits.bcrypt_rounds)
    async with transaction(deps.pool) as conn:
        user = await users.create(conn, payload.email, payload.name, password_hash)
        tokens = await _issue(deps, conn, user, request)
        await _audit_user(conn, request, AuditType.USER_REGISTERED, user.id, tokens["session_id"])
    await _remember(deps, tokens, request)
    log.info("user registered", extra={"user_id": str(user.id)})
    return _token_response(deps, request, tokens, status=201)


async def login(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    payload = await body(request, Login)
    # before the password is hashed: guessing costs a try whether it is right or not
    await rate_limits.charge(deps, Limit.LOGIN, payload.email.strip().lower(), client_ip(request))
    async with deps.pool.acquire() as conn:
        found = await users.get_credentials(conn, payload.email)
    user, password_hash = found if found else (None, None)
    valid = await passwords.check_password(
        payload.password, password_hash, deps.limits.bcrypt_rounds
    )
    if user is None or not valid or not user.is_active:
        raise Unauthorized(_BAD_LOGIN)
    async with transaction(deps.pool) as conn:
        tokens = await _issue(deps, conn, user, request)
        await _audit_user(conn, request, AuditType.USER_LOGIN, user.id, tokens["session_id"])
    await _remember(deps, tokens, request)
    log.info("user logged in", extra={"user_id": str(user.id)})
    return _token_response(deps, request, tokens)


async def refresh(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    token: str | None
    if REFRESH_COOKIE not in request.cookies:
        # Without a cookie the body is required, with today's errors for bots and scripts.
        token = (await body(request, RefreshRequest)).refresh_token
    elif request.can_read_body:
        # LogoutRequest is the same shape with the token optional, so `{}` leans on the cookie.
        token = (await body(request, LogoutRequest)).refresh_token
    else:
        token = None  # a browser sends the cookie and no body
    token = _refresh_token(request, token)
    if token is None:
        raise InvalidPayload("send {refresh_token} or the refresh cookie")
    reused = None
    async with transaction(deps.pool) as conn:
        session = await sessions.find_for_update(conn, token)
        if session is None or session.revoked_at is not None:
            raise Unauthorized("refresh token is not valid")
        if session.rotated_at is not None:
            # A rotated token came back: someone holds a copy. End the whole login.
            await sessions.revoke_family(conn, session.family_id)
            reused = session
        else:
            user = await users.get(conn, session.user_id)
            if user is None or not user.is_active:
                raise Unauthorized("this account is not active")
            if session.expired:
                raise Unauthorized("refresh token expired; log in again")
            await sessions.mark_rotated(conn, session.id)
            tokens = await _issue(deps, conn, user, request, family=session.family_id)
    if reused is not None:
        await session_cache.forget(deps.redis, deps.keys, reused.user_id, reused.family_id)
        log.warning("refresh token reused; session revoked", extra={"user_id": str(reused.user_id)})
        raise Unauthorized("refresh token was already used; the session is revoked")
    await _remember(deps, tokens, request)
    return _token_response(deps, request, tokens)


async def logout(request: web.Request) -> web.Response:
    """End the login of the refresh token given (body, else cookie), or else of the bearer token.

    The bearer token is still required, as before: a page that reloaded and lost
    its access token refreshes with the cookie first.
    """
    deps = request.app[DEPS]
    claims = bearer(request)
    payload = await body(request, LogoutRequest) if request.can_read_body else LogoutRequest()
    token = _refresh_token(request, payload.refresh_token)
    async with transaction(deps.pool) as conn:
        family = claims.session_id
        if token:
            session = await sessions.find_for_update(conn, token)
            if session is None or session.user_id != claims.user_id:
                raise Unauthorized("refresh token is not valid")
            family = session.family_id
        if family is not None:
            await sessions.revoke_family(conn, family)
        await _audit_user(conn, request, AuditType.USER_LOGOUT, claims.user_id, family)
    if family is not None:
        await session_cache.forget(deps.redis, deps.keys, claims.user_id, family)
    log.info("user logged out", extra={"user_id": str(claims.user_id)})
    response = web.Response(status=204)
    _set_refresh_cookie(response, request, "", max_age=0)
    return response


async def me(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    claims = bearer(request)
    async with deps.pool.acquire() as conn:
        user = await active_user(conn, claims)
    return json_response({"user": user})


def routes() -> list[web.RouteDef]:
    return [
        web.post("/api/auth/register", register),
        web.post("/api/auth/login", login),
        web.post("/api/auth/refresh", refresh),
        web.post("/api/auth/logout", logout),
        web.get("/api/me", me),
    ]
