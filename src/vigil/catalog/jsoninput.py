"""JSON from an image, parsed within limits: its size is bounded by the caller's read, its nesting
here, before the parser sees it (Python's parser recurses once per level and raises
RecursionError on a file of ten thousand ``[``)."""

from __future__ import annotations

import json
import re
from typing import Any

MAX_JSON_DEPTH = 64  # package metadata nests a handful of levels; this is far past any real file
_TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]')


class JsonInputError(ValueError):
    """A JSON file not parsed: the message says which rule it broke."""


def json_depth(data: bytes, limit: int) -> int:
    """Deepest nesting of ``data`` (strings skipped), counted up to one past ``limit``."""
    depth = deepest = 0
    for m in _TOKEN.finditer(data):
        c = m.group()[:1]
        if c in (b"[", b"{"):
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    break
        elif c in (b"]", b"}"):
            depth -= 1
    return deepest


def load_json(data: bytes, max_depth: int = MAX_JSON_DEPTH) -> Any:
    if json_depth(data, max_depth) > max_depth:
        raise JsonInputError(f"nested deeper than {max_depth} levels, not parsed")
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise JsonInputError(f"not valid JSON ({exc})") from None
