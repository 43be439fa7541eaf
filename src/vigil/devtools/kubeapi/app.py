"""The HTTP face of the test API server (aiohttp): routing, auth, list/watch/write handlers."""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import orjson
import yaml
from aiohttp import web

from . import admission, discovery, openapi
from .admission import Attributes, Warnings
from .errors import ApiError
from .resources import BY_PATH, ResourceType
from .selectors import parse_field_selector, parse_label_selector
from .store import CLOSE, ApiStore, clone
from .tables import table, wants_table

log = logging.getLogger(__name__)
_PUBLIC = {"/version", "/healthz", "/livez", "/readyz"}
JSON = "application/json"
WARNINGS = web.RequestKey("warnings", Warnings)


@dataclass
class ServerSettings:
    token: str
    bookmark_interval: float = 60.0
    watch_timeout: float = 1800.0
    # Where admission webhooks named by clientConfig.service are reached: "namespace/name" ->
    # "https://HOST:PORT" (TLS is verified for the DNS name name.namespace.svc, as in a cluster).
    service_endpoints: dict[str, str] = field(default_factory=dict)
    admission_user: dict[str, Any] = field(default_factory=lambda: dict(admission.DEFAULT_USER))


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type=JSON)


def _status_response(exc: ApiError) -> web.Response:
    return _json(exc.status(), exc.code)


@dataclass
class Target:
    rt: ResourceType
    namespace: str | None
    name: str | None
    subresource: str | None
    watch_path: bool


def _parse_path(path: str) -> Target | None:
    segs = [unquote(s) for s in path.strip("/").split("/") if s]
    if len(segs) < 3:
        return None
    if segs[0] == "api":
        group, version, rest = "", segs[1], segs[2:]
    elif segs[0] == "apis" and len(segs) >= 4:
        group, version, rest = segs[1], segs[2], segs[3:]
    else:
        return None
    watch_path = False
    if rest and rest[0] == "watch":
        watch_path, rest = True, rest[1:]
    ns = None
    if len(rest) >= 3 and rest[0] == "namespaces" and (group, version, rest[2]) in BY_PATH:
        ns, rest = rest[1], rest[2:]
    if not rest or len(rest) > 3:
        return None
    rt = BY_PATH.get((group, version, rest[0]))
    if rt is None:
        return None
    if ns is not None and not rt.namespaced:
        return None
    return Target(rt, ns, rest[1] if len(rest) > 1 else None, rest[2] if len(rest) > 2 else None, watch_path)


async def _body(request: web.Request) -> Any:
    raw = await request.read()
    if not raw:
        return None
    ctype = (request.content_type or "").lower()
    try:
        if "yaml" in ctype and "apply-patch" not in ctype:
            return yaml.safe_load(raw)
        return orjson.loads(raw)
    except (orjson.JSONDecodeError, yaml.YAMLError) as exc:
        raise ApiError(400, f"the request body is not valid {'YAML' if 'yaml' in ctype else 'JSON'}: {exc}") from None


def _bool(value: str | None) -> bool:
    return value in ("true", "1", "True")


def _int(request: web.Request, name: str) -> int:
    raw = request.query.get(name)
    if raw in (None, ""):
        return 0
    try:
        value = int(raw)
        if value < 0:
            raise ValueError
        return value
    except ValueError:
        raise ApiError(400, f'{name}: Invalid value: "{raw}": must be a non-negative integer') from None


def _scale(obj: dict) -> dict:
    meta = obj["metadata"]
    sel = (obj.get("spec") or {}).get("selector") or {}
    labels = sel.get("matchLabels", sel) if isinstance(sel, dict) else {}
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp") if k in meta
        },
        "spec": {"replicas": int((obj.get("spec") or {}).get("replicas", 1) or 0)},
        "status": {
            "replicas": int((obj.get("status") or {}).get("replicas", 0) or 0),
            "selector": ",".join(f"{k}={v}" for k, v in sorted(labels.items()) if isinstance(v, str)),
        },
    }


class KubeApiApp:
    def __init__(self, store: ApiStore, settings: ServerSettings) -> None:
        self.store = store
        self.settings = settings
        self.requests: list[tuple[str, str]] = []  # (method, path?query): what clients asked, for tests

    def build(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware], client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        return app

    @web.middleware
    async def _middleware(self, request: web.Request, handler):
        self.requests.append((request.method, request.path_qs))
        if request.path not in _PUBLIC:
            header = request.headers.get("Authorization", "")
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(
                token.strip().encode(), self.settings.token.encode()
            ):
                return _status_response(ApiError(401, "Unauthorized"))
        warnings = request[WARNINGS] = Warnings()
        try:
            response = await handler(request)
        except ApiError as exc:
            response = _status_response(exc)
        if not response.prepared:
            for header in warnings.headers():
                response.headers.add("Warning", header)
        return response

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = "/" + request.match_info["tail"]
        if path.rstrip("/") in ("/healthz", "/livez", "/readyz"):
            return web.Response(text="ok")
        if request.method == "GET" and (path == "/openapi" or path.startswith("/openapi/")):
            return self._openapi(path, request)
        if request.method == "GET":
            doc = self._discovery(path, request)
            if doc is not None:
                return _json(doc)
        target = _parse_path(path)
        if target is None:
            raise ApiError(404, "the server could not find the requested resource")
        method = request.method
        if target.watch_path or (method == "GET" and target.name is None and _bool(request.query.get("watch"))):
            return await self._watch(request, target)
        if target.name is None:
            if method == "GET":
                return self._list(request, target)
            if method == "POST":
                return await self._create(request, target)
            if method == "DELETE":
                return await self._delete_collection(request, target)
            raise ApiError(405, "the server does not allow this method on the requested resource")
        if target.subresource not in (None, "status", "scale", *target.rt.subresources) or (
            target.subresource == "scale" and not target.rt.has_scale
        ):
            raise ApiError(404, "the server could not find the requested resource")
        if method == "GET":
            obj = self.store.get(target.rt, target.namespace, target.name)
            if target.subresource == "scale":
                return _json(_scale(obj))
            return self._object_response(request, target.rt, obj)
        if method == "PUT":
            return await self._replace(request, target, target.name)
        if method == "PATCH":
            return await self._patch(request, target, target.name)
        if method == "DELETE":
            return await self._delete(request, target, target.name)
        raise ApiError(405, "the server does not allow this method on the requested resource")

    def _openapi(self, path: str, request: web.Request) -> web.Response:
        path = path.rstrip("/")
        accept = request.headers.get("Accept", "")
        if accept and not any(t in accept for t in ("application/json", "*/*")):
            # Only JSON here: client-go then does without the protobuf form it asked for.
            raise ApiError(406, f"only application/json is served here, not {accept}")
        if path == "/openapi/v2":
            body = openapi.v2_document()
        elif path == "/openapi/v3":
            index = openapi.v3_index()
            body = orjson.dumps(index) if index is not None else None
        else:
            body = (openapi.v3_documents() or {}).get(path.removeprefix("/openapi/v3/"))
        if body is None:
            raise ApiError(404, "the server could not find the requested resource")
        return web.Response(body=body, content_type=JSON)

    def _field_validation(self, request: web.Request, rt: ResourceType, obj: Any, patch: bool = False) -> None:
        """``fieldValidation``: Strict refuses unknown fields, Warn (the default) and Ignore drop them."""
        mode = request.query.get("fieldValidation") or "Warn"
        if mode not in ("Ignore", "Strict", "Warn"):
            raise ApiError(
                400, f'fieldValidation: Unsupported value: "{mode}": supported values: "Ignore", "Strict", "Warn"'
            )
        if not isinstance(obj, dict):
            return
        unknown = openapi.unknown_fields(rt, obj, drop=mode != "Strict")
        if unknown and mode == "Strict":
            detail = "strict decoding error: " + ", ".join(unknown)
            if not patch:
                detail = f'{rt.kind} in version "{rt.version}" cannot be handled as a {rt.kind}: {detail}'
            raise ApiError(400, detail)
        if mode == "Warn":
            for text in unknown:
                request[WARNINGS].add(text)

    def _discovery(self, path: str, request: web.Request) -> dict | None:
        path = path.rstrip("/") or "/"
        if path == "/version":
            return discovery.SERVER_VERSION
        if path in ("/healthz", "/livez", "/readyz"):
            return None
        if path == "/api":
            return discovery.core_versions(request.host)
        if path == "/apis":
            return discovery.group_list()
        segs = path.strip("/").split("/")
        if segs[0] == "api" and len(segs) == 2:
            doc = discovery.resource_list(segs[1])
            if doc is None:
                raise ApiError(404, "the server could not find the requested resource")
            return doc
        if segs[0] == "apis" and len(segs) == 2:
            doc = discovery.group(segs[1])
            if doc is None:
                raise ApiError(404, "the server could not find the requested resource")
            return doc
        if segs[0] == "apis" and len(segs) == 3:
            doc = discovery.resource_list(f"{segs[1]}/{segs[2]}")
            if doc is None:
                raise ApiError(404, "the server could not find the requested resource")
            return doc
        return None

    def _object_response(self, request: web.Request, rt: ResourceType, obj: dict, status: int = 200) -> web.Response:
        if wants_table(request.headers.get("Accept")):
            return _json(table(rt, [obj], {"resourceVersion": obj["metadata"].get("resourceVersion", "")}), status)
        return _json(obj, status)

    def _selectors(self, request: web.Request, rt: ResourceType):
        labels = parse_label_selector(request.query.get("labelSelector"))
        fields = parse_field_selector(request.query.get("fieldSelector"), rt.field_selectors, rt.kind, rt.api_version)
        return labels, fields

    def _list(self, request: web.Request, target: Target) -> web.Response:
        labels, fields = self._selectors(request, target.rt)
        result = self.store.list(
            target.rt,
            namespace=target.namespace,
            labels=labels,
            fields=fields,
            limit=_int(request, "limit"),
            continue_token=request.query.get("continue") or None,
            resource_version=request.query.get("resourceVersion"),
            resource_version_match=request.query.get("resourceVersionMatch") or None,
        )
        if wants_table(request.headers.get("Accept")):
            return _json(table(target.rt, result["items"], result["metadata"]))
        return _json(result)

    async def _watch(self, request: web.Request, target: Target) -> web.StreamResponse:
        rt = target.rt
        labels, fields = self._selectors(request, rt)
        if target.name is not None:  # watch/namespaces/ns/pods/name
            fields = fields + parse_field_selector(
                f"metadata.name={target.name}", rt.field_selectors, rt.kind, rt.api_version
            )
        bookmarks = _bool(request.query.get("allowWatchBookmarks"))
        initial_events = _bool(request.query.get("sendInitialEvents"))
        if initial_events and not (bookmarks and request.query.get("resourceVersionMatch") == "NotOlderThan"):
            raise ApiError(
                422,
                "sendInitialEvents: Forbidden: sendInitialEvents is forbidden for watch unless "
                "resourceVersionMatch is NotOlderThan and allowWatchBookmarks is true",
            )
        timeout = float(_int(request, "timeoutSeconds") or self.settings.watch_timeout)
        as_table = wants_table(request.headers.get("Accept"))
        loop = asyncio.get_running_loop()
        response = web.StreamResponse(status=200, headers={"Content-Type": JSON, "Cache-Control": "no-cache, private"})
        response.enable_chunked_encoding()
        try:
            watcher, initial = self.store.watch(
                rt, loop, target.namespace, labels, fields, request.query.get("resourceVersion"), initial_events
            )
        except ApiError as exc:
            # As the API server does for a watch: a 200 stream carrying one ERROR event.
            await response.prepare(request)
            await response.write(orjson.dumps({"type": "ERROR", "object": exc.status()}) + b"\n")
            await response.write_eof()
            return response

        def render(kind: str, obj: dict) -> bytes:
            if as_table:
                obj = table(rt, [obj], {"resourceVersion": obj["metadata"].get("resourceVersion", "")})
            return orjson.dumps({"type": kind, "object": obj}) + b"\n"

        def bookmark(rv: int, extra: dict | None = None) -> bytes:
            meta: dict[str, Any] = {"resourceVersion": str(rv)}
            if extra:
                meta["annotations"] = extra
            return (
                orjson.dumps(
                    {"type": "BOOKMARK", "object": {"kind": rt.kind, "apiVersion": rt.api_version, "metadata": meta}}
                )
                + b"\n"
            )

        try:
            await response.prepare(request)
            for kind, obj in initial:
                await response.write(render(kind, obj))
            last_rv = watcher.start_rv
            if initial_events:
                await response.write(bookmark(last_rv, {"k8s.io/initial-events-end": "true"}))
            deadline = time.monotonic() + timeout
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    item = await asyncio.wait_for(watcher.queue.get(), min(self.settings.bookmark_interval, remaining))
                except TimeoutError:
                    if bookmarks and time.monotonic() < deadline:
                        await response.write(bookmark(last_rv))
                    continue
                if item is CLOSE:
                    if watcher.abort and request.transport is not None:
                        request.transport.close()  # cut mid-stream, as a dying API server does
                        return response
                    break
                last_rv = max(last_rv, item.rv)
                translated = watcher.translate(item)
                if translated:
                    await response.write(render(*translated))
            await response.write_eof()
        except ConnectionResetError:  # the client went away (aiohttp's reset errors subclass it)
            return response
        finally:
            self.store.stop_watching(watcher)
        return response

    def _attributes(
        self, request: web.Request, rt: ResourceType, operation: str, namespace: str | None, name: str, **kw: Any
    ) -> Attributes:
        dry_run = kw.pop("dry_run")
        options_kind = {"CREATE": "CreateOptions", "UPDATE": "UpdateOptions", "DELETE": "DeleteOptions"}[operation]
        options: dict[str, Any] = {"kind": options_kind, "apiVersion": "meta.k8s.io/v1"}
        if dry_run:
            options["dryRun"] = ["All"]
        if request.query.get("fieldManager") and operation != "DELETE":
            options["fieldManager"] = request.query["fieldManager"]
        options.update(kw.pop("options", {}))
        if rt.kind == "Namespace":
            namespace = name  # as kube-apiserver's admission attributes carry it for a Namespace
        return Attributes(
            rt=rt,
            operation=operation,
            namespace=namespace or "",
            name=name,
            dry_run=dry_run,
            options=options,
            user=dict(self.settings.admission_user),
            **kw,
        )

    async def _create(self, request: web.Request, target: Target) -> web.Response:
        body = await _body(request)
        dry_run = _dry_run(request, "CreateOptions")
        if not isinstance(body, dict):
            raise ApiError(400, "the request body is not a JSON object")
        rt = target.rt
        obj = clone(body)
        self._field_validation(request, rt, obj)
        obj.setdefault("apiVersion", rt.api_version)
        obj.setdefault("kind", rt.kind)
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise ApiError(400, "metadata must be an object")
        ns = None
        if rt.namespaced:
            ns = meta.get("namespace") or target.namespace or "default"
            if target.namespace and meta.get("namespace") not in (None, target.namespace):
                raise ApiError(
                    400, "the namespace of the provided object does not match the namespace sent on the request"
                )
            meta["namespace"] = ns
            self.store.require_namespace(ns)
        attrs = self._attributes(
            request, rt, "CREATE", ns, str(meta.get("name") or ""), subresource="", obj=obj, old=None, dry_run=dry_run
        )
        warnings = request[WARNINGS]
        endpoints = self.settings.service_endpoints
        obj = await admission.mutate(self.store, attrs, endpoints, warnings)
        if obj is not None:
            openapi.unknown_fields(rt, obj, drop=True)  # decoding a webhook's patched JSON drops them
        prepared = self.store.create(obj or {}, namespace=ns, api_semantics=True, rt=rt, dry_run=True)
        attrs.obj, attrs.name = prepared, prepared["metadata"]["name"]
        await admission.validate(self.store, attrs, endpoints, warnings)
        if dry_run:
            return self._object_response(request, rt, prepared, 201)
        stored = self.store.create(prepared, namespace=ns, rt=rt)
        return self._object_response(request, rt, stored, 201)

    async def _admitted_update(
        self, request: web.Request, target: Target, name: str, old: dict, candidate: dict, dry_run: bool
    ) -> web.Response:
        """Admission of an update (PUT or PATCH) whose result would be ``candidate``, then the write."""
        rt, subresource = target.rt, target.subresource
        candidate = clone(candidate)
        attrs = self._attributes(
            request, rt, "UPDATE", target.namespace, name, subresource=subresource or "", obj=candidate, old=old,
            dry_run=dry_run,
        )  # fmt: skip
        warnings, endpoints = request[WARNINGS], self.settings.service_endpoints
        old_rv = old["metadata"]["resourceVersion"]
        mutated = await admission.mutate(self.store, attrs, endpoints, warnings)
        if mutated is not None:
            openapi.unknown_fields(rt, mutated, drop=True)
        if mutated != candidate and mutated is not None:
            mutated.setdefault("metadata", {})["resourceVersion"] = old_rv
            candidate = self.store.update(
                mutated, subresource=subresource, namespace=target.namespace, api_semantics=True, rt=rt, dry_run=True
            )
            attrs.obj = candidate
        await admission.validate(self.store, attrs, endpoints, warnings)
        if dry_run:
            return self._object_response(request, rt, candidate)
        candidate = clone(candidate)
        candidate["metadata"]["resourceVersion"] = old_rv
        stored = self.store.update(
            candidate, subresource=subresource, namespace=target.namespace, api_semantics=True, rt=rt
        )
        return self._object_response(request, rt, stored)

    async def _replace(self, request: web.Request, target: Target, name: str) -> web.Response:
        body = await _body(request)
        if not isinstance(body, dict):
            raise ApiError(400, "the request body is not a JSON object")
        dry_run = _dry_run(request, "UpdateOptions")
        if target.subresource == "scale":
            return await self._set_scale(request, target, name, body, dry_run)
        meta = body.setdefault("metadata", {})
        if meta.get("name") not in (None, name):
            raise ApiError(
                400, f"the name of the object ({meta.get('name')}) does not match the name on the URL ({name})"
            )
        meta["name"] = name
        self._field_validation(request, target.rt, body)
        old = self.store.get(target.rt, target.namespace, name)
        candidate = self.store.update(
            body,
            subresource=target.subresource,
            namespace=target.namespace,
            api_semantics=True,
            rt=target.rt,
            dry_run=True,
        )
        return await self._admitted_update(request, target, name, old, candidate, dry_run)

    async def _set_scale(
        self, request: web.Request, target: Target, name: str, scale: dict, dry_run: bool
    ) -> web.Response:
        """A write of the scale subresource: admitted as an UPDATE of an autoscaling/v1 Scale."""
        old = _scale(self.store.get(target.rt, target.namespace, name))
        attrs = self._attributes(
            request, target.rt, "UPDATE", target.namespace, name, subresource="scale", obj=scale, old=old,
            dry_run=dry_run, kind={"group": "autoscaling", "version": "v1", "kind": "Scale"},
        )  # fmt: skip
        warnings, endpoints = request[WARNINGS], self.settings.service_endpoints
        scale = await admission.mutate(self.store, attrs, endpoints, warnings) or scale
        attrs.obj = scale
        replicas = (scale.get("spec") or {}).get("replicas")
        if not isinstance(replicas, int) or replicas < 0:
            raise ApiError(
                422,
                f'Scale "{name}" is invalid: spec.replicas: Invalid value: {replicas!r}: '
                "must be greater than or equal to 0",
            )
        await admission.validate(self.store, attrs, endpoints, warnings)
        if dry_run:
            return _json(dict(old, spec={"replicas": replicas}))
        self.store.patch(
            target.rt, target.namespace, name, "application/merge-patch+json", {"spec": {"replicas": replicas}}
        )
        return _json(_scale(self.store.get(target.rt, target.namespace, name)))

    async def _patch(self, request: web.Request, target: Target, name: str) -> web.Response:
        raw = await request.read()
        ctype = request.headers.get("Content-Type", "")
        try:
            body = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError as exc:
            raise ApiError(400, f"the patch body is not valid JSON: {exc}") from None
        dry_run = _dry_run(request, "PatchOptions")
        if target.subresource == "scale":
            from .patch import apply_patch

            scale = apply_patch(ctype, _scale(self.store.get(target.rt, target.namespace, name)), body)
            return await self._set_scale(request, target, name, scale, dry_run)
        old = self.store.get(target.rt, target.namespace, name)
        candidate = clone(
            self.store.patch(
                target.rt, target.namespace, name, ctype, body, subresource=target.subresource, dry_run=True
            )
        )
        self._field_validation(request, target.rt, candidate, patch=True)
        return await self._admitted_update(request, target, name, old, candidate, dry_run)

    async def _delete(self, request: web.Request, target: Target, name: str) -> web.Response:
        body = await _body(request) or {}
        dry_run = _dry_run(request, "DeleteOptions")
        propagation = _propagation(request, body)
        obj = await self._admitted_delete(
            request, target.rt, target.namespace, name, propagation, body.get("preconditions"), dry_run
        )
        return self._object_response(request, target.rt, obj)

    async def _admitted_delete(
        self,
        request: web.Request,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        propagation: str,
        preconditions: dict | None,
        dry_run: bool,
    ) -> dict:
        """Admission of a delete (the webhooks see the stored object as oldObject), then the delete."""
        old = self.store.get(rt, namespace, name)
        attrs = self._attributes(
            request, rt, "DELETE", namespace, name, subresource="", obj=None, old=old, dry_run=dry_run,
            options={"propagationPolicy": propagation},
        )  # fmt: skip
        warnings, endpoints = request[WARNINGS], self.settings.service_endpoints
        await admission.mutate(self.store, attrs, endpoints, warnings)
        await admission.validate(self.store, attrs, endpoints, warnings)
        return self.store.delete(rt, namespace, name, propagation, preconditions, dry_run=dry_run)

    async def _delete_collection(self, request: web.Request, target: Target) -> web.Response:
        body = await _body(request) or {}
        dry_run = _dry_run(request, "DeleteOptions")
        propagation = _propagation(request, body)
        labels, fields = self._selectors(request, target.rt)
        listed = self.store.list(target.rt, namespace=target.namespace, labels=labels, fields=fields)
        gone = []
        for item in listed["items"]:
            meta = item["metadata"]
            try:
                gone.append(
                    await self._admitted_delete(
                        request, target.rt, meta.get("namespace"), meta["name"], propagation, None, dry_run
                    )
                )
            except ApiError as exc:
                if exc.code != 404:  # deleted by the garbage collector meanwhile
                    raise
        return _json(
            {
                "kind": target.rt.list_kind,
                "apiVersion": target.rt.api_version,
                "metadata": {"resourceVersion": str(self.store.resource_version)},
                "items": gone,
            }
        )


def _propagation(request: web.Request, body: dict) -> str:
    propagation = request.query.get("propagationPolicy") or body.get("propagationPolicy") or "Background"
    return "Orphan" if body.get("orphanDependents") is True else str(propagation)


def _dry_run(request: web.Request, options_kind: str) -> bool:
    """``dryRun=All`` (the one value the API accepts), in the API server's words otherwise."""
    values = request.query.getall("dryRun", [])
    if not values:
        return False
    if any(v != "All" for v in values):
        shown = ", ".join(f'"{v}"' for v in values)
        raise ApiError(
            422,
            f'{options_kind}.meta.k8s.io "" is invalid: dryRun: Unsupported value: []string{{{shown}}}: '
            'supported values: "All"',
        )
    return True
