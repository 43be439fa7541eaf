"""PATCH bodies: JSON merge patch (RFC 7386), JSON patch (RFC 6902) and strategic merge.

Strategic merge is approximated: maps merge as in a merge patch, and lists whose items
are objects with a ``name`` (containers, env, ports by name, volumes) merge item by
item on that key, which is the merge key of every such list in the kinds served here.
"""

from __future__ import annotations

import copy
from typing import Any

from .errors import ApiError

MERGE = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"
APPLY = "application/apply-patch+yaml"


def merge_patch(target: Any, patch: Any) -> Any:
    return _merge(target, patch, strategic=False)


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    return _merge(target, patch, strategic=True)


def _merge(target: Any, patch: Any, strategic: bool) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif (
            strategic
            and isinstance(value, list)
            and isinstance(out.get(key), list)
            and _named(value)
            and _named(out[key])
        ):
            out[key] = _merge_named(out[key], value)
        else:
            out[key] = _merge(out.get(key), value, strategic)
    return out


def _merge_named(current: list[dict], patch: list[dict]) -> list[dict]:
    """Lists of objects merge item by item on ``name``; ``$patch: delete`` removes one."""
    merged = {item["name"]: item for item in current}
    order = [item["name"] for item in current]
    for item in patch:
        if item.get("$patch") == "delete":
            merged.pop(item["name"], None)
            continue
        if item["name"] not in merged:
            order.append(item["name"])
        merged[item["name"]] = _merge(merged.get(item["name"]), item, strategic=True)
    return [merged[n] for n in order if n in merged]


def _named(items: list) -> bool:
    return bool(items) and all(isinstance(i, dict) and "name" in i for i in items)


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise ApiError(422, f"the JSON patch path {path!r} must start with '/'")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _walk(doc: Any, parts: list[str], path: str) -> Any:
    cur = doc
    for p in parts:
        if isinstance(cur, list):
            try:
                cur = cur[int(p)]
            except (ValueError, IndexError):
                raise ApiError(422, f"the JSON patch path {path!r} does not exist") from None
        elif isinstance(cur, dict) and p in cur:
            cur = cur[p]
        else:
            raise ApiError(422, f"the JSON patch path {path!r} does not exist")
    return cur


def json_patch(doc: Any, ops: Any) -> Any:
    if not isinstance(ops, list):
        raise ApiError(400, "a JSON patch must be a list of operations")
    doc = copy.deepcopy(doc)
    for op in ops:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise ApiError(400, f"invalid JSON patch operation {op!r}: needs 'op' and 'path'")
        kind, path = op["op"], op["path"]
        parts = _pointer(path)
        if kind == "test":
            if _walk(doc, parts, path) != op.get("value"):
                raise ApiError(422, f"the JSON patch test at {path!r} failed")
            continue
        if kind in ("move", "copy"):
            src = _pointer(op.get("from", ""))
            value = copy.deepcopy(_walk(doc, src, op.get("from", "")))
            if kind == "move":
                doc = json_patch(doc, [{"op": "remove", "path": op["from"]}])
            doc = json_patch(doc, [{"op": "add", "path": path, "value": value}])
            continue
        if not parts:
            if kind in ("add", "replace"):
                doc = copy.deepcopy(op.get("value"))
                continue
            raise ApiError(422, "cannot remove the whole document")
        parent = _walk(doc, parts[:-1], path)
        last = parts[-1]
        if kind == "add":
            if isinstance(parent, list):
                idx = len(parent) if last == "-" else int(last)
                parent.insert(idx, copy.deepcopy(op.get("value")))
            else:
                parent[last] = copy.deepcopy(op.get("value"))
        elif kind in ("remove", "replace"):
            _walk(parent, [last], path)
            if kind == "remove":
                del parent[int(last) if isinstance(parent, list) else last]
            else:
                parent[int(last) if isinstance(parent, list) else last] = copy.deepcopy(op.get("value"))
        else:
            raise ApiError(400, f"unknown JSON patch operation {kind!r}")
    return doc


def apply_patch(content_type: str, current: dict, body: Any) -> dict:
    ctype = content_type.split(";")[0].strip().lower()
    if ctype == MERGE:
        out = merge_patch(current, body)
    elif ctype == STRATEGIC:
        out = strategic_merge_patch(current, body)
    elif ctype == JSON_PATCH:
        out = json_patch(current, body)
    else:
        raise ApiError(
            415,
            f"the body of the request was in an unknown format - accepted media types include: "
            f"{JSON_PATCH}, {MERGE}, {STRATEGIC}",
        )
    if not isinstance(out, dict):
        raise ApiError(422, "the patched object is not a JSON object")
    return out
