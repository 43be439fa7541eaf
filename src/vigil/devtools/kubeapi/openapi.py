"""OpenAPI v2 and v3 for the kinds this server serves, built from Kubernetes' own schemas, and the
field validation (``fieldValidation=Strict|Warn|Ignore``) that kube-apiserver does with them.

The schemas are the API's definitions as the ``kubernetes-validate`` package ships them (JSON Schema
converted from the API server's OpenAPI); they are turned back into OpenAPI (``$ref`` to
``#/definitions`` or ``#/components/schemas``, no ``null`` types) with the ``x-kubernetes-*``
extensions kubectl reads: ``x-kubernetes-group-version-kind`` on kinds and operations, and the
patch merge keys and strategies ``kubectl apply`` computes strategic merge patches with. Paths carry
the ``fieldValidation`` query parameter, so kubectl leaves validation to the server, as with a real one.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
from pathlib import Path
from typing import Any

import orjson

from .discovery import SERVER_VERSION
from .patch import Schema
from .resources import GROUP_VERSIONS, ResourceType

SCHEMA_VERSION = "v1.31.0"  # the Kubernetes version this server says it is
_META = "io.k8s.apimachinery.pkg.apis.meta.v1."
# What the API server publishes for these two (the JSON Schema form is a oneOf).
_SPECIAL = {
    "io.k8s.apimachinery.pkg.util.intstr.IntOrString": {"type": "string", "format": "int-or-string"},
    "io.k8s.apimachinery.pkg.api.resource.Quantity": {"type": "string"},
}
_PATCH_TYPES = (
    "application/apply-patch+yaml",
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
)


def _definitions_file() -> Path | None:
    spec = importlib.util.find_spec("kubernetes_validate")
    if spec is None or not spec.submodule_search_locations:
        return None
    root = Path(next(iter(spec.submodule_search_locations))) / "kubernetes-json-schema"
    path = root / f"{SCHEMA_VERSION}-local" / "_definitions.json"
    return path if path.is_file() else None


def _convert(node: Any, prefix: str) -> Any:
    """JSON Schema (as kubernetes-validate has it) back to the API server's OpenAPI form."""
    if isinstance(node, list):
        return [_convert(v, prefix) for v in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "$ref":
            out[key] = prefix + str(value).rsplit("/", 1)[-1]
        elif key == "type" and isinstance(value, list):
            types = [t for t in value if t != "null"]
            if types:
                out[key] = types[0]
        elif key in ("properties", "additionalProperties", "items", "oneOf", "allOf", "anyOf"):
            if key == "properties":
                out[key] = {k: _convert(v, prefix) for k, v in value.items()}
            else:
                out[key] = _convert(value, prefix)
        else:
            out[key] = value
    return out


@functools.cache
def raw_definitions() -> dict[str, Any] | None:
    """The API's definitions by name, as JSON Schema; None without the kubernetes-validate package."""
    path = _definitions_file()
    if path is None:
        return None
    defs = orjson.loads(path.read_bytes())["$defs"]
    for name, schema in _SPECIAL.items():
        if name in defs:
            defs[name] = {"description": defs[name].get("description", ""), **schema}
    return defs


@functools.cache
def _kinds() -> dict[tuple[str, str, str], str]:
    out = {}
    for name, schema in (raw_definitions() or {}).items():
        for gvk in schema.get("x-kubernetes-group-version-kind") or []:
            out[(gvk.get("group", ""), gvk.get("version", ""), gvk.get("kind", ""))] = name
    return out


def kind_definition(rt: ResourceType) -> str | None:
    return _kinds().get((rt.group, rt.version, rt.kind))


def _closure(defs: dict[str, Any], roots: list[str]) -> list[str]:
    seen: list[str] = []
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in seen or name not in defs:
            continue
        seen.append(name)
        stack = [defs[name]]
        while stack:
            node = stack.pop()
            if isinstance(node, dict):
                ref = node.get("$ref")
                if isinstance(ref, str):
                    todo.append(ref.rsplit("/", 1)[-1])
                stack.extend(node.values())
            elif isinstance(node, list):
                stack.extend(node)
    return sorted(seen)


def _roots(types: list[ResourceType]) -> list[str]:
    roots = [_META + n for n in ("Status", "DeleteOptions", "APIResourceList", "WatchEvent", "Patch")]
    for rt in types:
        name = kind_definition(rt)
        if name:
            roots += [name, name + "List"]
    if any(rt.has_scale for rt in types):
        roots.append("io.k8s.api.autoscaling.v1.Scale")
    return roots


def _gvk(rt: ResourceType, kind: str | None = None) -> dict[str, str]:
    return {"group": rt.group, "kind": kind or rt.kind, "version": rt.version}


def _op_id(verb: str, rt: ResourceType, suffix: str = "") -> str:
    """``listCoreV1NamespacedPod``, ``patchAppsV1NamespacedDeploymentScale``, as the API server names them."""
    group = (rt.group.split(".")[0] if rt.group else "core").capitalize()
    if verb == "listAll":
        return f"list{group}{rt.version.capitalize()}{rt.kind}ForAllNamespaces"
    scope = "Namespaced" if rt.namespaced else ""
    return f"{verb}{group}{rt.version.capitalize()}{scope}{rt.kind}{suffix}"


def _param(name: str, where: str, v3: bool) -> dict[str, Any]:
    """A string parameter, in the v3 (``schema``) or v2 (``type``) form."""
    param: dict[str, Any] = {"name": name, "in": where}
    if where == "path":
        param["required"] = True
    if v3:
        param["schema"] = {"type": "string", "uniqueItems": True}
    else:
        param.update(type="string", uniqueItems=True)
    return param


def _query(name: str, v3: bool) -> dict[str, Any]:
    return _param(name, "query", v3)


def _path_param(name: str, v3: bool) -> dict[str, Any]:
    return _param(name, "path", v3)


def _operation(
    action: str, op_id: str, gvk: dict, ref: str | None, v3: bool, prefix: str, body_types: tuple[str, ...] = ()
) -> dict[str, Any]:
    write = action in ("post", "put", "patch")
    op: dict[str, Any] = {
        "operationId": op_id,
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": gvk,
        "parameters": [_query(n, v3) for n in (("dryRun", "fieldManager", "fieldValidation") if write else ())],
    }
    if action in ("list", "deletecollection"):
        op["parameters"] += [_query(n, v3) for n in ("labelSelector", "fieldSelector", "limit", "continue")]
    schema = {"$ref": prefix + ref} if ref else {"type": "object"}
    codes = ("200", "201") if action in ("post", "put") else ("200",)
    if v3:
        if write:
            content_types = body_types or ("*/*",)
            op["requestBody"] = {"content": {t: {"schema": schema} for t in content_types}, "required": True}
        op["responses"] = {c: {"description": "OK", "content": {"application/json": {"schema": schema}}} for c in codes}
    else:
        if write:
            op["parameters"].append({"name": "body", "in": "body", "required": True, "schema": schema})
            if body_types:
                op["consumes"] = list(body_types)
        op["produces"] = ["application/json", "application/yaml"]
        op["responses"] = {c: {"description": "OK", "schema": schema} for c in codes}
    return op


def _paths(types: list[ResourceType], v3: bool) -> dict[str, Any]:
    prefix = "#/components/schemas/" if v3 else "#/definitions/"
    paths: dict[str, Any] = {}
    for rt in types:
        kind_def = kind_definition(rt)
        if kind_def is None:
            continue
        base = f"/api/{rt.version}" if not rt.group else f"/apis/{rt.group}/{rt.version}"
        scoped = f"{base}/namespaces/{{namespace}}/{rt.plural}" if rt.namespaced else f"{base}/{rt.plural}"
        path_params = [_path_param("namespace", v3)] if rt.namespaced else []
        gvk = _gvk(rt)
        paths[scoped] = {
            "parameters": path_params,
            "get": _operation("list", _op_id("list", rt), gvk, kind_def + "List", v3, prefix),
            "post": _operation("post", _op_id("create", rt), gvk, kind_def, v3, prefix, ("*/*",)),
            "delete": _operation("deletecollection", _op_id("deleteCollection", rt), gvk, _META + "Status", v3, prefix),
        }
        if rt.namespaced:
            paths[f"{base}/{rt.plural}"] = {
                "get": _operation("list", _op_id("listAll", rt), gvk, kind_def + "List", v3, prefix)
            }
        item_params = [*path_params, _path_param("name", v3)]
        paths[f"{scoped}/{{name}}"] = {
            "parameters": item_params,
            "get": _operation("get", _op_id("read", rt), gvk, kind_def, v3, prefix),
            "put": _operation("put", _op_id("replace", rt), gvk, kind_def, v3, prefix, ("*/*",)),
            "patch": _operation("patch", _op_id("patch", rt), gvk, kind_def, v3, prefix, _PATCH_TYPES),
            "delete": _operation("delete", _op_id("delete", rt), gvk, _META + "Status", v3, prefix),
        }
        subs = [*(["status"] if rt.has_status else []), *rt.subresources]
        targets: list[tuple[str, str, dict]] = [(s, kind_def, gvk) for s in subs]
        if rt.has_scale:
            targets.append(
                ("scale", "io.k8s.api.autoscaling.v1.Scale", {"group": "autoscaling", "kind": "Scale", "version": "v1"})
            )
        for sub, ref, sub_gvk in targets:
            suffix = sub.capitalize() if sub != "ephemeralcontainers" else "Ephemeralcontainers"
            paths[f"{scoped}/{{name}}/{sub}"] = {
                "parameters": item_params,
                "get": _operation("get", _op_id("read", rt, suffix), sub_gvk, ref, v3, prefix),
                "put": _operation("put", _op_id("replace", rt, suffix), sub_gvk, ref, v3, prefix, ("*/*",)),
                "patch": _operation("patch", _op_id("patch", rt, suffix), sub_gvk, ref, v3, prefix, _PATCH_TYPES),
            }
    return paths


def _info() -> dict[str, str]:
    return {"title": "Kubernetes", "version": SERVER_VERSION["gitVersion"]}


def _doc_path(group_version: str) -> str:
    return f"api/{group_version}" if "/" not in group_version else f"apis/{group_version}"


@functools.cache
def v3_documents() -> dict[str, bytes] | None:
    """``"api/v1"``, ``"apis/apps/v1"``, ... -> that group version's OpenAPI v3 document (JSON)."""
    defs = raw_definitions()
    if defs is None:
        return None
    out = {}
    for gv, types in GROUP_VERSIONS.items():
        schemas = {n: _convert(defs[n], "#/components/schemas/") for n in _closure(defs, _roots(types))}
        doc = {
            "openapi": "3.0.0",
            "info": _info(),
            "paths": _paths(types, v3=True),
            "components": {"schemas": schemas},
        }
        out[_doc_path(gv)] = orjson.dumps(doc)
    return out


def v3_index() -> dict[str, Any] | None:
    docs = v3_documents()
    if docs is None:
        return None
    return {
        "paths": {
            path: {"serverRelativeURL": f"/openapi/v3/{path}?hash={hashlib.sha512(body).hexdigest().upper()}"}
            for path, body in docs.items()
        }
    }


@functools.cache
def v2_document() -> bytes | None:
    defs = raw_definitions()
    if defs is None:
        return None
    types = [rt for group in GROUP_VERSIONS.values() for rt in group]
    doc = {
        "swagger": "2.0",
        "info": _info(),
        "paths": _paths(types, v3=False),
        "definitions": {n: _convert(defs[n], "#/definitions/") for n in _closure(defs, _roots(types))},
    }
    return orjson.dumps(doc)


# ---- field validation ------------------------------------------------------------------------


def _resolve(defs: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = defs.get(str(schema["$ref"]).rsplit("/", 1)[-1], {})
    return schema


def _unknown(defs: dict[str, Any], schema: dict[str, Any], value: Any, path: str, out: list[str], drop: bool) -> None:
    schema = _resolve(defs, schema)
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return
    if isinstance(value, dict):
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        if props is None and not isinstance(extra, dict):
            return  # RawExtension, FieldsV1: any object
        for key in list(value):
            at = f"{path}.{key}" if path else str(key)
            if props is not None and key in props:
                _unknown(defs, props[key], value[key], at, out, drop)
            elif isinstance(extra, dict):
                _unknown(defs, extra, value[key], at, out, drop)
            else:
                out.append(f'unknown field "{at}"')
                if drop:
                    del value[key]
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            _unknown(defs, schema["items"], item, f"{path}[{i}]", out, drop)


def kind_schema(rt: ResourceType) -> Schema | None:
    """The kind's schema for strategic merge patches (None without the definitions)."""
    defs = raw_definitions()
    name = kind_definition(rt)
    if defs is None or name is None:
        return None
    return Schema(defs, defs[name])


def unknown_fields(rt: ResourceType, obj: dict[str, Any], drop: bool) -> list[str]:
    """``unknown field "spec.foo"`` for each field the kind's schema does not have, in document order;
    with ``drop`` they are removed from ``obj`` as the API server's decoding drops them."""
    defs = raw_definitions()
    name = kind_definition(rt)
    if defs is None or name is None:
        return []
    out: list[str] = []
    _unknown(defs, defs[name], obj, "", out, drop)
    return out
