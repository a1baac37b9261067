"""The Socket.IO packets a client may send, decoded strictly: python-socketio's JSON
and msgpack packet classes, with what they let through refused.

python-socketio decodes for a trusted peer and dispatches whatever came out: an
event whose data is not a list (or an empty one) fails at `data[0]` and engineio
logs the traceback; one named by a number reaches the namespace's handler; a JSON
array ten thousand levels deep raises a RecursionError out of the decoder; a
BINARY_EVENT may announce ten billion attachments and then take every later
packet of the connection for one; a msgpack packet of type 5 waits for
attachments that msgpack never sends; a msgpack map with bytes keys, or no map
at all, raises a KeyError or TypeError.

Here such a packet raises `MalformedPacket`, and the server closes the
connection (as Node's socket.io does on a parser error): the client is broken or
hostile, and nothing it sent reaches a handler. A well-formed event with bad
content (an unknown or reserved name, a payload that fails validation) is not
malformed: the dispatcher answers it with an `invalid_payload` ack.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

import msgpack
from socketio import packet
from socketio.msgpack_packet import MsgPackPacket

MAX_DEPTH: Final = 32
"""Containers nested deeper than this in a packet's data are refused. No event
comes close (its argument list, the payload, `changes`, `tags`: four levels), and
every later step that walks the data recursively (the JSON encoder that measures
a payload, msgspec's validation) would run out of stack on a deep one, at a
depth that depends on where it runs."""

MAX_ATTACHMENTS: Final = 10
"""Binary attachments one JSON packet may announce: the packet and its
attachments are held until the last one arrives. No payload field takes binary
data (an event carrying some gets `invalid_payload`), so a few are plenty."""

_EVENTS: Final = frozenset({packet.EVENT, packet.BINARY_EVENT})
_ACKS: Final = frozenset({packet.ACK, packet.BINARY_ACK})
_BINARY: Final = frozenset({packet.BINARY_EVENT, packet.BINARY_ACK})
# CONNECT_ERROR is the server's to send
_JSON_TYPES: Final = frozenset({packet.CONNECT, packet.DISCONNECT}) | _EVENTS | _ACKS
# msgpack carries binary values inline: its packets have no attachments
_MSGPACK_TYPES: Final = _JSON_TYPES - _BINARY


# what a packet's data mostly holds: no need to look inside, nor further
_SCALARS: Final = frozenset({str, int, float, bool, type(None)})


class MalformedPacket(ValueError):
    """A packet no Socket.IO client may send; the connection that sent it is closed."""


def _check_data(data: Any, *, string_keys: bool) -> None:
    """Refuse data nested deeper than MAX_DEPTH, and (msgpack) maps with keys that
    are not strings. Level by level, without recursion."""
    level = [data]
    for _ in range(MAX_DEPTH):
        deeper: list[Any] = []
        for value in level:
            if isinstance(value, dict):
                if string_keys and not all(type(key) is str for key in value):
                    raise MalformedPacket("map keys must be strings")
                deeper.extend(item for item in value.values() if isinstance(item, dict | list))
            elif isinstance(value, list):
                deeper.extend(item for item in value if isinstance(item, dict | list))
        if not deeper:
            return
        level = deeper
    raise MalformedPacket(f"data nested deeper than {MAX_DEPTH} levels")


def _check(pkt: packet.Packet, types: frozenset[int], *, string_keys: bool) -> None:
    """What every client packet must be, once decoded."""
    kind = pkt.packet_type
    if type(kind) is not int or kind not in types:
        raise MalformedPacket(f"packet type {kind!r} is not one a client sends")
    namespace = pkt.namespace
    if namespace is not None and not (isinstance(namespace, str) and namespace.startswith("/")):
        raise MalformedPacket("a namespace is a string that starts with /")
    if pkt.id is not None and (type(pkt.id) is not int or pkt.id < 0):
        raise MalformedPacket("an ack id is a non-negative integer")
    data = pkt.data
    if kind in _EVENTS and not (isinstance(data, list) and data and isinstance(data[0], str)):
        raise MalformedPacket("an event is a list that starts with the event's name")
    if kind in _ACKS and not isinstance(data, list):
        raise MalformedPacket("an ack's data is a list")
    _check_data(data, string_keys=string_keys)


class _ClientPacket(packet.Packet):
    """What both serializers' strict packets share."""

    def __init__(self, *args: Any, encoded_packet: Any = None, **kwargs: Any) -> None:
        # python-socketio skips decoding an empty packet and takes it for an EVENT
        if encoded_packet is not None and not encoded_packet:
            raise MalformedPacket("an empty packet")
        super().__init__(*args, encoded_packet=encoded_packet, **kwargs)


class JsonPacket(_ClientPacket):
    """python-socketio's default (JSON) packet, strict about what a client sends."""

    def decode(self, encoded_packet: Any) -> int:
        if not isinstance(encoded_packet, str):
            raise MalformedPacket("a binary message where a packet was due")
        try:
            attachments: int = super().decode(encoded_packet)
        except (ValueError, RecursionError) as exc:
            raise MalformedPacket(f"undecodable packet: {str(exc)[:100]}") from None
        _check(self, _JSON_TYPES, string_keys=False)
        if self.packet_type in _BINARY:
            if not 1 <= attachments <= MAX_ATTACHMENTS:
                raise MalformedPacket(f"a binary packet has 1 to {MAX_ATTACHMENTS} attachments")
        elif attachments:
            raise MalformedPacket("only a binary packet has attachments")
        return attachments

    def add_attachment(self, attachment: Any) -> bool:
        if not isinstance(attachment, bytes):
            raise MalformedPacket("a text message where a binary attachment was due")
        return bool(super().add_attachment(attachment))

    @classmethod
    def reconstruct_binary(cls, data: Any, attachments: list[bytes]) -> Any:
        try:
            return super().reconstruct_binary(data, attachments)
        except (IndexError, KeyError, TypeError):
            raise MalformedPacket("a placeholder names no attachment") from None

    @classmethod
    def data_is_binary(cls, data: Any) -> bool:
        """python-socketio's test (bytes anywhere in the lists and dict values), asked of
        every packet the server builds; its own recurses, builds a list at every
        level and reduces it with a lambda, whatever it finds. A `board:join` ack
        carries every task and every person on the board, thousands of values,
        none of them binary. Here: one walk, no recursion, done at the first bytes."""
        pending = [data]
        pop, push = pending.pop, pending.append
        while pending:
            value = pop()
            if isinstance(value, dict):
                items: Iterable[Any] = value.values()
            elif isinstance(value, list):
                items = value
            else:
                return isinstance(value, bytes | bytearray)  # only `data` itself gets here
            for item in items:
                kind = type(item)
                if kind in _SCALARS:
                    continue
                if isinstance(item, dict | list):
                    push(item)
                elif isinstance(item, bytes | bytearray):
                    return True
        return False


class HubMsgPackPacket(MsgPackPacket, _ClientPacket):
    """python-socketio's msgpack packet, strict about what a client sends. The
    unpacker's own bounds (each length at most the message's size, 1024 levels of
    nesting) stop a small message that declares a huge array, map or string."""

    def decode(self, encoded_packet: Any) -> None:
        if not isinstance(encoded_packet, bytes):
            raise MalformedPacket("a text message where a msgpack packet was due")
        try:
            decoded = msgpack.unpackb(encoded_packet, ext_hook=self.__class__.ext_hook)
        except (ValueError, msgpack.UnpackException) as exc:
            raise MalformedPacket(f"undecodable packet: {str(exc)[:100]}") from None
        if not isinstance(decoded, dict) or "type" not in decoded or "nsp" not in decoded:
            raise MalformedPacket("a packet is a map with a type and a namespace")
        self.packet_type = decoded["type"]
        self.data = decoded.get("data")
        self.id = decoded.get("id")
        self.namespace = decoded["nsp"]
        _check(self, _MSGPACK_TYPES, string_keys=True)
