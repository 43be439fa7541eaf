"""Checks on alert output settings; each error names the rule so the API can name the field (pure)."""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

from vigil.loopback import is_loopback_host

_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$"
)


def check_host(host: str) -> str:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    if not _HOSTNAME.match(host):
        raise ValueError(f"{host!r} is not a valid host name or IP address")
    return host


def check_http_url(url: str, allow_insecure_http: bool) -> str:
    """http(s) URL with a host; plain http only to loopback unless the user explicitly allows it."""
    if len(url) > 2048:
        raise ValueError("must be at most 2048 characters")
    if any(c.isspace() for c in url):
        raise ValueError("must not contain whitespace")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError as exc:
        raise ValueError(f"is not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"scheme {parts.scheme or '(none)'!r} is not allowed; use https (or http to a loopback host)")
    if not parts.hostname:
        raise ValueError("has no host")
    check_host(parts.hostname)
    if parts.fragment:
        raise ValueError("must not have a #fragment")
    if parts.scheme == "http" and not is_loopback_host(parts.hostname) and not allow_insecure_http:
        raise ValueError(
            f"plain http to {parts.hostname!r} would send alerts unencrypted; use https, or set allow_insecure_http"
        )
    return url


def parse_address(address: str) -> tuple[str, int]:
    """``host:port`` or ``[ipv6]:port`` -> (host, port)."""
    m = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:(\d{1,5})|([^:\[\]\s]+):(\d{1,5})", address.strip())
    if not m:
        raise ValueError(f"{address!r} is not host:port (or [ipv6]:port)")
    host, port_text = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
    port = int(port_text)
    if not 1 <= port <= 65535:
        raise ValueError(f"port {port} is not between 1 and 65535")
    if m.group(1):
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{host!r} is not an IPv6 address") from None
    else:
        check_host(host)
    return host, port
