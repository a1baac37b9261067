"""Who is connected where, in Redis (DESIGN.md "Redis keys").

Each connection has a hash (with a TTL the node's heartbeat refreshes) and is
listed in its user's set and its node's hash (sid -> user_id); each board has a
hash of the connections that joined it (sid -> user_id). The per-board and
per-node entries carry the user id themselves, so a node that died long ago
(its connection hashes expired) can still be cleaned up completely.

Each board also counts its people: user_id -> how many of their connections
joined (`people`), and user_id -> name (`names`). The count makes "is this the
user's first / last connection here" one HINCRBY instead of a scan of every
connection on the board (a board with 1000 watchers scanned 1000 entries per
join), and the names make the presence list one Redis read, returned by the join
itself, instead of a database query over everyone on the board on every join.
The names are the ones the `presence` events carried (the name at connect).

Joins and removals are Lua scripts: a tab that closes while its `board:join`
is in flight must not leave a ghost, and two tabs of one user joining or
leaving at once still produce exactly one "joined" and one "left". The scripts
build board and user keys from the connection's data, so they assume one Redis
(not a cluster).

The scripts also publish the `presence` event of the change they make, on
python-socketio's Redis channel: Redis runs scripts one at a time, so the events
of one person on one board are published in the order the changes happened, on
every node and for every server. An event emitted afterwards from Python could be
overtaken: a reaper that announced `left` only after a name lookup was passed by
the `joined` of the node that had come back, and watchers were left believing a
connected person gone.

A write that fails because Redis is down sets `unsynced`: what Redis holds for
this node may then differ from what the node holds (a closed connection still
listed, a join missing), and the node's heartbeat puts it right once Redis is
back (hub/heartbeat.py).
"""

from __future__ import annotations

import contextlib
import json
import secrets
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from redis.asyncio import Redis

from protocol.events import ServerEvent, room_board
from protocol.models import PublicUser
from storage import outages
from storage.keys import BOARD_NAMES_TAIL, BOARD_PEOPLE_TAIL, RedisKeys

# Publishes a presence event as python-socketio's Redis managers expect an emit
# (async_pubsub_manager.py): every manager delivers it to its own clients in the
# room, the node that made the change included (its host_id is none of theirs).
# Prepended to the scripts below; announce() takes: channel, event name, room head,
# board_id, user_id, name, state, skip sid ('' for none).
_PUBLISH = """
local function announce(channel, event_name, room_head, board, user, name, state, skip)
  local event = {board_id = board, user = {id = user, name = name}, state = state}
  local skip_sid = cjson.null
  if skip ~= '' then skip_sid = skip end
  redis.call('PUBLISH', channel, cjson.encode({
    method = 'emit', event = event_name, data = {event}, binary = false,
    namespace = '/', room = room_head .. board, skip_sid = skip_sid,
    callback = cjson.null, host_id = 'taskhub-presence'}))
end
"""

# Drops one connection of `user` from a board's count; true when it was their last
# (their count and name are then removed too).
_FORGET = """
local function last_one(people, names, user)
  if redis.call('HINCRBY', people, user, -1) > 0 then return false end
  redis.call('HDEL', people, user)
  redis.call('HDEL', names, user)
  return true
end
"""

# KEYS: board presence, connection boards, connection hash, board people, board
# names. ARGV: sid, user_id, board_id, name, skip sid (''), then channel, event
# name, room head.
# Returns {-1} when the connection is already gone; else {first, names}: first is 1
# when this is the user's first connection there (announced `joined`), names the
# board's people afterwards as one JSON object of user_id -> name (the joiner's
# ack): one string for json.loads instead of two replies per person for redis-py's
# pure-Python parser, on every join of a board with a thousand people on it.
_JOIN = """
if redis.call('EXISTS', KEYS[3]) == 0 then return {-1} end
local first = 0
redis.call('SADD', KEYS[2], ARGV[3])
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 1 then
  if redis.call('HINCRBY', KEYS[4], ARGV[2], 1) == 1 then
    first = 1
    redis.call('HSET', KEYS[5], ARGV[2], ARGV[4])
    announce(ARGV[6], ARGV[7], ARGV[8], ARGV[3], ARGV[2], ARGV[4], 'joined', ARGV[5])
  end
end
local flat = redis.call('HGETALL', KEYS[5])
if #flat == 0 then return {first, '{}'} end
local names = {}
for i = 1, #flat, 2 do names[flat[i]] = flat[i + 1] end
return {first, cjson.encode(names)}
"""

# KEYS: board presence, connection boards, board people, board names. ARGV: sid,
# user_id, board_id, name, then channel, event name, room head.
# Returns 1 when that was the user's last connection on the board (announced `left`).
_LEAVE = """
local removed = redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('SREM', KEYS[2], ARGV[3])
if removed == 0 then return 0 end
if not last_one(KEYS[3], KEYS[4], ARGV[2]) then return 0 end
announce(ARGV[5], ARGV[6], ARGV[7], ARGV[3], ARGV[2], ARGV[4], 'left', '')
return 1
"""

# KEYS: connection hash, connection boards, node connections.
# ARGV: sid, board key head, board key tail, user key head, user key tail, name,
# then channel, event name, room head, then the people and names key tails.
# Returns a flat list: board_id, user_id, gone (1/0) for each board it had joined;
# each one gone is announced `left`.
_REMOVE = """
local sid = ARGV[1]
local user = redis.call('HGET', KEYS[1], 'user_id') or redis.call('HGET', KEYS[3], sid)
redis.call('DEL', KEYS[1])
local boards = redis.call('SMEMBERS', KEYS[2])
redis.call('DEL', KEYS[2])
redis.call('HDEL', KEYS[3], sid)
local out = {}
for _, b in ipairs(boards) do
  local pkey = ARGV[2] .. b .. ARGV[3]
  local u = redis.call('HGET', pkey, sid)
  if u then
    user = user or u
    redis.call('HDEL', pkey, sid)
    local gone = 0
    if last_one(ARGV[2] .. b .. ARGV[10], ARGV[2] .. b .. ARGV[11], u) then gone = 1 end
    table.insert(out, b)
    table.insert(out, u)
    table.insert(out, gone)
    if gone == 1 then announce(ARGV[7], ARGV[8], ARGV[9], b, u, ARGV[6], 'left', '') end
  end
end
if user then redis.call('SREM', ARGV[4] .. user .. ARGV[5], sid) end
return out
"""


def _text(value: bytes | str) -> str:
    """The client decodes responses; this only narrows the type redis-py declares."""
    return value.decode() if isinstance(value, bytes) else value


@dataclass(frozen=True)
class Departure:
    """A connection left a board; `user_gone` when it was the user's last one there."""

    board_id: uuid.UUID
    user_id: uuid.UUID
    user_gone: bool


@dataclass(frozen=True)
class Joined:
    """A connection joined a board: `first` when its user was not there before (the
    board was told `joined`); `people` who are on the board now, by name, in the
    wire form of PublicUser (id and name as strings): the join's ack carries them
    as they are, without a UUID parsed per person per join."""

    first: bool
    people: list[dict[str, str]]


def _people(pairs: Iterable[tuple[bytes | str, bytes | str]]) -> list[PublicUser]:
    """(user_id, name) pairs as the presence list: by name, then id (as the database
    listed them before the names were kept here)."""
    found = [PublicUser(id=uuid.UUID(_text(user)), name=_text(name)) for user, name in pairs]
    return sorted(found, key=lambda u: (u.name, u.id))


class ConnectionGone(Exception):
    """The connection was removed (closed, or reaped) before the operation."""


class Presence:
    def __init__(
        self, redis: Redis, keys: RedisKeys, *, connection_ttl: float, socketio_channel: str
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._ttl = max(1, int(connection_ttl))
        # where the scripts publish `presence` events (see _PUBLISH)
        self._publish_to = [socketio_channel, str(ServerEvent.PRESENCE), room_board("")]
        self._join = redis.register_script(_PUBLISH + _JOIN)
        self._leave = redis.register_script(_PUBLISH + _FORGET + _LEAVE)
        self._remove = redis.register_script(_PUBLISH + _FORGET + _REMOVE)
        # this process's heartbeat token: a heartbeat that finds another value (or
        # none) knows its node was presumed dead in between
        self._incarnation = secrets.token_hex(8)
        # a write failed for want of Redis: Redis may not match this node any more
        self.unsynced = False

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """Around a write: an outage marks the presence `unsynced` (and is raised)."""
        try:
            yield
        except Exception as exc:
            if outages.is_outage(exc):
                self.unsynced = True
            raise

    async def add_connection(
        self, sid: str, user_id: uuid.UUID, node_id: str, token_id: uuid.UUID | None = None
    ) -> int:
        """Register a connection; `token_id` names the bot token it came with, if any.

        Returns how many connections the user has now, on all nodes (the per-user
        cap), counted in the same transaction rather than in a round trip of its own."""
        k = self._keys
        with self._writing():
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.hset(
                    k.connection(sid),
                    mapping={
                        "user_id": str(user_id),
                        "node_id": node_id,
                        "connected_at": time.time(),
                    },
                )
                if token_id is not None:
                    pipe.hset(k.connection(sid), "token_id", str(token_id))
                pipe.expire(k.connection(sid), self._ttl)
                pipe.sadd(k.user_connections(user_id), sid)
                pipe.hset(k.node_connections(node_id), sid, str(user_id))
                pipe.scard(k.user_connections(user_id))
                *_, connections = await pipe.execute()
        return int(connections)

    async def join_board(
        self,
        sid: str,
        user_id: uuid.UUID,
        board_id: uuid.UUID,
        *,
        name: str,
        skip_sid: str | None = None,
    ) -> Joined:
        """Record the join; `first` when the user was not on the board before, and the
        board was told `joined` (all but `skip_sid`). The people on the board come
        back in the same round trip, for the joiner's ack.

        Raises ConnectionGone when the connection closed meanwhile, so no ghost
        entry is left behind.
        """
        k = self._keys
        with self._writing():
            result = await self._join(
                keys=[
                    k.board_presence(board_id),
                    k.connection_boards(sid),
                    k.connection(sid),
                    k.board_people(board_id),
                    k.board_names(board_id),
                ],
                args=[sid, str(user_id), str(board_id), name, skip_sid or "", *self._publish_to],
            )
        if int(result[0]) < 0:
            raise ConnectionGone(sid)
        names: dict[str, str] = json.loads(result[1])
        people = [
            {"id": user, "name": name}
            for user, name in sorted(names.items(), key=lambda item: (item[1], item[0]))
        ]
        return Joined(first=int(result[0]) == 1, people=people)

    async def leave_board(
        self, sid: str, user_id: uuid.UUID, board_id: uuid.UUID, *, name: str
    ) -> bool:
        """Forget the join; True when that was the user's last connection on the board,
        and the board was told `left`."""
        k = self._keys
        with self._writing():
            gone = await self._leave(
                keys=[
                    k.board_presence(board_id),
                    k.connection_boards(sid),
                    k.board_people(board_id),
                    k.board_names(board_id),
                ],
                args=[sid, str(user_id), str(board_id), name, *self._publish_to],
            )
        return bool(gone)

    async def users_on_board(self, board_id: uuid.UUID) -> list[PublicUser]:
        """The people on the board, by name, as their `joined` named them."""
        return _people((await self._redis.hgetall(self._keys.board_names(board_id))).items())

    async def connections_of(self, user_id: uuid.UUID) -> list[str]:
        members = await self._redis.smembers(self._keys.user_connections(user_id))
        return sorted(_text(m) for m in members)

    async def boards_of(self, sid: str) -> set[uuid.UUID]:
        """The boards a connection is recorded as having joined."""
        members = await self._redis.smembers(self._keys.connection_boards(sid))
        return {uuid.UUID(_text(m)) for m in members}

    async def connections_of_token(self, user_id: uuid.UUID, token_id: uuid.UUID) -> list[str]:
        """The user's live connections, on any node, that came with this API token."""
        sids = await self.connections_of(user_id)
        if not sids:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for sid in sids:
                pipe.hget(self._keys.connection(sid), "token_id")
            found = await pipe.execute()
        wanted = str(token_id)
        return [sid for sid, value in zip(sids, found, strict=True) if value == wanted]

    async def remove_connection(self, sid: str, node_id: str, *, name: str) -> list[Departure]:
        """Drop a connection and its board joins; the boards its user is gone from
        (`user_gone`) were told `left`, as `name`."""
        k = self._keys
        board_head, board_tail = k.board_presence_parts()
        user_head, user_tail = k.user_connections_parts()
        with self._writing():
            flat = await self._remove(
                keys=[k.connection(sid), k.connection_boards(sid), k.node_connections(node_id)],
                args=[
                    sid,
                    board_head,
                    board_tail,
                    user_head,
                    user_tail,
                    name,
                    *self._publish_to,
                    BOARD_PEOPLE_TAIL,
                    BOARD_NAMES_TAIL,
                ],
            )
        return [
            Departure(uuid.UUID(flat[i]), uuid.UUID(flat[i + 1]), bool(int(flat[i + 2])))
            for i in range(0, len(flat), 3)
        ]

    # -- nodes ---------------------------------------------------------------

    async def heartbeat(self, node_id: str, node_ttl: float, local_sids: list[str]) -> bool:
        """Prove this node lives and keep its connections' keys from expiring.

        Returns False when the node's previous beat had lapsed (it may have been
        reaped meanwhile): its connections must then be registered again.
        """
        k = self._keys
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.set(k.node(node_id), self._incarnation, px=int(node_ttl * 1000), get=True)
            pipe.sadd(k.nodes(), node_id)
            for sid in local_sids:
                pipe.expire(k.connection(sid), self._ttl)
            previous, *_ = await pipe.execute()
        return bool(previous == self._incarnation)

    async def dead_nodes(self) -> list[str]:
        nodes = sorted(_text(n) for n in await self._redis.smembers(self._keys.nodes()))
        if not nodes:
            return []
        alive = await self._redis.mget([self._keys.node(n) for n in nodes])
        return [n for n, beat in zip(nodes, alive, strict=True) if beat is None]

    async def claim_reap(self, node_id: str, hold_seconds: int = 300) -> bool:
        """Only one live node reaps a dead one; the claim ends with forget_node."""
        key = self._keys.reap_lock(node_id)
        return bool(await self._redis.set(key, "1", nx=True, ex=hold_seconds))

    async def node_connections(self, node_id: str) -> dict[str, uuid.UUID]:
        """The connections on record for a node: sid -> user_id."""
        found = await self._redis.hgetall(self._keys.node_connections(node_id))
        return {_text(sid): uuid.UUID(_text(user)) for sid, user in sorted(found.items())}

    async def forget_node(self, node_id: str) -> None:
        k = self._keys
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(k.node(node_id), k.node_connections(node_id), k.reap_lock(node_id))
            pipe.srem(k.nodes(), node_id)
            await pipe.execute()
