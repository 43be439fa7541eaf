"""Resolving an output's host and checking every address against the destination policy."""

from __future__ import annotations

import ipaddress
import socket

from vigil.service.analysis.alerts.destinations import DestinationPolicy, DestinationRefused
from vigil.service.jobs.alerts.outputs.base import DeliveryFailed


def resolve_allowed(
    policy: DestinationPolicy, host: str, port: int, socktype: int = socket.SOCK_STREAM
) -> list[tuple[int, tuple]]:
    """(family, sockaddr) for each address of ``host``, all allowed; connect to these, not the name.

    Connecting to the checked address (rather than resolving again) is what keeps a DNS answer that
    changes between the check and the connection from reaching an address the policy refuses.
    """
    try:
        infos = socket.getaddrinfo(host.strip("[]"), port, type=socktype)
    except OSError as exc:
        raise DeliveryFailed(f"cannot resolve {host!r}: {exc.strerror or exc}") from None
    found: list[tuple[int, tuple]] = [(family, sockaddr) for family, _, _, _, sockaddr in infos]
    try:
        policy.check_addresses(host, port, [ipaddress.ip_address(sockaddr[0]) for _, sockaddr in found])
    except DestinationRefused as exc:
        raise DeliveryFailed(str(exc), permanent=True) from None
    return found
