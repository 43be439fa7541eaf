"""HTTP to registries: one httpx client per host (its own TLS settings), auth, retries, counters.

Everything above this module speaks in (registry, repository, reference) and
gets typed errors; everything HTTP-specific (schemes, challenges, Retry-After,
TLS) stays here.
"""

from __future__ import annotations

import email.utils
import logging
import random
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

import httpx

from .auth import DEFAULT_TOKEN_LIFETIME, HostAuth, basic_header, parse_challenges, realm_problem, repository_scope
from .config import RegistryConfig, RegistrySettings
from .errors import AuthError, RegistryError, Unreachable

log = logging.getLogger(__name__)

USER_AGENT = "vigil-registry-client/0.1"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Retries on transient answers (429, 5xx) and connection failures, with exponential backoff.

    A ``Retry-After`` from the registry is honoured as given when it is not
    longer than ``max_retry_after``; a longer one ends the retries at once (the
    registry said it will not answer soon), as does exhausting ``max_attempts``.
    """

    max_attempts: int = 4
    backoff_base: float = 0.2
    backoff_max: float = 5.0
    max_retry_after: float = 30.0
    retry_statuses: frozenset[int] = frozenset({429, 500, 502, 503, 504})

    def backoff(self, attempt: int) -> float:
        # Full jitter: replicas retrying together do not hit the registry in step.
        return random.uniform(0, min(self.backoff_max, self.backoff_base * (2**attempt)))


# One shared instance each: both are never mutated, so every client may start from the same ones.
DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=5.0)
DEFAULT_RETRY = RetryPolicy()


@dataclass
class RequestStats:
    """Counters of requests sent (retries and token fetches included), per kind and per host."""

    by_kind: Counter[str] = field(default_factory=Counter)
    by_host: Counter[str] = field(default_factory=Counter)
    retries: int = 0
    cache_hits: Counter[str] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def requests(self) -> int:
        return sum(self.by_kind.values())

    def record(self, kind: str, host: str) -> None:
        with self._lock:
            self.by_kind[kind] += 1
            self.by_host[host] += 1

    def hit(self, cache: str) -> None:
        with self._lock:
            self.cache_hits[cache] += 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": sum(self.by_kind.values()),
                "by_kind": dict(self.by_kind),
                "by_host": dict(self.by_host),
                "retries": self.retries,
                "cache_hits": dict(self.cache_hits),
            }

    def reset(self) -> None:
        with self._lock:
            self.by_kind.clear()
            self.by_host.clear()
            self.cache_hits.clear()
            self.retries = 0


@dataclass(frozen=True, slots=True)
class Target:
    """What a request is about, for error messages and auth scope."""

    registry: str
    repository: str | None = None
    reference: str | None = None
    actions: tuple[str, ...] = ("pull",)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date)."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    now = time.time() if now is None else now
    return max(0.0, when.timestamp() - now)


class RegistryTransport:
    def __init__(
        self,
        config: RegistryConfig | None = None,
        *,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        retry: RetryPolicy = DEFAULT_RETRY,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config or RegistryConfig()
        self.timeout = timeout
        self.retry = retry
        self.stats = RequestStats()
        self._sleep = sleep
        self._clock = clock
        self._clients: dict[str, httpx.Client] = {}
        self._auth: dict[str, HostAuth] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"RegistryTransport(hosts={sorted(self._clients)!r})"

    # -- per-host state -------------------------------------------------------------------

    def settings(self, registry: str) -> RegistrySettings:
        return self.config.for_host(registry)

    def _client(self, settings: RegistrySettings) -> httpx.Client:
        with self._lock:
            client = self._clients.get(settings.host)
            if client is None:
                verify: ssl.SSLContext | bool = True
                if settings.ca_bundle is not None:
                    verify = ssl.create_default_context(cafile=str(settings.ca_bundle))
                client = httpx.Client(
                    timeout=self.timeout,
                    verify=verify,
                    headers={"User-Agent": USER_AGENT},
                    follow_redirects=False,
                    trust_env=False,  # a proxy from the environment must not see registry credentials by surprise
                )
                self._clients[settings.host] = client
            return client

    def _host_auth(self, settings: RegistrySettings) -> HostAuth:
        with self._lock:
            auth = self._auth.get(settings.host)
            if auth is None or auth.settings != settings:
                auth = HostAuth(settings, self._clock)
                self._auth[settings.host] = auth
            return auth

    def close(self) -> None:
        with self._lock:
            for client in self._clients.values():
                client.close()
            self._clients.clear()

    # -- requests ---------------------------------------------------------------------------

    def request(
        self,
        method: str,
        target: Target,
        path: str,
        *,
        kind: str,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        content: bytes | None = None,
        stream: bool = False,
        follow_redirects: bool = False,
    ) -> httpx.Response:
        """Send with auth and retries; return any final response except 401/403 (raised as AuthError).

        ``path`` is absolute on the registry (``/v2/...``) or a full URL the
        registry handed us (``Link``, ``Location``). With ``stream`` the caller
        must close the response.
        """
        settings = self.settings(target.registry)
        client = self._client(settings)
        auth = self._host_auth(settings)
        url = path if path.startswith(("http://", "https://")) else settings.base_url + path
        scope = repository_scope(target.repository, target.actions) if target.repository else None

        authorization = self._authorization(auth, client, target, scope)
        for auth_attempt in range(2):
            request_headers = dict(headers or {})
            if authorization:
                request_headers["Authorization"] = authorization
            response = self._send_with_retries(
                client, target, kind, method, url, request_headers, params, content, stream, follow_redirects
            )
            if response.status_code == 401:
                if stream:
                    response.close()
                challenges = parse_challenges(response.headers.get("WWW-Authenticate", ""))
                if not challenges:
                    raise AuthError(
                        target.registry,
                        target.repository,
                        target.reference,
                        "401 Unauthorized without a WWW-Authenticate challenge",
                    )
                had = authorization
                auth.learn(challenges[0])
                if had is not None and had.startswith("Bearer ") and settings.token is None:
                    # a cached token the registry no longer accepts: fetch a fresh one once
                    key = auth.token_key(scope)
                    if key is not None:
                        auth.tokens.drop(key)
                if auth_attempt == 0:
                    authorization = self._authorization(
                        auth, client, target, scope, challenge_scope=challenges[0].scope
                    )
                    if authorization and authorization != had:
                        continue
                raise AuthError(target.registry, target.repository, target.reference, self._refusal(auth, had))
            if response.status_code == 403:
                if stream:
                    response.close()
                raise AuthError(
                    target.registry,
                    target.repository,
                    target.reference,
                    f"access denied (403) for {', '.join(target.actions)}",
                )
            return response
        raise AssertionError("unreachable")  # pragma: no cover

    def _refusal(self, auth: HostAuth, sent: str | None) -> str:
        settings = auth.settings
        if sent is None:
            return "authentication required and no credentials are configured for this registry"
        if settings.token is not None:
            return "the configured token was refused (401)"
        if auth.challenge is not None and auth.challenge.scheme == "bearer":
            return "the registry refused the bearer token (401)"
        return f"credentials for user {settings.username!r} were refused (401)"

    def _authorization(
        self,
        auth: HostAuth,
        client: httpx.Client,
        target: Target,
        scope: str | None,
        *,
        challenge_scope: str | None = None,
    ) -> str | None:
        static = auth.static_header()
        if static is not None:
            return static
        key = auth.token_key(scope)
        if key is None:
            return None
        token = auth.tokens.get(key)
        if token is None:
            token, lifetime = self._fetch_token(auth, client, target, challenge_scope or scope)
            auth.tokens.put(key, token, lifetime)
        return "Bearer " + token

    def _fetch_token(
        self, auth: HostAuth, client: httpx.Client, target: Target, scope: str | None
    ) -> tuple[str, float]:
        challenge = auth.challenge
        assert challenge is not None and challenge.realm
        settings = auth.settings
        problem = realm_problem(settings, challenge.realm)
        if problem is not None:
            raise AuthError(
                target.registry,
                target.repository,
                target.reference,
                f"token service {_strip_query(challenge.realm)!r} not contacted: it {problem}; a token service must"
                " be HTTPS on the registry's host or on an allowed auth host (auth_hosts in the registry config)",
            )
        params = {}
        if challenge.service:
            params["service"] = challenge.service
        if scope:
            params["scope"] = scope
        headers = {}
        if settings.has_basic_credentials:
            assert settings.username is not None and settings.password is not None
            headers["Authorization"] = basic_header(settings.username, settings.password.reveal())
        response = self._send_with_retries(
            # No redirects: the realm rule above would not hold for where a redirect leads.
            client,
            target,
            "token",
            "GET",
            challenge.realm,
            headers,
            params,
            None,
            False,
            False,
        )
        if response.status_code in (401, 403):
            who = f"user {settings.username!r}" if settings.username else "anonymous access"
            raise AuthError(
                target.registry,
                target.repository,
                target.reference,
                f"token service {challenge.realm} refused {who} for scope {scope!r} ({response.status_code})",
            )
        if response.status_code != 200:
            raise AuthError(
                target.registry,
                target.repository,
                target.reference,
                f"token service {challenge.realm} answered {response.status_code}",
            )
        try:
            body = response.json()
            token = body.get("token") or body.get("access_token")
            lifetime = float(body.get("expires_in") or DEFAULT_TOKEN_LIFETIME)
        except (ValueError, AttributeError, TypeError):
            token = None
            lifetime = 0.0
        if not isinstance(token, str) or not token:
            raise AuthError(
                target.registry,
                target.repository,
                target.reference,
                f"token service {challenge.realm} returned no token",
            )
        return token, lifetime

    def _send_with_retries(
        self,
        client: httpx.Client,
        target: Target,
        kind: str,
        method: str,
        url: str,
        headers: dict[str, str],
        params: Mapping[str, str] | None,
        content: bytes | None,
        stream: bool,
        follow_redirects: bool,
    ) -> httpx.Response:
        policy = self.retry
        last_problem = ""
        for attempt in range(policy.max_attempts):
            if attempt:
                with self.stats._lock:
                    self.stats.retries += 1
            request = client.build_request(method, url, headers=headers, params=params, content=content)
            self.stats.record(kind, target.registry)
            try:
                response = client.send(request, stream=stream, follow_redirects=follow_redirects)
            except httpx.TransportError as exc:
                last_problem = _describe_transport_error(exc, target.registry)
                log.debug("registry %s: %s %s failed: %s", target.registry, method, request.url, last_problem)
                if _is_tls_failure(exc):
                    break  # a certificate problem will not fix itself on retry
                if attempt + 1 < policy.max_attempts:
                    self._sleep(policy.backoff(attempt))
                continue
            log.debug("registry %s: %s %s -> %s", target.registry, method, request.url, response.status_code)
            if response.status_code not in policy.retry_statuses:
                return response
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            last_problem = f"answered {status_text(response.status_code)}"
            if stream:
                response.close()
            if attempt + 1 >= policy.max_attempts:
                break
            if retry_after is not None and retry_after > policy.max_retry_after:
                last_problem += f" with Retry-After {retry_after:.0f}s (over the {policy.max_retry_after:.0f}s limit)"
                break
            self._sleep(retry_after if retry_after is not None else policy.backoff(attempt))
        raise Unreachable(
            target.registry,
            target.repository,
            target.reference,
            f"{method} {_strip_query(url)} {last_problem} (after {attempt + 1} attempt{'s' if attempt else ''})",
        )


def _is_tls_failure(exc: httpx.TransportError) -> bool:
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLError):
            return True
        cause = cause.__cause__ or cause.__context__
    return "CERTIFICATE_VERIFY_FAILED" in str(exc)


def _speaks_plain_http(exc: httpx.TransportError) -> bool:
    # What OpenSSL reports when the server's first bytes are an HTTP response rather than a TLS record.
    text = str(exc)
    return "WRONG_VERSION_NUMBER" in text or "record layer failure" in text or "http request" in text.lower()


def _describe_transport_error(exc: httpx.TransportError, registry: str = "") -> str:
    if _is_tls_failure(exc):
        hint = ""
        if _speaks_plain_http(exc):
            hint = f"; the registry may speak plain HTTP: use --plain-http {registry or 'HOST'} (or plain_http: true)"
        return f"TLS failure: {exc}{hint}"
    if isinstance(exc, httpx.TimeoutException):
        return f"timed out ({type(exc).__name__})"
    if isinstance(exc, httpx.ConnectError):
        return f"connection failed: {exc}"
    return f"{type(exc).__name__}: {exc}"


def _strip_query(url: str) -> str:
    # Upload URLs carry state tokens in their query; keep messages to the path.
    return url.split("?", 1)[0]


def status_text(status: int) -> str:
    """``503 Service Unavailable``: the standard phrase, never the one the server sent (remote text)."""
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return str(status)


# The error codes of the distribution spec with the spec's own descriptions: messages quote these,
# never the registry's words (a hostile registry would otherwise write into what viewers read).
ERROR_CODES = {
    "BLOB_UNKNOWN": "blob unknown to registry",
    "BLOB_UPLOAD_INVALID": "blob upload invalid",
    "BLOB_UPLOAD_UNKNOWN": "blob upload unknown to registry",
    "DIGEST_INVALID": "provided digest did not match uploaded content",
    "MANIFEST_BLOB_UNKNOWN": "manifest references a manifest or blob unknown to registry",
    "MANIFEST_INVALID": "manifest invalid",
    "MANIFEST_UNKNOWN": "manifest unknown",
    "NAME_INVALID": "invalid repository name",
    "NAME_UNKNOWN": "repository name not known to registry",
    "SIZE_INVALID": "provided length did not match content length",
    "UNAUTHORIZED": "authentication required",
    "DENIED": "requested access to the resource is denied",
    "UNSUPPORTED": "the operation is unsupported",
    "TOOMANYREQUESTS": "too many requests",
}


def raise_for_unexpected(response: httpx.Response, target: Target, what: str) -> None:
    """A non-success answer that is neither auth nor not-found: RegistryError with the registry's words."""
    if response.is_success:
        return
    detail = registry_error_text(response)
    raise RegistryError(
        target.registry, target.repository, target.reference, f"{what}: HTTP {response.status_code}{detail}"
    )


def registry_errors(response: httpx.Response) -> list[dict[str, Any]]:
    """The ``errors`` array of a registry error body (empty when there is none, as for HEAD)."""
    try:
        body = response.json()
    except (ValueError, httpx.ResponseNotRead):
        return []
    errors = body.get("errors") if isinstance(body, dict) else None
    return [e for e in errors if isinstance(e, dict)] if isinstance(errors, list) else []


def registry_error_text(response: httpx.Response) -> str:
    """The error codes of a registry error body with the spec's descriptions; an unknown code is not quoted."""
    codes = [str(e.get("code", "")) for e in registry_errors(response)]
    if not codes:
        return ""
    known = [f"{c}: {ERROR_CODES[c]}" for c in dict.fromkeys(codes) if c in ERROR_CODES]
    unknown = sum(c not in ERROR_CODES for c in codes)
    if unknown:
        known.append(f"{unknown} error{'s' if unknown > 1 else ''} with a code outside the distribution spec")
    return " (" + "; ".join(known) + ")"
