"""Query parameters shared by endpoints, checked the way the rest of the API reports errors."""

from __future__ import annotations

from vigil.service.api.errors import ApiError


def csv_values(name: str, value: str | None, allowed: tuple[str, ...]) -> list[str]:
    """``a,b`` -> ["a", "b"]; a value outside ``allowed`` is a 422 naming ``query.<name>``."""
    if not value:
        return []
    items = [v.strip() for v in value.split(",") if v.strip()]
    bad = [v for v in items if v not in allowed]
    if bad:
        raise ApiError(
            422, "invalid_request", f"query.{name}: {', '.join(map(repr, bad))} not one of {', '.join(allowed)}"
        )
    return items
