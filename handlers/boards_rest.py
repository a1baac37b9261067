"""Boards over REST: create, list mine, get, members, and the task list."""

from __future__ import annotations

import uuid

from aiohttp import web

from handlers import presence, revocation
from handlers.accounts import active_user
from handlers.audit_context import request_metadata
from handlers.rest import DEPS, bearer, body, json_response, path_uuid, query
from handlers.socket_hub import HUB_NAMESPACE
from protocol import correlation
from protocol.audit import AuditType, EntityType
from protocol.errors import Forbidden, InvalidPayload, NotFound
from protocol.models import BoardRole, UserRole
from protocol.payloads import BoardCreate, MemberAdd, TaskQuery
from storage import audit, boards, tasks, users
from storage.db import Connection, transaction


async def _member_role(conn: Connection, board_id: uuid.UUID, user_id: uuid.UUID) -> BoardRole:
    """The caller's role; to a non-member the board answers as if it did not exist."""
    role = await boards.role_of(conn, board_id, user_id)
    if role is None:
        raise NotFound("board not found")
    return role


async def create_board(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    claims = bearer(request)
    payload = await body(request, BoardCreate)
    async with transaction(deps.pool) as conn:
        await active_user(conn, claims)
        board = await boards.create(conn, payload.name, claims.user_id)
    return json_response(board, status=201)


async def list_boards(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    claims = bearer(request)
    async with deps.pool.acquire() as conn:
        await active_user(conn, claims)
        return json_response({"boards": await boards.list_for_user(conn, claims.user_id)})


async def get_board(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    claims = bearer(request)
    board_id = path_uuid(request, "board_id")
    async with deps.pool.acquire() as conn:
        await active_user(conn, claims)
        board = await boards.get_for_member(conn, board_id, claims.user_id)
        if board is None or board.role is None:
            # Non-members learn nothing, not even that the board exists.
            raise NotFound("board not found")
        members = await boards.members(conn, board_id)
    return json_response({"board": board, "members": members})


async def add_member(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    claims = bearer(request)
    board_id = path_uuid(request, "board_id")
    payload = await body(request, MemberAdd)
    async with transaction(deps.pool) as conn:
        await active_user(conn, claims)
        if await _member_role(conn, board_id, claims.user_id) != BoardRole.OWNER:
            raise Forbidden("only owners can add members")
        user = await users.get_by_email(conn, payload.email)
        if user is None or not user.is_active:
            raise NotFound("no active account has this email")
        if user.role == UserRole.BOT and payload.role == BoardRole.OWNER:
            raise InvalidPayload("a bot cannot own a board; use editor or viewer")
        member = await boards.add_member(conn, board_id, user.id, payload.role)
        await audit.record(
            conn,
            type=AuditType.BOARD_MEMBER_ADDED,
            actor_id=claims.user_id,
            entity_type=EntityType.BOARD,
            entity_id=board_id,
            metadata=request_metadata(request, claims.session_id),
            correlation_id=correlation.current(),
            data={"user_id": str(user.id), "role": str(member.role)},
        )
    return json_response(member, status=201)


async def remove_member(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    claims = bearer(request)
    board_id = path_uuid(request, "board_id")
    user_id = path_uuid(request, "user_id")
    async with transaction(deps.pool) as conn:
        await active_user(conn, claims)
        await boards.lock(conn, board_id)
        role = await _member_role(conn, board_id, claims.user_id)
        if role != BoardRole.OWNER and user_id != claims.user_id:
            raise Forbidden("only owners can remove other members")
        target = await boards.role_of(conn, board_id, user_id)
        if target == BoardRole.OWNER and await boards.count_owners(conn, board_id) <= 1:
            raise InvalidPayload("a board keeps at least one owner")
        await boards.remove_member(conn, board_id, user_id)
        await audit.record(
            conn,
            type=AuditType.BOARD_MEMBER_REMOVED,
            actor_id=claims.user_id,
            entity_type=EntityType.BOARD,
            entity_id=board_id,
            metadata=request_metadata(request, claims.session_id),
            correlation_id=correlation.current(),
            data={"user_id": str(user_id), "role": str(target) if target else None},
        )
    # the removed member stops hearing the board now, on every node
    async with revocation.left_to_sweep("evicting a removed member", user_id=str(user_id)):
        await presence.evict_from_board(request.app[HUB_NAMESPACE], user_id, board_id)
    return web.Response(status=204)


async def list_tasks(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    claims = bearer(request)
    board_id = path_uuid(request, "board_id")
    params = query(request, TaskQuery)
    async with deps.pool.acquire() as conn:
        await active_user(conn, claims)
        await _member_role(conn, board_id, claims.user_id)
        found, cursor = await tasks.page(
            conn,
            board_id,
            status=params.status,
            assignee_id=params.assignee_id,
            overdue=params.overdue,
            limit=params.limit,
            after=params.after,
        )
    return json_response({"tasks": found, "next": cursor})


def routes() -> list[web.RouteDef]:
    return [
        web.post("/api/boards", create_board),
        web.get("/api/boards", list_boards),
        web.get("/api/boards/{board_id}", get_board),
        web.post("/api/boards/{board_id}/members", add_member),
        web.delete("/api/boards/{board_id}/members/{user_id}", remove_member),
        web.get("/api/boards/{board_id}/tasks", list_tasks),
    ]
