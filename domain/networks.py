"""Where gate controllers may be (GATE_NETWORKS): the gate form and the bridge both ask."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def outside_networks(address: str, networks: Sequence[Network]) -> bool:
    """Whether an IP address lies outside every one of `networks` (none given: nowhere is).
    A host name is not looked up here: the bridge checks what it resolves to and reaches."""
    if not networks:
        return False
    try:
        ip = ipaddress.ip_address(address.split("%")[0])
    except ValueError:
        return False
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not any(ip.version == net.version and ip in net for net in networks)
