"""protocol/packets.py: what the strict packet classes change of python-socketio's."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from socketio import packet
from socketio.packet import Packet

from protocol.packets import JsonPacket


class _Bytes(bytes):
    pass


class _Dict(dict):  # type: ignore[type-arg]
    pass


_LEAVES = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=5)
    | st.binary(max_size=3)
    | st.binary(max_size=3).map(bytearray)
    | st.binary(max_size=3).map(_Bytes)
    | st.tuples(st.binary(max_size=2))  # python-socketio does not look inside tuples
)
_DATA = st.recursive(
    _LEAVES,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=3), inner, max_size=4)
        | st.dictionaries(st.text(max_size=3), inner, max_size=4).map(_Dict)
    ),
    max_leaves=30,
)


@given(_DATA)
def test_binary_data_is_found_as_python_socketio_finds_it(data: Any) -> None:
    assert JsonPacket.data_is_binary(data) is Packet.data_is_binary(data)


def test_a_packet_with_bytes_deep_inside_is_a_binary_one() -> None:
    deep: Any = {"ok": True, "data": [{"a": 1}, {"b": [None, "x", {"c": b"\x00"}]}]}
    assert JsonPacket(packet.ACK, data=[deep], id=1).packet_type == packet.BINARY_ACK
    plain: Any = {"ok": True, "data": [{"a": 1}, {"b": [None, "x", {"c": "\x00"}]}]}
    assert JsonPacket(packet.ACK, data=[plain], id=1).packet_type == packet.ACK
