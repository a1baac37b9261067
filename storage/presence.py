"""Who is connected where, in Redis (DESIGN.md "Redis keys").

Each connection has a hash (with a TTL the node's heartbeat refreshes) and is
listed in its user's set and its node's hash (sid -> user_id); each board has a
hash of the connections that joined it (sid -> user_id). The per-board and
per-node entries carry the user id themselves, so a node that died long ago
(its connection hashes expired) can still be cleaned up completely.

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
"""

from __future__ import annotations

import secrets
import time
import uuid
from dataclasses import dataclass

from redis.asyncio import Redis

from protocol.events import ServerEvent, room_board
from storage.keys import RedisKeys

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

# KEYS: board presence, connection boards, connection hash. ARGV: sid, user_id,
# board_id, name, skip sid (''), then channel, event name, room head.
# Returns -1 when the connection is already gone, 1 when the user was already on
# the board, 0 when this is the user's first connection there (announced `joined`).
_JOIN = """
if redis.call('EXISTS', KEYS[3]) == 0 then return -1 end
local present = 0
for _, v in ipairs(redis.call('HVALS', KEYS[1])) do
  if v == ARGV[2] then present = 1 break end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('SADD', KEYS[2], ARGV[3])
if present == 0 then
  announce(ARGV[6], ARGV[7], ARGV[8], ARGV[3], ARGV[2], ARGV[4], 'joined', ARGV[5])
end
return present
"""

# KEYS: board presence, connection boards. ARGV: sid, user_id, board_id, name,
# then channel, event name, room head.
# Returns 1 when that was the user's last connection on the board (announced `left`).
_LEAVE = """
local removed = redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('SREM', KEYS[2], ARGV[3])
if removed == 0 then return 0 end
for _, v in ipairs(redis.call('HVALS', KEYS[1])) do
  if v == ARGV[2] then return 0 end
end
announce(ARGV[5], ARGV[6], ARGV[7], ARGV[3], ARGV[2], ARGV[4], 'left', '')
return 1
"""

# KEYS: connection hash, connection boards, node connections.
# ARGV: sid, board key head, board key tail, user key head, user key tail, name,
# then channel, event name, room head.
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
    local gone = 1
    for _, v in ipairs(redis.call('HVALS', pkey)) do
      if v == u then gone = 0 break end
    end
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
        self._leave = redis.register_script(_PUBLISH + _LEAVE)
        self._remove = redis.register_script(_PUBLISH + _REMOVE)
        # this process's heartbeat token: a heartbeat that finds another value (or
        # none) knows its node was presumed dead in between
        self._incarnation = secrets.token_hex(8)

    async def add_connection(
        self, sid: str, user_id: uuid.UUID, node_id: str, token_id: uuid.UUID | None = None
    ) -> None:
        """Register a connection; `token_id` names the bot token it came with, if any."""
        k = self._keys
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(
                k.connection(sid),
                mapping={"user_id": str(user_id), "node_id": node_id, "connected_at": time.time()},
            )
            if token_id is not None:
                pipe.hset(k.connection(sid), "token_id", str(token_id))
            pipe.expire(k.connection(sid), self._ttl)
            pipe.sadd(k.user_connections(user_id), sid)
            pipe.hset(k.node_connections(node_id), sid, str(user_id))
            await pipe.execute()

    async def join_board(
        self,
        sid: str,
        user_id: uuid.UUID,
        board_id: uuid.UUID,
        *,
        name: str,
        skip_sid: str | None = None,
    ) -> bool:
        """Record the join; True when the user was not on the board before, and the
        board was told `joined` (all but `skip_sid`).

        Raises ConnectionGone when the connection closed meanwhile, so no ghost
        entry is left behind.
        """
        k = self._keys
        result = await self._join(
            keys=[k.board_presence(board_id), k.connection_boards(sid), k.connection(sid)],
            args=[sid, str(user_id), str(board_id), name, skip_sid or "", *self._publish_to],
        )
        if int(result) < 0:
            raise ConnectionGone(sid)
        return int(result) == 0

    async def leave_board(
        self, sid: str, user_id: uuid.UUID, board_id: uuid.UUID, *, name: str
    ) -> bool:
        """Forget the join; True when that was the user's last connection on the board,
        and the board was told `left`."""
        k = self._keys
        gone = await self._leave(
            keys=[k.board_presence(board_id), k.connection_boards(sid)],
            args=[sid, str(user_id), str(board_id), name, *self._publish_to],
        )
        return bool(gone)

    async def users_on_board(self, board_id: uuid.UUID) -> list[uuid.UUID]:
        values = await self._redis.hvals(self._keys.board_presence(board_id))
        return sorted({uuid.UUID(_text(v)) for v in values})

    async def connections_of(self, user_id: uuid.UUID) -> list[str]:
        members = await self._redis.smembers(self._keys.user_connections(user_id))
        return sorted(_text(m) for m in members)

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
        flat = await self._remove(
            keys=[k.connection(sid), k.connection_boards(sid), k.node_connections(node_id)],
            args=[sid, board_head, board_tail, user_head, user_tail, name, *self._publish_to],
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
