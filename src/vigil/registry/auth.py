"""Registry authentication: ``WWW-Authenticate`` challenges, basic credentials and bearer tokens.

The bearer flow is the distribution token protocol: the registry answers 401
with ``Bearer realm=...,service=...,scope=...``; we GET the realm with that
service and scope (with basic credentials when configured, anonymously
otherwise) and retry with the token. Tokens are cached per scope until shortly
before they expire. Once a host has told us its scheme, later requests send
credentials or fetch a token up front instead of paying a 401 first.
"""

from __future__ import annotations

import base64
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from .config import RegistrySettings

# Tokens are dropped this long before their announced expiry, so a request in
# flight does not race the expiry.
EXPIRY_MARGIN_SECONDS = 10.0
# The distribution token spec: "If omitted, the token should be assumed to
# expire in 60 seconds".
DEFAULT_TOKEN_LIFETIME = 60.0

_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_PARAM = re.compile(rf"\s*({_TOKEN})\s*=\s*(?:\"((?:[^\"\\]|\\.)*)\"|({_TOKEN}))\s*(?:,|$)")


@dataclass(frozen=True, slots=True)
class Challenge:
    scheme: str  # lowercased: "basic" or "bearer"
    params: dict[str, str] = field(default_factory=dict, hash=False)

    @property
    def realm(self) -> str | None:
        return self.params.get("realm")

    @property
    def service(self) -> str | None:
        return self.params.get("service")

    @property
    def scope(self) -> str | None:
        return self.params.get("scope")


def parse_challenges(header: str) -> list[Challenge]:
    """Parse a ``WWW-Authenticate`` value into its challenges (RFC 7235 auth-params)."""
    challenges: list[Challenge] = []
    rest = header.strip()
    while rest:
        match = re.match(rf"({_TOKEN})(?:\s+|$)", rest)
        if not match:
            break
        scheme = match.group(1).lower()
        rest = rest[match.end() :]
        params: dict[str, str] = {}
        while rest:
            param = _PARAM.match(rest)
            if not param:
                break
            name, quoted, bare = param.groups()
            params[name.lower()] = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else bare
            rest = rest[param.end() :]
        challenges.append(Challenge(scheme, params))
        rest = rest.lstrip(", ")
    return challenges


_DEFAULT_PORTS = {"http": 80, "https": 443}


def _authority(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an absolute http(s) URL, the port filled in; None when it is not one."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    return scheme, parts.hostname.lower(), port if port is not None else _DEFAULT_PORTS[scheme]


def realm_problem(settings: RegistrySettings, realm: str) -> str | None:
    """Why the service must not fetch a token from ``realm`` for this registry; None when it may.

    A registry names its token service, so a hostile one could aim the service at any internal
    URL: the realm must be HTTPS on the registry's own host and port or on one of its
    ``token_hosts``; plain HTTP only for a ``plain_http`` registry, on its own host and port.
    """
    where = _authority(realm)
    own = _authority(settings.base_url)
    assert own is not None
    if where is None:
        return "is not an absolute http(s) URL"
    scheme, host, port = where
    same_host = (host, port) == own[1:]
    if scheme == "http":
        if settings.plain_http and same_host:
            return None
        if settings.plain_http:
            return f"is plain HTTP on {host}:{port}, not on the registry's own host {own[1]}:{own[2]}"
        return "is plain HTTP and the registry is not configured plain_http"
    allowed = {
        (h.rpartition(":")[0], int(h.rpartition(":")[2])) if ":" in h else (h, 443) for h in settings.token_hosts
    }
    if same_host or (host, port) in allowed:
        return None
    return (
        f"is on {host}:{port}, neither the registry's own host {own[1]}:{own[2]} nor one of its auth_hosts"
        f" ({', '.join(settings.token_hosts) or 'none configured'})"
    )


def repository_scope(repository: str, actions: tuple[str, ...]) -> str:
    return f"repository:{repository}:{','.join(actions)}"


def basic_header(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


@dataclass(slots=True)
class _CachedToken:
    token: str
    expires_at: float

    def __repr__(self) -> str:  # the token is a credential
        return f"_CachedToken(expires_at={self.expires_at})"


class TokenCache:
    """Bearer tokens per (realm, service, scope), valid until their expiry."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._tokens: dict[tuple[str, str, str], _CachedToken] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str, str]) -> str | None:
        with self._lock:
            cached = self._tokens.get(key)
            if cached is None:
                return None
            if cached.expires_at <= self._clock():
                del self._tokens[key]
                return None
            return cached.token

    def put(self, key: tuple[str, str, str], token: str, lifetime: float) -> None:
        expires_at = self._clock() + max(0.0, lifetime - EXPIRY_MARGIN_SECONDS)
        with self._lock:
            self._tokens[key] = _CachedToken(token, expires_at)

    def drop(self, key: tuple[str, str, str]) -> None:
        with self._lock:
            self._tokens.pop(key, None)

    def __len__(self) -> int:
        return len(self._tokens)


class HostAuth:
    """What one registry host wants (learned from its challenges) and the credentials for it."""

    def __init__(self, settings: RegistrySettings, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.challenge: Challenge | None = None
        self.tokens = TokenCache(clock)

    def __repr__(self) -> str:
        scheme = self.challenge.scheme if self.challenge else None
        return f"HostAuth(host={self.settings.host!r}, scheme={scheme!r})"

    def learn(self, challenge: Challenge) -> None:
        self.challenge = challenge

    def token_key(self, scope: str | None) -> tuple[str, str, str] | None:
        if self.challenge is None or self.challenge.scheme != "bearer" or not self.challenge.realm:
            return None
        return (self.challenge.realm, self.challenge.service or "", scope or "")

    def static_header(self) -> str | None:
        """An Authorization value that needs no token exchange, if one applies."""
        if self.settings.token is not None:
            return "Bearer " + self.settings.token.reveal()
        if self.challenge is not None and self.challenge.scheme == "basic" and self.settings.has_basic_credentials:
            assert self.settings.username is not None and self.settings.password is not None
            return basic_header(self.settings.username, self.settings.password.reveal())
        return None
