"""The two Socket.IO serializers the hub speaks, each on its own path.

Browsers use the default JSON parser at `/socket.io/`; bots may use msgpack
(python-socketio's `serializer="msgpack"`, the JavaScript
`socket.io-msgpack-parser`) at `/socket.io-msgpack/`. The events, payloads and
acks are the same on both, and a room holds clients of both kinds.
"""

from __future__ import annotations

from enum import StrEnum

from socketio import packet

from protocol.packets import HubMsgPackPacket, JsonPacket


class Serializer(StrEnum):
    JSON = "json"
    MSGPACK = "msgpack"

    @property
    def socketio_path(self) -> str:
        """The path a client passes as `socketio_path` (JavaScript: `path`)."""
        return SOCKETIO_PATHS[self]

    @property
    def python_socketio(self) -> str:
        """The name python-socketio's `serializer=` argument takes."""
        return "default" if self is Serializer.JSON else "msgpack"

    @property
    def packet_class(self) -> type[packet.Packet]:
        """The packet class the hub's server decodes clients' packets with: python-
        socketio's, strict about the protocol (see protocol/packets.py)."""
        return JsonPacket if self is Serializer.JSON else HubMsgPackPacket


SOCKETIO_PATHS: dict[Serializer, str] = {
    Serializer.JSON: "/socket.io/",
    Serializer.MSGPACK: "/socket.io-msgpack/",
}
