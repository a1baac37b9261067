"""Bot accounts over REST: create a bot, and create, list and revoke its tokens.

Who may do what:
- an admin creates bots on their own (`POST /api/bots` without `board_id`);
- a board's owner creates a bot for that board: it becomes a member (editor by
  default, never owner); owners add it to more boards by its email;
- a bot's tokens are managed by admins and by the person who created the bot.
  Owners of other boards the bot joined control it through its membership, not
  its tokens, which may reach boards they cannot see.

A revoked token's live connections are closed on every node right after the
revocation commits (and a connect racing it checks the token once more); while Redis
is down, by every node's own check within seconds (handlers/revocation.py).
"""

from __future__ import annotations

import logging
import uuid

from aiohttp import web

from handlers import bot_auth, revocation
from handlers.accounts import active_user
from handlers.audit_context import request_metadata
from handlers.deps import AccessClaims
from handlers.rest import DEPS, bearer, body, json_response, path_uuid
from handlers.socket_hub import HUB_NAMESPACE, HubNamespace
from protocol import correlation
from protocol.audit import AuditType, EntityType
from protocol.bots import Bot, BotCreate, TokenCreate, new_secret
from protocol.errors import Forbidden, NotFound
from protocol.models import BoardRole, Member, User, UserRole
from storage import api_tokens, audit, boards, users
from storage.db import Connection, transaction

log = logging.getLogger(__name__)


async def _audit(
    conn: Connection,
    request: web.Request,
    claims: AccessClaims,
    kind: AuditType,
    entity_type: EntityType,
    entity_id: uuid.UUID,
    data: dict[str, object],
) -> None:
    await audit.record(
        conn,
        type=kind,
        actor_id=claims.user_id,
        entity_type=entity_type,
        entity_id=entity_id,
        metadata=request_metadata(request, claims.session_id),
        correlation_id=correlation.current(),
        data=data,
    )


async def _may_create_on(conn: Connection, caller: User, board_id: uuid.UUID | None) -> None:
    """Admins create free-standing bots; a board's owners create bots for their board."""
    if board_id is None:
        if caller.role != UserRole.ADMIN:
            raise Forbidden("only admins create bots without a board; owners pass board_id")
        return
    role = await boards.role_of(conn, board_id, caller.id)
    if role is None:
        raise NotFound("board not found")  # as everywhere: non-members learn nothing
    if role != BoardRole.OWNER:
        raise Forbidden("only owners of the board can create bots for it")


async def create_bot(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    claims = bearer(request)
    payload = await body(request, BotCreate)
    member: Member | None = None
    async with transaction(deps.pool) as conn:
        caller = await active_user(conn, claims)
        await _may_create_on(conn, caller, payload.board_id)
        bot = await users.create_bot(conn, payload.name, caller.id)
        await _audit(
            conn,
            request,
            claims,
            AuditType.BOT_CREATED,
            EntityType.USER,
            bot.id,
            {"name": bot.name, "board_id": str(payload.board_id) if payload.board_id else None},
        )
        if payload.board_id is not None:
            role = payload.role or BoardRole.EDITOR
            member = await boards.add_member(conn, payload.board_id, bot.id, role)
            await _audit(
                conn,
                request,
                claims,
                AuditType.BOARD_MEMBER_ADDED,
                EntityType.BOARD,
                payload.board_id,
                {"user_id": str(bot.id), "role": str(role)},
            )
    log.info("bot created", extra={"bot_id": str(bot.id), "user_id": str(caller.id)})
    return json_response({"bot": bot, "member": member}, status=201)


async def _managed_bot(conn: Connection, claims: AccessClaims, bot_id: uuid.UUID) -> Bot:
    """The bot, if the caller may manage its tokens (an admin, or its creator)."""
    caller = await active_user(conn, claims)
    bot = await users.get_bot(conn, bot_id)
    if bot is None:
        raise NotFound("bot not found")
    if caller.role != UserRole.ADMIN and bot.created_by != caller.id:
        raise Forbidden("only admins and the bot's creator manage its tokens")
    return bot


async def create_token(request: web.Request) -> web.Response:
    """The secret is in this answer only; the hub keeps its hash."""
    deps = request.app[DEPS]
    claims = bearer(request)
    bot_id = path_uuid(request, "bot_id")
    payload = await body(request, TokenCreate)
    secret = new_secret()
    async with transaction(deps.pool) as conn:
        bot = await _managed_bot(conn, claims, bot_id)
        token = await api_tokens.create(
            conn,
            bot.id,
            secret,
            name=payload.name,
            scopes=payload.scopes,
            days=payload.expires_in_days,
            created_by=claims.user_id,
        )
        await _audit(
            conn,
            request,
            claims,
            AuditType.API_TOKEN_CREATED,
            EntityType.USER,
            bot.id,
            {
                "token_id": str(token.id),
                "name": token.name,
                "scopes": [str(s) for s in token.scopes],
                "expires_at": token.expires_at.isoformat(),
            },
        )
    log.info("api token created", extra={"bot_id": str(bot.id), "token_id": str(token.id)})
    response = json_response({"token": token, "secret": secret}, status=201)
    response.headers["Cache-Control"] = "no-store"
    return response


async def list_tokens(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    claims = bearer(request)
    bot_id = path_uuid(request, "bot_id")
    async with deps.pool.acquire() as conn:
        bot = await _managed_bot(conn, claims, bot_id)
        tokens = await api_tokens.list_for_bot(conn, bot.id)
    return json_response({"tokens": tokens})


async def revoke_token(request: web.Request) -> web.Response:
    """204 whether or not it was revoked before; its connections close either way."""
    deps = request.app[DEPS]
    claims = bearer(request)
    bot_id = path_uuid(request, "bot_id")
    token_id = path_uuid(request, "token_id")
    async with transaction(deps.pool) as conn:
        bot = await _managed_bot(conn, claims, bot_id)
        revoked_now = await api_tokens.revoke(conn, bot.id, token_id)
        if revoked_now is None:
            raise NotFound("this bot has no such token")
        if revoked_now:
            await _audit(
                conn,
                request,
                claims,
                AuditType.API_TOKEN_REVOKED,
                EntityType.USER,
                bot.id,
                {"token_id": str(token_id)},
            )
    closed = 0
    async with revocation.left_to_sweep(
        "closing a revoked token's connections", bot_id=str(bot.id)
    ):
        closed = await disconnect_token(request.app[HUB_NAMESPACE], bot.id, token_id)
    log.info(
        "api token revoked",
        extra={"bot_id": str(bot.id), "token_id": str(token_id), "connections": closed},
    )
    return web.Response(status=204)


async def disconnect_token(ns: HubNamespace, bot_id: uuid.UUID, token_id: uuid.UUID) -> int:
    """Close every live connection of the token, on every node; returns how many.

    A sid held by another node is disconnected through the Socket.IO manager's
    Redis channel; that node's on_disconnect clears its presence.
    """
    sids = await ns.deps.presence.connections_of_token(bot_id, token_id)
    for sid in sids:
        await ns.close(sid, bot_auth.token_revoked())
    return len(sids)


def routes() -> list[web.RouteDef]:
    return [
        web.post("/api/bots", create_bot),
        web.post("/api/bots/{bot_id}/tokens", create_token),
        web.get("/api/bots/{bot_id}/tokens", list_tokens),
        web.delete("/api/bots/{bot_id}/tokens/{token_id}", revoke_token),
    ]
