"""PATCH bodies: JSON merge patch (RFC 7386), JSON patch (RFC 6902) and strategic merge.

Strategic merge follows the kind's OpenAPI schema where it is at hand (see openapi.py): lists
with ``x-kubernetes-patch-strategy: merge`` merge item by item on their
``x-kubernetes-patch-merge-key`` (primitive lists as sets), other lists are replaced, and the
directives kubectl sends are honoured (``$patch: replace|delete``, ``$setElementOrder/<list>``,
``$deleteFromPrimitiveList/<list>``, ``$retainKeys``). Without a schema, lists whose items are
objects with a ``name`` merge on it, which is the merge key of every such list in the kinds served.
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


def strategic_merge_patch(target: Any, patch: Any, schema: Schema | None = None) -> Any:
    if schema is not None:
        return _smp_map(target if isinstance(target, dict) else {}, patch, schema)
    return _merge(target, patch, strategic=True)


class Schema:
    """A node of the kind's OpenAPI schema, with its definitions to resolve ``$ref`` in."""

    def __init__(self, defs: dict[str, Any], node: dict[str, Any]) -> None:
        while "$ref" in node:
            node = defs.get(str(node["$ref"]).rsplit("/", 1)[-1], {})
        self.defs, self.node = defs, node

    def field(self, name: str) -> tuple[Schema | None, dict[str, Any]]:
        """The schema of field ``name`` and the field's own (unresolved) node, for its patch extensions."""
        props = self.node.get("properties") or {}
        raw = props.get(name)
        if raw is None and isinstance(self.node.get("additionalProperties"), dict):
            raw = self.node["additionalProperties"]
        if raw is None:
            return None, {}
        return Schema(self.defs, raw), raw

    @property
    def is_object(self) -> bool:
        kind = self.node.get("type", "object")  # a list (["object", "null"]) in JSON Schema form
        return "object" in kind if isinstance(kind, list) else kind == "object"

    def items(self) -> Schema | None:
        items = self.node.get("items")
        return Schema(self.defs, items) if isinstance(items, dict) else None


def _smp_map(target: dict, patch: Any, schema: Schema | None) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    patch = dict(patch)
    directive = patch.pop("$patch", None)
    if directive == "replace":
        return _strip(patch)
    if directive == "delete":
        return None
    retain = patch.pop("$retainKeys", None)
    orders = {k.split("/", 1)[1]: patch.pop(k) for k in list(patch) if k.startswith("$setElementOrder/")}
    removals = {k.split("/", 1)[1]: patch.pop(k) for k in list(patch) if k.startswith("$deleteFromPrimitiveList/")}
    out = dict(target)
    for key, value in patch.items():
        sub, raw = schema.field(key) if schema else (None, {})
        if value is None:
            out.pop(key, None)
        elif isinstance(value, list):
            strategy = str(raw.get("x-kubernetes-patch-strategy") or "")
            if "merge" in strategy.split(",") and isinstance(out.get(key), list):
                item_schema = sub.items() if sub else None
                out[key] = _smp_list(out[key], value, raw.get("x-kubernetes-patch-merge-key"), item_schema)
            else:
                out[key] = _strip(value)
        elif isinstance(value, dict) and (sub is None or sub.is_object):
            existing = out.get(key)
            merged = _smp_map(existing if isinstance(existing, dict) else {}, value, sub)
            if merged is None:
                out.pop(key, None)
            else:
                out[key] = merged
        else:
            out[key] = copy.deepcopy(value)
    for key, values in removals.items():
        if isinstance(out.get(key), list):
            out[key] = [v for v in out[key] if v not in values]
    for key, order in orders.items():
        if isinstance(out.get(key), list):
            sub, raw = schema.field(key) if schema else (None, {})
            out[key] = _ordered(out[key], order, raw.get("x-kubernetes-patch-merge-key"))
    if isinstance(retain, list):
        out = {k: v for k, v in out.items() if k in retain}
    return out


def _smp_list(current: list, patch: list, merge_key: str | None, item_schema: Schema | None) -> list:
    if any(isinstance(i, dict) and i.get("$patch") == "replace" for i in patch):
        return [_strip(i) for i in patch if not (isinstance(i, dict) and i.get("$patch") == "replace")]
    if not merge_key:  # a primitive list merged as a set
        return list(current) + [v for v in patch if v not in current]
    out = [copy.deepcopy(i) for i in current]
    for item in patch:
        if not isinstance(item, dict):
            continue
        at = next(
            (n for n, c in enumerate(out) if isinstance(c, dict) and c.get(merge_key) == item.get(merge_key)), None
        )
        if item.get("$patch") == "delete":
            out = [c for c in out if not (isinstance(c, dict) and c.get(merge_key) == item.get(merge_key))]
        elif at is None:
            out.append(_strip(item))
        else:
            out[at] = _smp_map(out[at], item, item_schema)
    return out


def _ordered(items: list, order: list, merge_key: str | None) -> list:
    """``$setElementOrder``: the listed items in that order, then any the patch did not know of."""

    def key(item: Any) -> Any:
        return item.get(merge_key) if merge_key and isinstance(item, dict) else item

    wanted = [o.get(merge_key) if merge_key and isinstance(o, dict) else o for o in order]
    listed = sorted((i for i in items if key(i) in wanted), key=lambda i: wanted.index(key(i)))
    return listed + [i for i in items if key(i) not in wanted]


def _strip(value: Any) -> Any:
    """A patch value stored as it is, without directives."""
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if not k.startswith("$")}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return copy.deepcopy(value)


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


def apply_patch(content_type: str, current: dict, body: Any, schema: Schema | None = None) -> dict:
    """``current`` patched; ``schema`` is the kind's, for strategic merge (None: by heuristics)."""
    ctype = content_type.split(";")[0].strip().lower()
    if ctype == MERGE:
        out = merge_patch(current, body)
    elif ctype == STRATEGIC:
        out = strategic_merge_patch(current, body, schema)
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
