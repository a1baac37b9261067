"""What a client's websocket message is as an Engine.IO packet, checked."""

from __future__ import annotations

from engineio import packet

PACKET_TYPES = {str(kind): kind for kind in range(len(packet.packet_names))}


def client_packet(message: str | bytes) -> packet.Packet:
    """The Engine.IO packet of one websocket message from a client; ValueError when
    it is none.

    engineio's decoder trusts its input: a text message that does not start with a
    packet type raised out of the reader loop (the socket was then never closed nor
    its disconnect run), a type past the last one raised while being logged, and a
    MESSAGE's text is tried as JSON first (`4true` became a Socket.IO DISCONNECT, a
    ten-thousand-deep `4[[[` a RecursionError). Here a MESSAGE's text stays text
    for the Socket.IO parser; and since binary data comes in binary messages over
    websocket, engineio's base64 form (`b...`) is refused like any other garbage.
    """
    if isinstance(message, bytes):
        return packet.Packet(packet.MESSAGE, data=message)
    kind = PACKET_TYPES.get(message[:1])
    if kind is None:
        raise ValueError(f"not an Engine.IO packet: {message[:16]!r}")
    return packet.Packet(kind, data=message[1:])
