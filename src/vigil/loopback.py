"""Which hosts are loopback: the only ones Vigil talks plain HTTP to (or serves it on) unasked.

Every such check (service URLs of the controller and the sensor, the address the service listens
on, advisory feeds, alert outputs) goes through ``is_loopback_host``, so they agree. It lives at the
package root because libraries (intel) and units both use it.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit


def is_loopback_host(host: str) -> bool:
    """``localhost`` (any case, with or without the root dot) or a loopback IPv4/IPv6 address."""
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_loopback_url(url: str) -> bool:
    """True when the URL's host is loopback (``[::1]`` included); a URL without a host is not."""
    return is_loopback_host(urlsplit(url).hostname or "")
