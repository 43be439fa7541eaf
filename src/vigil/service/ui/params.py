"""List views' query parameters: parsed and checked here, so every URL is a shareable, valid view.

Pure functions over a multi-dict of query parameters; a bad value is an error naming the
parameter and the rule, shown to the user as a 400 page.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated
from urllib.parse import urlencode

from fastapi import Path

from vigil.service.store.ids import MAX_ROW_ID, MIN_ROW_ID
from vigil.service.store.pagination import BadCursor

PAGE_SIZES = (25, 50, 100, 200)
DEFAULT_PAGE_SIZE = 50
MAX_TEXT = 200


# An id in a page's path, bounded to the store's id range (beyond it the store cannot even look it up).
RowId = Annotated[int, Path(ge=MIN_ROW_ID, le=MAX_ROW_ID)]


class BadParam(ValueError):
    pass


def multi(params, name: str, allowed: tuple[str, ...]) -> tuple[str, ...]:
    """Repeated or comma-separated values, each one of ``allowed``."""
    values: list[str] = []
    for raw in params.getlist(name):
        values += [v.strip() for v in raw.split(",") if v.strip()]
    bad = [v for v in values if v not in allowed]
    if bad:
        raise BadParam(f"{name}: {', '.join(map(repr, bad))} is not one of {', '.join(allowed)}")
    return tuple(dict.fromkeys(values))


def text(params, name: str, max_len: int = MAX_TEXT) -> str | None:
    value = (params.get(name) or "").strip()
    if len(value) > max_len:
        raise BadParam(f"{name}: longer than {max_len} characters")
    return value or None


def choice(params, name: str, allowed: tuple[str, ...]) -> str | None:
    value = text(params, name)
    if value is not None and value not in allowed:
        raise BadParam(f"{name}: {value!r} is not one of {', '.join(allowed)}")
    return value


def flag(params, name: str) -> bool:
    value = (params.get(name) or "").strip().lower()
    if value in ("", "0", "false", "no"):
        return False
    if value in ("1", "true", "yes", "on"):
        return True
    raise BadParam(f"{name}: {value!r} is not a yes/no value (1 or 0)")


def integer(params, name: str) -> int | None:
    value = text(params, name)
    if value is None:
        return None
    if not value.isdigit() or len(value) > 12:
        raise BadParam(f"{name}: {value!r} is not a non-negative integer")
    return int(value)


def sort(params, allowed: tuple[str, ...], default: str) -> tuple[str, bool]:
    """``sort=name`` ascending, ``sort=-name`` descending; the default's sign is its direction."""
    raw = text(params, "sort") or default
    descending = raw.startswith("-")
    name = raw[1:] if descending else raw
    if name not in allowed:
        raise BadParam(f"sort: {name!r} is not one of {', '.join(allowed)}")
    return name, descending


def page_size(params) -> int:
    value = integer(params, "limit")
    if value is None:
        return DEFAULT_PAGE_SIZE
    if value not in PAGE_SIZES:
        raise BadParam(f"limit: {value} is not one of {', '.join(map(str, PAGE_SIZES))}")
    return value


def cursor(params) -> str | None:
    return text(params, "after", 512)


@contextmanager
def cursor_checked(name: str = "after") -> Iterator[None]:
    """A cursor the store refuses (not one it issued for this listing) is a bad ``name`` parameter."""
    try:
        yield
    except BadCursor as exc:
        raise BadParam(f"{name}: {exc}") from None


def link(path: str, params, **changes) -> str:
    """The current view's URL with ``changes`` applied (None drops a parameter).

    Changing anything but the cursor starts again at the first page.
    """
    items = [(k, v) for k, v in params.multi_items() if k not in changes and k != "after"]
    for k, v in changes.items():
        if v is None or v == "" or v is False:
            continue
        items.append((k, "1" if v is True else str(v)))
    query = urlencode(items)
    return f"{path}?{query}" if query else path


def sort_link(path: str, params, name: str, current: str, descending: bool) -> str:
    """Clicking the current sort column flips its direction; another column sorts ascending."""
    if name == current:
        return link(path, params, sort=name if descending else f"-{name}")
    return link(path, params, sort=name)
