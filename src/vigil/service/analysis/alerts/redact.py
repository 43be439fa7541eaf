"""Keeping alert secrets out of logs, dead letters and API responses (pure)."""

from __future__ import annotations

from urllib.parse import urlsplit

MASK = "***"


def redact(text: str, secrets: list[str]) -> str:
    """``text`` with every secret (and its URL-quoted form) replaced: errors may echo a URL or a body."""
    from urllib.parse import quote

    for s in sorted((s for s in secrets if s), key=len, reverse=True):
        for form in {s, quote(s, safe=""), quote(s, safe="/:")}:
            text = text.replace(form, MASK)
    return text


def mask_url(url: str, keep_path: bool) -> str:
    """scheme://host[:port] (plus the path when it carries no secret); user info and query never shown."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    path = parts.path if keep_path else (f"/{MASK}" if parts.path not in ("", "/") else "")
    query = f"?{MASK}" if parts.query else ""
    return f"{parts.scheme}://{host}{port}{path}{query}"
