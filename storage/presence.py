"""Who is connected where, in Redis (DESIGN.md "Redis keys").

Each connection has a hash and belongs to its user's set and its node's set;
each board has a hash of the connections that joined it. A node refreshes its
heartbeat; when the heartbeat expires, a live node reaps what the dead one left.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from redis.asyncio import Redis

from storage.keys import RedisKeys

# Atomic so two tabs of one user joining or leaving at once still produce exactly
# one "joined" and one "left".
_JOIN = """
local present = 0
for _, v in ipairs(redis.call('HVALS', KEYS[1])) do
  if v == ARGV[2] then present = 1 break end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('SADD', KEYS[2], ARGV[3])
return present
"""

_LEAVE = """
local removed = redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('SREM', KEYS[2], ARGV[3])
if removed == 0 then return 0 end
for _, v in ipairs(redis.call('HVALS', KEYS[1])) do
  if v == ARGV[2] then return 0 end
end
return 1
"""


@dataclass(frozen=True)
class Departure:
    """A connection left a board; `user_gone` when it was the user's last one there."""

    board_id: uuid.UUID
    user_id: uuid.UUID
    user_gone: bool


class Presence:
    def __init__(self, redis: Redis, keys: RedisKeys, *, connection_ttl: float) -> None:
        self._redis = redis
        self._keys = keys
        self._ttl = max(1, int(connection_ttl))
        self._join = redis.register_script(_JOIN)
        self._leave = redis.register_script(_LEAVE)

    async def add_connection(self, sid: str, user_id: uuid.UUID, node_id: str) -> None:
        k = self._keys
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(
                k.connection(sid),
                mapping={"user_id": str(user_id), "node_id": node_id, "connected_at": time.time()},
            )
            pipe.expire(k.connection(sid), self._ttl)
            pipe.sadd(k.user_connections(user_id), sid)
            pipe.sadd(k.node_connections(node_id), sid)
            await pipe.execute()

    async def join_board(self, sid: str, user_id: uuid.UUID, board_id: uuid.UUID) -> bool:
        """Record the join; True when the user was not on the board before."""
        k = self._keys
        was_present = await self._join(
            keys=[k.board_presence(board_id), k.connection_boards(sid)],
            args=[sid, str(user_id), str(board_id)],
        )
        return not was_present

    async def leave_board(self, sid: str, user_id: uuid.UUID, board_id: uuid.UUID) -> bool:
        """Forget the join; True when that was the user's last connection on the board."""
        k = self._keys
        gone = await self._leave(
            keys=[k.board_presence(board_id), k.connection_boards(sid)],
            args=[sid, str(user_id), str(board_id)],
        )
        return bool(gone)

    async def users_on_board(self, board_id: uuid.UUID) -> list[uuid.UUID]:
        values = await self._redis.hvals(self._keys.board_presence(board_id))
        return sorted({uuid.UUID(v.decode() if isinstance(v, bytes) else v) for v in values})

    async def user_connection_count(self, user_id: uuid.UUID) -> int:
        return int(await self._redis.scard(self._keys.user_connections(user_id)))

    async def remove_connection(self, sid: str, node_id: str) -> list[Departure]:
        """Drop a connection and its board joins; what it leaves behind for presence events."""
        k = self._keys
        raw = await self._redis.hget(k.connection(sid), "user_id")
        boards = await self._redis.smembers(k.connection_boards(sid))
        departures: list[Departure] = []
        if raw is not None:
            user_id = uuid.UUID(raw.decode() if isinstance(raw, bytes) else raw)
            for board in sorted(b.decode() if isinstance(b, bytes) else b for b in boards):
                gone = await self.leave_board(sid, user_id, uuid.UUID(board))
                departures.append(Departure(uuid.UUID(board), user_id, gone))
            await self._redis.srem(k.user_connections(user_id), sid)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(k.connection(sid), k.connection_boards(sid))
            pipe.srem(k.node_connections(node_id), sid)
            await pipe.execute()
        return departures

    # -- nodes ---------------------------------------------------------------

    async def heartbeat(self, node_id: str, node_ttl: float, local_sids: list[str]) -> None:
        """Prove this node lives, and keep its connections' keys from expiring."""
        k = self._keys
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.set(k.node(node_id), str(time.time()), px=int(node_ttl * 1000))
            pipe.sadd(k.nodes(), node_id)
            for sid in local_sids:
                pipe.expire(k.connection(sid), self._ttl)
            await pipe.execute()

    async def dead_nodes(self) -> list[str]:
        nodes = [
            n.decode() if isinstance(n, bytes) else n
            for n in await self._redis.smembers(self._keys.nodes())
        ]
        if not nodes:
            return []
        alive = await self._redis.mget([self._keys.node(n) for n in nodes])
        return sorted(n for n, beat in zip(nodes, alive, strict=True) if beat is None)

    async def claim_reap(self, node_id: str, hold_seconds: int = 60) -> bool:
        """Only one live node reaps a dead one."""
        return bool(
            await self._redis.set(self._keys.reap_lock(node_id), "1", nx=True, ex=hold_seconds)
        )

    async def node_connections(self, node_id: str) -> list[str]:
        sids = await self._redis.smembers(self._keys.node_connections(node_id))
        return sorted(s.decode() if isinstance(s, bytes) else s for s in sids)

    async def forget_node(self, node_id: str) -> None:
        k = self._keys
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(k.node(node_id), k.node_connections(node_id), k.reap_lock(node_id))
            pipe.srem(k.nodes(), node_id)
            await pipe.execute()
