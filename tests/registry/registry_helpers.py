"""Helpers shared by the registry tests (a module of its own: test modules must not import conftest)."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from vigil.registry import RegistryClient, RegistryConfig, RetryPolicy

USERS = {"alice": "Tr0ub4dor&3-horse-battery"}
FAST_RETRY = RetryPolicy(max_attempts=3, backoff_base=0.01, backoff_max=0.02)


def make_client(host: str, *, retry: RetryPolicy = FAST_RETRY, **options) -> RegistryClient:
    settings = {"plain_http": True, **{k: options.pop(k) for k in ("username", "password", "token") if k in options}}
    return RegistryClient(RegistryConfig.from_mapping({host: settings}), retry=retry, **options)


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]


Answer = tuple[int, dict[str, str], bytes]


@dataclass
class Proxy:
    """A loopback HTTP server that answers through ``hook`` or forwards to ``upstream``.

    ``hook(seen)`` returns an Answer to reply itself, or None to forward; ``rewrite(seen, answer)``
    may alter a forwarded answer (to tamper with bodies). Every request is recorded in ``seen``.
    """

    upstream: str
    hook: Callable[[Seen], Answer | None] = lambda seen: None
    rewrite: Callable[[Seen, Answer], Answer] = lambda seen, answer: answer
    seen: list[Seen] = field(default_factory=list)
    host: str = ""

    def forward(self, seen: Seen, body: bytes) -> Answer:
        headers = {
            k: v for k, v in seen.headers.items() if k.lower() not in ("host", "content-length", "authorization")
        }
        with httpx.Client(trust_env=False) as http:
            response = http.request(seen.method, self.upstream + seen.path, headers=headers, content=body or None)
        out_headers = {
            k: v
            for k, v in response.headers.items()
            if k.lower() not in ("content-length", "transfer-encoding", "connection")
        }
        return response.status_code, out_headers, response.content


def json_answer(status: int, doc: dict, headers: dict[str, str] | None = None) -> Answer:
    return status, {"Content-Type": "application/json", **(headers or {})}, json.dumps(doc).encode()


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
