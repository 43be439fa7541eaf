"""A small HTTP client for the service's API, used by the CLI (and by senders for plain calls)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

import httpx

if TYPE_CHECKING:
    from vigil.wire.views import View

V = TypeVar("V", bound="View")


class ServiceError(RuntimeError):
    """The service answered with an error; the message carries its status and reason."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(f"{status} {code}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail


class InvalidServiceUrl(ServiceError, ValueError):
    """A service URL that could never be reached: no http(s) scheme or no host (a ValueError too, so a command
    that builds its client outside its own error handling still ends in one error line)."""

    def __init__(self, url: str) -> None:
        super().__init__(0, "invalid_url", url)

    def __str__(self) -> str:
        return f"--url {self.detail!r}: a service URL needs the scheme http or https and a host, e.g. http://127.0.0.1:8080"


def check_service_url(url: str) -> str:
    """``url`` if it has an http(s) scheme and a host; else ``InvalidServiceUrl``."""
    parsed = httpx.URL(url) if "://" in url else None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.host:
        raise InvalidServiceUrl(url)
    return url


class ServiceClient:
    def __init__(self, url: str, token: str | None, *, timeout: float = 30.0, verify: bool | str = True) -> None:
        check_service_url(url)
        headers = {"User-Agent": "vigil-cli"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._http = httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=timeout, verify=verify)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ServiceClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            resp = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ServiceError(
                0, "unreachable", f"{self._http.base_url}{path}: {exc.__class__.__name__}: {exc}"
            ) from None
        if resp.status_code >= 400:
            try:
                body = resp.json()
                raise ServiceError(resp.status_code, body.get("error", "error"), body.get("detail", resp.text))
            except ValueError:
                raise ServiceError(resp.status_code, "error", resp.text[:500]) from None
        if resp.status_code == 204 or not resp.content:
            return None
        return resp.json()

    def list_all(
        self, path: str, params: dict[str, Any] | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """Follow `next` cursors until the listing ends or ``limit`` items are gathered."""
        params = {k: v for k, v in (params or {}).items() if v is not None}
        items: list[dict[str, Any]] = []
        after = None
        while True:
            page_params = dict(params, limit=min(1000, limit - len(items)) if limit else 1000)
            if after:
                page_params["after"] = after
            body = self.request("GET", path, params=page_params)
            items.extend(body["items"])
            after = body.get("next")
            if not after or (limit and len(items) >= limit):
                return items

    def list_views(
        self, model: type[V], path: str, params: dict[str, Any] | None = None, limit: int | None = None
    ) -> list[V]:
        """``list_all`` with each item parsed as ``model``, a row model of ``vigil.wire.views``
        (e.g. ``list_views(Finding, "/api/v1/findings")``)."""
        return [model.model_validate(item) for item in self.list_all(path, params, limit)]
