"""Who the client is, by address, when the hub sits behind load balancers.

Behind a balancer every TCP peer is the balancer, so per-address rate limits
would throttle everyone together and audit rows would name the balancer. A
balancer reports the client in `X-Forwarded-For`, but any client can send that
header too, so it is believed only from the networks of `TRUSTED_PROXIES`, and
only as far as it was written by them: the list is read from the right (the hop
nearest the hub), skipping trusted hops, and the first address that is not a
trusted proxy is the client. Without TRUSTED_PROXIES the header is ignored.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def client_address(
    peer: str | None, forwarded_for: Iterable[str], trusted: Sequence[IPNetwork]
) -> str | None:
    """The client's address: `peer` (the TCP peer), or the nearest untrusted hop of
    `forwarded_for` (each X-Forwarded-For header, in order) when `peer` is trusted."""
    if not trusted or not _trusted(peer, trusted):
        return peer
    hops = [hop.strip() for header in forwarded_for for hop in header.split(",")]
    nearest = peer
    for hop in reversed(hops):
        try:
            address = ipaddress.ip_address(hop)
        except ValueError:
            # a malformed hop was not written by one of ours: what our proxies
            # vouch for ends before it
            return nearest
        nearest = str(address)
        if not any(address in network for network in trusted):
            return nearest
    return nearest


def _trusted(peer: str | None, trusted: Sequence[IPNetwork]) -> bool:
    if peer is None:
        return False
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:
        return False  # a Unix socket peer, say
    return any(address in network for network in trusted)
