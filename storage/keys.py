"""The Redis key scheme (DESIGN.md "Redis keys"), behind one optional prefix.

The prefix lets tests, or two deployments sharing one Redis, keep apart.
"""

from __future__ import annotations

from dataclasses import dataclass

# After `ws:board:{id}`: the tails of a board's per-person presence hashes (the
# presence scripts build these keys from a board id too).
BOARD_PEOPLE_TAIL = ":people"
BOARD_NAMES_TAIL = ":names"


@dataclass(frozen=True)
class RedisKeys:
    prefix: str = ""

    def connection(self, sid: str) -> str:
        return f"{self.prefix}ws:connection:{sid}"

    def connection_boards(self, sid: str) -> str:
        return f"{self.prefix}ws:connection:{sid}:boards"

    def user_connections(self, user_id: object) -> str:
        head, tail = self.user_connections_parts()
        return f"{head}{user_id}{tail}"

    def user_connections_parts(self) -> tuple[str, str]:
        """What stands before and after the user id (for Lua scripts that build keys)."""
        return f"{self.prefix}ws:user:", ":connections"

    def node(self, node_id: str) -> str:
        return f"{self.prefix}ws:node:{node_id}"

    def node_connections(self, node_id: str) -> str:
        """Hash of sid -> user_id of the connections a node holds."""
        return f"{self.prefix}ws:node:{node_id}:connections"

    def nodes(self) -> str:
        return f"{self.prefix}ws:nodes"

    def reap_lock(self, node_id: str) -> str:
        return f"{self.prefix}ws:node:{node_id}:reaping"

    def board_presence(self, board_id: object) -> str:
        """Hash of sid -> user_id for the connections that joined the board."""
        head, tail = self.board_presence_parts()
        return f"{head}{board_id}{tail}"

    def board_presence_parts(self) -> tuple[str, str]:
        return f"{self.prefix}ws:board:", ":presence"

    def board_people(self, board_id: object) -> str:
        """Hash of user_id -> how many of the user's connections joined the board."""
        head, _ = self.board_presence_parts()
        return f"{head}{board_id}{BOARD_PEOPLE_TAIL}"

    def board_names(self, board_id: object) -> str:
        """Hash of user_id -> name, for the people on the board (the presence list)."""
        head, _ = self.board_presence_parts()
        return f"{head}{board_id}{BOARD_NAMES_TAIL}"

    def session(self, user_id: object) -> str:
        return f"{self.prefix}session:{user_id}"

    def notifications_channel(self) -> str:
        return f"{self.prefix}pubsub:notifications"

    def emitted(self, event_id: object) -> str:
        """Set (NX, with a TTL) by whoever emits an event to its room first."""
        return f"{self.prefix}emitted:{event_id}"

    def typing(self, channel_id: object, user_id: object) -> str:
        """Set (NX, with a short TTL) when someone's typing was last broadcast."""
        return f"{self.prefix}chat:typing:{channel_id}:{user_id}"

    def rate_limit(self, name: str, subject: str) -> str:
        """A rate limit's bucket (storage/rate_limits.py): when it is full again."""
        return f"{self.prefix}rate-limit:{name}:{subject}"
