"""Where alert outputs may send: the operator's allow-list, else public addresses only (pure).

An admin can aim an output anywhere; without this, an output at ``http://10.0.0.7:8500/v1/kv`` or
the cloud metadata address would make the service reach into its own network on the admin's
behalf. So a destination must either match an entry of the allow-list the operator configured
(``VIGIL_ALERT_DESTINATIONS``) or, when none is configured, resolve to public addresses only.
The check runs twice: on the host name when an output is created (a clear 422), and on the
addresses the name resolves to just before each connection, which then goes to exactly the
address that was checked, so a DNS answer that changes in between cannot slip past it.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from vigil.service.analysis.alerts.validation import check_host, parse_address

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

SETTING = "VIGIL_ALERT_DESTINATIONS"


class DestinationRefused(ValueError):
    """The destination is outside what the operator allowed; the message says which rule."""


@dataclass(frozen=True)
class Entry:
    """One allow-list entry: a host name (``*.`` for any sub-domain) or an address range, maybe a port."""

    text: str
    name: str | None = None  # lower case, no trailing dot; "*.example.com" keeps its star
    network: IPNetwork | None = None
    port: int | None = None

    def matches_name(self, host: str, port: int) -> bool:
        if self.name is None or (self.port is not None and self.port != port):
            return False
        host = _norm(host)
        if self.name.startswith("*."):
            return host.endswith(self.name[1:]) and host != self.name[2:]
        return host == self.name

    def matches_address(self, address: IPAddress, port: int) -> bool:
        if self.network is None or (self.port is not None and self.port != port):
            return False
        return address.version == self.network.version and address in self.network


def parse_entry(text: str) -> Entry:
    """``hooks.slack.com``, ``*.corp.example``, ``siem.corp:6514``, ``10.20.0.0/16``, ``[fd00::1]:514``."""
    raw = text.strip()
    if not raw:
        raise ValueError("an empty entry")
    port: int | None = None
    host = raw
    if "/" not in raw and (raw.startswith("[") or raw.count(":") == 1):
        host, port = parse_address(raw)
    try:
        network = ipaddress.ip_network(host.strip("[]"), strict=False)
    except ValueError:
        network = None
    if network is not None:
        return Entry(raw, network=network, port=port)
    if "/" in host:
        raise ValueError(f"{raw!r} is not an address range (expected e.g. 10.0.0.0/8)")
    name = _norm(host)
    check_host(name[2:] if name.startswith("*.") else name)
    return Entry(raw, name=name, port=port)


def _norm(host: str) -> str:
    return host.lower().rstrip(".")


def why_internal(address: IPAddress) -> str | None:
    """The kind of non-public address this is, or None for a public one."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return why_internal(address.ipv4_mapped)
    for label, test in (
        ("loopback", address.is_loopback),
        ("unspecified", address.is_unspecified),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("private", address.is_private),
        ("reserved", address.is_reserved),
    ):
        if test:
            return label
    return None if address.is_global else "non-public"


@dataclass(frozen=True)
class DestinationPolicy:
    """The allow-list; empty means "public addresses only"."""

    entries: tuple[Entry, ...] = field(default_factory=tuple)

    @classmethod
    def parse(cls, text: str | None) -> DestinationPolicy:
        """From the comma-separated setting; a bad entry names itself and the setting."""
        entries = []
        for part in (text or "").split(","):
            if not part.strip():
                continue
            try:
                entries.append(parse_entry(part))
            except ValueError as exc:
                raise ValueError(f"{SETTING}: entry {part.strip()!r}: {exc}") from None
        return cls(tuple(entries))

    def describe(self) -> str:
        return ", ".join(e.text for e in self.entries) if self.entries else "(not set: public addresses only)"

    def check_name(self, host: str, port: int) -> None:
        """At creation: refuse what can be refused without resolving the name."""
        literal = _literal(host)
        if not self.entries:
            if literal is not None:
                self.check_addresses(host, port, [literal])
            return
        if any(e.matches_name(host, port) for e in self.entries):
            return
        if literal is not None:
            if not any(e.matches_address(literal, port) for e in self.entries):
                raise DestinationRefused(self._not_listed(host, port))
        elif not any(e.network is not None for e in self.entries):
            raise DestinationRefused(self._not_listed(host, port))
        # else: a name that may resolve into an allowed range; the connection-time check decides

    def check_addresses(self, host: str, port: int, addresses: list[IPAddress]) -> None:
        """Before connecting: every address ``host`` resolved to must be allowed."""
        if not addresses:
            raise DestinationRefused(f"alert destination {_where(host, port)} resolved to no address")
        if self.entries and any(e.matches_name(host, port) for e in self.entries):
            return  # the operator named this host; wherever it points is theirs to vouch for
        for address in addresses:
            if self.entries:
                if not any(e.matches_address(address, port) for e in self.entries):
                    raise DestinationRefused(self._not_listed(host, port, address))
                continue
            kind = why_internal(address)
            if kind is not None:
                shown = "" if str(address) == _norm(host).strip("[]") else f" resolves to {address}, which"
                raise DestinationRefused(
                    f"alert destination {_where(host, port)}{shown} is internal ({kind}); alerts go only to public "
                    f"addresses unless {SETTING} lists the destination"
                )

    def _not_listed(self, host: str, port: int, address: IPAddress | None = None) -> str:
        via = "" if address is None or str(address) == _norm(host).strip("[]") else f" (address {address})"
        return f"alert destination {_where(host, port)}{via} is not in {SETTING} ({self.describe()})"


def _literal(host: str) -> IPAddress | None:
    if _norm(host) == "localhost":
        return ipaddress.ip_address("127.0.0.1")
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def _where(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"
