"""The API server's storage: objects, one resourceVersion counter, event history, watchers.

It behaves like etcd behind the watch cache: every write takes the next
resourceVersion, the last ``history_size`` events are kept so a watch or a paginated
list can resume from an older resourceVersion, and anything older than the history is
``410 Gone``. It is thread-safe: tests write from their own thread while the HTTP
handlers run on the server's event loop.
"""

from __future__ import annotations

import asyncio
import base64
import builtins  # ApiStore.list shadows the builtin in its class body
import copy
import datetime as _dt
import random
import re
import threading
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import orjson

from . import errors
from .errors import ApiError
from .resources import BY_KIND, RESOURCE_TYPES, WEBHOOK_KINDS, ResourceType, resource_for
from .secrets import normalize_secret
from .selectors import FieldRequirement, Requirement, fields_match, labels_match
from .webhookconfig import normalize_webhook_configuration

_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\Z")
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?\Z")
_GENERATE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
# Kinds whose objects carry no metadata.generation (they have no spec the API server versions).
_NO_GENERATION = frozenset({"Pod", "Namespace", "Secret"})


def clone(obj: Any) -> Any:
    """A deep copy of a JSON document. Through orjson it is ~10x faster than ``copy.deepcopy``,
    which made loading 10,000 real pods take 20 s; documents with non-JSON values (YAML can
    yield integer keys) fall back to ``deepcopy``. YAML timestamps become RFC 3339 strings with
    a ``Z``, as the API server writes them."""
    try:
        return orjson.loads(orjson.dumps(obj, option=orjson.OPT_UTC_Z))
    except (orjson.JSONEncodeError, TypeError):
        return copy.deepcopy(obj)


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def object_key(rt: ResourceType, namespace: str | None, name: str) -> str:
    return f"{namespace}/{name}" if rt.namespaced else name


@dataclass(slots=True)
class StoreEvent:
    rv: int
    type: str  # ADDED, MODIFIED, DELETED
    resource: ResourceType
    key: str
    obj: dict
    prev: dict | None


_CLOSE = object()


@dataclass(eq=False)
class Watcher:
    """One watch stream's view: which objects it wants and the queue its handler drains."""

    resource: ResourceType
    namespace: str | None
    labels: list[Requirement]
    fields: list[FieldRequirement]
    loop: asyncio.AbstractEventLoop
    start_rv: int
    queue: asyncio.Queue = field(default_factory=asyncio.Queue)
    abort: bool = False
    stalled: bool = False  # a stalled stream stays open but receives nothing (a network partition)

    def offer(self, item: Any) -> None:
        try:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, item)
        except RuntimeError:  # the loop is closed: the stream is gone already
            pass

    def close(self, abort: bool) -> None:
        self.abort = abort
        self.offer(_CLOSE)

    def matches(self, obj: dict | None) -> bool:
        if obj is None:
            return False
        meta = obj.get("metadata") or {}
        if self.namespace is not None and meta.get("namespace") != self.namespace:
            return False
        return labels_match(self.labels, meta.get("labels")) and fields_match(self.fields, obj)

    def translate(self, event: StoreEvent) -> tuple[str, dict] | None:
        """The event this watcher's client sees, given its selectors (None: not for it)."""
        if event.resource is not self.resource:
            return None
        now, before = self.matches(event.obj), self.matches(event.prev)
        if event.type == "DELETED":
            return ("DELETED", event.obj) if before or now else None
        if now and before:
            return ("MODIFIED", event.obj)
        if now:
            return ("ADDED", event.obj)
        if before and event.prev is not None:
            # The object left the selection: the client sees it deleted, at this revision.
            gone = copy.copy(event.prev)
            gone["metadata"] = dict(gone.get("metadata") or {}, resourceVersion=str(event.rv))
            return ("DELETED", gone)
        return None


CLOSE = _CLOSE


def encode_continue(rv: int, start: str) -> str:
    raw = orjson.dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": start})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_continue(token: str) -> tuple[int, str]:
    try:
        padded = token + "=" * (-len(token) % 4)
        data = orjson.loads(base64.urlsafe_b64decode(padded))
        if data.get("v") != "meta.k8s.io/v1":
            raise ValueError("unknown version")
        return int(data["rv"]), str(data["start"])
    except Exception:
        raise ApiError(400, f'continue key is not valid: "{token}" is not a continue token of this server') from None


class ApiStore:
    def __init__(self, history_size: int = 1000) -> None:
        if history_size < 1:
            raise ValueError(f"history_size must be at least 1, got {history_size}")
        self._lock = threading.RLock()
        self._rv = 0
        self._objects: dict[ResourceType, dict[str, dict]] = {rt: {} for rt in RESOURCE_TYPES}
        self._history: deque[StoreEvent] = deque(maxlen=history_size)
        self._compacted = 0  # oldest resourceVersion a watch may start from
        self._watchers: set[Watcher] = set()
        for ns in DEFAULT_NAMESPACES:
            self.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})

    # ---- reading -------------------------------------------------------------------
    @property
    def resource_version(self) -> int:
        return self._rv

    @property
    def compacted_resource_version(self) -> int:
        return self._compacted

    def get(self, rt: ResourceType, namespace: str | None, name: str) -> dict:
        with self._lock:
            obj = self._objects[rt].get(object_key(rt, namespace, name))
        if obj is None:
            raise errors.not_found(rt.plural, name, rt.group)
        return obj

    def objects(self, rt: ResourceType) -> list[dict]:
        with self._lock:
            return list(self._objects[rt].values())

    def _state_at(self, rt: ResourceType, rv: int) -> dict[str, dict]:
        """The objects of ``rt`` as they were at ``rv``, rewound through the history."""
        if rv < self._compacted:
            raise ApiError(410, errors.CONTINUE_TOO_OLD, "Expired")
        state = dict(self._objects[rt])
        for ev in reversed(self._history):
            if ev.rv <= rv:
                break
            if ev.resource is not rt:
                continue
            if ev.type == "ADDED":
                state.pop(ev.key, None)
            else:
                state[ev.key] = ev.prev  # type: ignore[assignment]
        return state

    def list(
        self,
        rt: ResourceType,
        namespace: str | None = None,
        labels: list[Requirement] | None = None,
        fields: list[FieldRequirement] | None = None,
        limit: int = 0,
        continue_token: str | None = None,
        resource_version: str | None = None,
        resource_version_match: str | None = None,
    ) -> dict:
        labels, fields = labels or [], fields or []
        if continue_token and resource_version not in (None, ""):
            raise ApiError(400, "specifying resource version is not allowed when using continue")
        if resource_version_match and resource_version in (None, ""):
            raise ApiError(
                422,
                "resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided",
            )
        if resource_version_match not in (None, "", "Exact", "NotOlderThan"):
            raise ApiError(
                422,
                f'resourceVersionMatch: Unsupported value: "{resource_version_match}": '
                'supported values: "Exact", "NotOlderThan"',
            )
        requested = _parse_rv(resource_version) if resource_version not in (None, "") else None
        with self._lock:
            start = ""
            if continue_token:
                rv, start = decode_continue(continue_token)
                try:
                    state = self._state_at(rt, rv)
                except ApiError as exc:
                    exc.continue_token = encode_continue(self._rv, start)
                    raise
            elif resource_version_match == "Exact" and requested is not None:
                rv = requested
                if rv > self._rv:
                    raise ApiError(504, f"Too large resource version: {rv}, current: {self._rv}", "Timeout")
                try:
                    state = self._state_at(rt, rv)
                except ApiError:
                    raise errors.too_old_watch(rv, self._compacted) from None
            else:
                rv = self._rv
                state = self._objects[rt]
                if requested is not None and requested > self._rv:
                    raise ApiError(504, f"Too large resource version: {requested}, current: {self._rv}", "Timeout")
            keys = sorted(k for k in state if k >= start)
        prefix = f"{namespace}/" if (namespace is not None and rt.namespaced) else ""
        items: list[dict] = []
        next_token = None
        remaining = None
        filtered = bool(labels or fields)
        items_last_key = ""
        for i, key in enumerate(keys):
            if prefix and not key.startswith(prefix):
                continue
            obj = state[key]
            meta = obj.get("metadata") or {}
            if filtered and not (labels_match(labels, meta.get("labels")) and fields_match(fields, obj)):
                continue
            if limit and len(items) == limit:
                next_token = encode_continue(rv, items_last_key + "\x00")
                if not filtered:
                    remaining = sum(1 for k in keys[i:] if not prefix or k.startswith(prefix))
                break
            items.append(_list_item(obj))
            items_last_key = key
        list_meta: dict[str, Any] = {"resourceVersion": str(rv)}
        if next_token:
            list_meta["continue"] = next_token
            if remaining is not None:
                list_meta["remainingItemCount"] = remaining
        return {"kind": rt.list_kind, "apiVersion": rt.api_version, "metadata": list_meta, "items": items}

    # ---- watching ------------------------------------------------------------------
    def watch(
        self,
        rt: ResourceType,
        loop: asyncio.AbstractEventLoop,
        namespace: str | None = None,
        labels: builtins.list[Requirement] | None = None,
        fields: builtins.list[FieldRequirement] | None = None,
        resource_version: str | None = None,
        send_initial_events: bool = False,
    ) -> tuple[Watcher, builtins.list[tuple[str, dict]]]:
        """Register a watcher; returns it and the events to send before its queue's.

        Without a resourceVersion (or with "0"), or with sendInitialEvents, the client
        first gets an ADDED event for every object, as the Kubernetes API does.
        """
        with self._lock:
            if resource_version in (None, "", "0") or send_initial_events:
                start = self._rv
                w = Watcher(rt, namespace, labels or [], fields or [], loop, start)
                initial = [("ADDED", o) for _, o in sorted(self._objects[rt].items()) if w.matches(o)]
            else:
                start = _parse_rv(resource_version)
                if start < self._compacted:
                    raise errors.too_old_watch(start, self._compacted)
                w = Watcher(rt, namespace, labels or [], fields or [], loop, start)
                initial = []
                for ev in self._history:
                    if ev.rv > start:
                        t = w.translate(ev)
                        if t:
                            initial.append(t)
                w.start_rv = max(start, self._rv)
            self._watchers.add(w)
        return w, initial

    def stop_watching(self, watcher: Watcher) -> None:
        with self._lock:
            self._watchers.discard(watcher)

    def drop_watches(self, abort: bool = True) -> int:
        """End every open watch stream (a simulated API server restart); returns how many."""
        with self._lock:
            watchers = list(self._watchers)
            self._watchers.clear()
        for w in watchers:
            w.close(abort)
        return len(watchers)

    def stall_watches(self) -> int:
        """Stop delivering events to the open watch streams, which stay open until they time out.

        With ``compact()`` this is the "long disconnect": the client resumes from a
        resourceVersion the server no longer has and must get 410 Gone.
        """
        with self._lock:
            for w in self._watchers:
                w.stalled = True
            return len(self._watchers)

    def compact(self) -> int:
        """Forget the event history: any older resourceVersion is now 410 Gone."""
        with self._lock:
            self._history.clear()
            self._compacted = self._rv
            return self._compacted

    @property
    def watcher_count(self) -> int:
        with self._lock:
            return len(self._watchers)

    # ---- writing -------------------------------------------------------------------
    def _commit(self, rt: ResourceType, key: str, kind: str, obj: dict | None, prev: dict | None) -> dict:
        self._rv += 1
        rv = self._rv
        if obj is None:  # deletion: the last state, at the deletion's revision
            assert prev is not None
            obj = dict(prev)
            obj["metadata"] = dict(prev["metadata"], resourceVersion=str(rv))
            self._objects[rt].pop(key, None)
        else:
            obj["metadata"]["resourceVersion"] = str(rv)
            self._objects[rt][key] = obj
        if len(self._history) == self._history.maxlen:
            self._compacted = self._history[0].rv
        event = StoreEvent(rv, kind, rt, key, obj, prev)
        self._history.append(event)
        for w in self._watchers:
            if not w.stalled:
                w.offer(event)
        return obj

    def _resource_of(self, obj: dict) -> ResourceType:
        if not isinstance(obj, dict):
            raise ApiError(400, "the request body is not a JSON object")
        try:
            return resource_for(str(obj.get("apiVersion", "")), str(obj.get("kind", "")))
        except KeyError as exc:
            raise ApiError(400, str(exc.args[0])) from None

    def require_namespace(self, namespace: str) -> None:
        """The API server's answer to a write into a namespace that does not exist (before admission)."""
        _validate_namespace_name(namespace)
        nsrt = BY_KIND[("v1", "Namespace")]
        with self._lock:
            if namespace not in self._objects[nsrt]:
                raise errors.not_found("namespaces", namespace)

    def create(
        self,
        obj: dict,
        *,
        namespace: str | None = None,
        api_semantics: bool = False,
        rt: ResourceType | None = None,
        dry_run: bool = False,
    ) -> dict:
        """Store a new object.

        ``api_semantics`` applies what a POST to the real API server does: a fresh uid and
        creationTimestamp and a reset status. Without it (loading fixtures, tests) the
        object keeps its uid, timestamps and status, as if it had been in etcd.
        ``dry_run`` checks and prepares the object as for storing it, and returns it unstored
        (without a resourceVersion), as ``dryRun=All`` does.
        """
        rt = rt or self._resource_of(obj)
        obj = clone(obj)
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise ApiError(400, "metadata must be an object")
        obj.setdefault("apiVersion", rt.api_version)
        obj.setdefault("kind", rt.kind)
        if (obj["apiVersion"], obj["kind"]) != (rt.api_version, rt.kind):
            raise ApiError(
                400, f"the body's {obj['apiVersion']}/{obj['kind']} does not match the URL's {rt.api_version}/{rt.kind}"
            )
        if rt.namespaced:
            ns = meta.get("namespace") or namespace or "default"
            if namespace and meta.get("namespace") and meta["namespace"] != namespace:
                raise ApiError(
                    400, "the namespace of the provided object does not match the namespace sent on the request"
                )
            meta["namespace"] = ns
        else:
            meta.pop("namespace", None)
            ns = None
        with self._lock:
            if not meta.get("name") and meta.get("generateName"):
                for _ in range(100):
                    candidate = meta["generateName"] + "".join(random.choice(_GENERATE_ALPHABET) for _ in range(5))
                    if object_key(rt, ns, candidate) not in self._objects[rt]:
                        meta["name"] = candidate
                        break
            name = _validate_name(rt, meta.get("name"))
            if ns is not None:
                _validate_namespace_name(ns)
                if (
                    object_key(BY_KIND[("v1", "Namespace")], None, ns)
                    not in self._objects[BY_KIND[("v1", "Namespace")]]
                ):
                    raise errors.not_found("namespaces", ns)
            key = object_key(rt, ns, name)
            if key in self._objects[rt]:
                raise errors.already_exists(rt.plural, name, rt.group)
            if api_semantics or not meta.get("uid"):
                meta["uid"] = str(uuid.uuid4())
            if api_semantics or not meta.get("creationTimestamp"):
                meta["creationTimestamp"] = _now()
            if api_semantics:
                for transient in ("resourceVersion", "deletionTimestamp", "managedFields"):
                    meta.pop(transient, None)
                if rt.kind == "Pod":
                    obj["status"] = {"phase": "Pending", "qosClass": "BestEffort"}
                elif rt.kind == "Namespace":
                    obj["status"] = {"phase": "Active"}
                elif rt.has_status:
                    obj.pop("status", None)
            if rt.kind not in _NO_GENERATION:
                meta.setdefault("generation", 1)
            if rt.kind == "Namespace":
                obj.setdefault("spec", {"finalizers": ["kubernetes"]})
                obj.setdefault("status", {"phase": "Active"})
            _normalize(rt, obj, None)
            if dry_run:
                return obj
            return self._commit(rt, key, "ADDED", obj, None)

    def update(
        self,
        obj: dict,
        *,
        subresource: str | None = None,
        namespace: str | None = None,
        api_semantics: bool = False,
        rt: ResourceType | None = None,
        dry_run: bool = False,
    ) -> dict:
        """Replace an object (PUT). A stale metadata.resourceVersion is a 409 Conflict.

        With ``api_semantics`` the main resource keeps its stored status and ``/status``
        changes only the status, as on the real API server; ``/ephemeralcontainers`` changes
        only ``spec.ephemeralContainers``. ``dry_run`` returns the object as it would be stored.
        """
        rt = rt or self._resource_of(obj)
        obj = clone(obj)
        meta = obj.setdefault("metadata", {})
        obj.setdefault("apiVersion", rt.api_version)
        obj.setdefault("kind", rt.kind)
        ns = (meta.get("namespace") or namespace or "default") if rt.namespaced else None
        name = meta.get("name")
        _validate_name(rt, name)
        with self._lock:
            key = object_key(rt, ns, name)
            prev = self._objects[rt].get(key)
            if prev is None:
                raise errors.not_found(rt.plural, name, rt.group)
            want_rv = meta.get("resourceVersion")
            if want_rv not in (None, "") and want_rv != prev["metadata"]["resourceVersion"]:
                raise errors.conflict(rt.plural, name, rt.group)
            if meta.get("uid") and meta["uid"] != prev["metadata"]["uid"]:
                raise ApiError(
                    409,
                    f"Precondition failed: UID in precondition: {meta['uid']}, "
                    f"UID in object meta: {prev['metadata']['uid']}",
                    "Conflict",
                )
            if api_semantics and subresource == "ephemeralcontainers":
                containers = (obj.get("spec") or {}).get("ephemeralContainers")
                obj = clone(prev)
                if containers is None:
                    obj["spec"].pop("ephemeralContainers", None)
                else:
                    obj.setdefault("spec", {})["ephemeralContainers"] = containers
                meta = obj["metadata"]
            elif api_semantics and rt.has_status:
                if subresource == "status":
                    new_status = obj.get("status")
                    obj = clone(prev)
                    if new_status is None:
                        obj.pop("status", None)
                    else:
                        obj["status"] = new_status
                    meta = obj["metadata"]
                elif "status" in prev:
                    obj["status"] = clone(prev["status"])
                else:
                    obj.pop("status", None)
            for fixed in ("uid", "creationTimestamp", "namespace"):
                if fixed in prev["metadata"]:
                    meta[fixed] = prev["metadata"][fixed]
            if rt.kind not in _NO_GENERATION:
                gen = prev["metadata"].get("generation", 1)
                meta["generation"] = gen + 1 if obj.get("spec") != prev.get("spec") else gen
            _normalize(rt, obj, prev)
            if _same_content(obj, prev):
                return prev  # a no-op update does not take a new resourceVersion
            if dry_run:
                meta["resourceVersion"] = prev["metadata"]["resourceVersion"]
                return obj
            return self._commit(rt, key, "MODIFIED", obj, prev)

    def patch(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        content_type: str,
        body: Any,
        subresource: str | None = None,
        api_semantics: bool = True,
        dry_run: bool = False,
    ) -> dict:
        from .openapi import kind_schema
        from .patch import apply_patch

        with self._lock:
            current = self.get(rt, namespace, name)
            patched = apply_patch(content_type, current, body, kind_schema(rt))
            patched.setdefault("metadata", {})["resourceVersion"] = (
                (body.get("metadata") or {}).get("resourceVersion") if isinstance(body, dict) else None
            ) or current["metadata"]["resourceVersion"]
            patched["metadata"]["name"] = name
            if rt.namespaced:
                patched["metadata"]["namespace"] = namespace
            return self.update(
                patched,
                subresource=subresource,
                namespace=namespace,
                api_semantics=api_semantics,
                rt=rt,
                dry_run=dry_run,
            )

    def delete(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        propagation: str = "Background",
        preconditions: dict | None = None,
        dry_run: bool = False,
    ) -> dict:
        if propagation not in ("Background", "Foreground", "Orphan"):
            raise ApiError(
                422,
                f'propagationPolicy: Unsupported value: "{propagation}": '
                'supported values: "Background", "Foreground", "Orphan"',
            )
        with self._lock:
            key = object_key(rt, namespace, name)
            prev = self._objects[rt].get(key)
            if prev is None:
                raise errors.not_found(rt.plural, name, rt.group)
            if preconditions:
                if preconditions.get("uid") and preconditions["uid"] != prev["metadata"]["uid"]:
                    raise ApiError(
                        409,
                        f"Precondition failed: UID in precondition: {preconditions['uid']}, "
                        f"UID in object meta: {prev['metadata']['uid']}",
                        "Conflict",
                    )
                if (
                    preconditions.get("resourceVersion")
                    and preconditions["resourceVersion"] != prev["metadata"]["resourceVersion"]
                ):
                    raise errors.conflict(rt.plural, name, rt.group)
            if dry_run:
                return prev
            if rt.kind == "Namespace":
                for other in RESOURCE_TYPES:
                    if other.namespaced:
                        for k in [k for k in self._objects[other] if k.startswith(f"{name}/")]:
                            self._commit(other, k, "DELETED", None, self._objects[other][k])
            gone = self._commit(rt, key, "DELETED", None, prev)
            self._collect_dependents(prev, propagation)
            return gone

    def _collect_dependents(self, owner: dict, propagation: str) -> None:
        """The garbage collector's part: dependents of a deleted owner go too (or are orphaned)."""
        uid = owner["metadata"]["uid"]
        ns = owner["metadata"].get("namespace")
        for rt in RESOURCE_TYPES:
            for key, obj in list(self._objects[rt].items()):
                refs = obj["metadata"].get("ownerReferences") or []
                if not any(r.get("uid") == uid for r in refs):
                    continue
                if rt.namespaced and ns is not None and obj["metadata"].get("namespace") != ns:
                    continue
                if propagation == "Orphan":
                    new = clone(obj)
                    new["metadata"]["ownerReferences"] = [r for r in refs if r.get("uid") != uid]
                    if not new["metadata"]["ownerReferences"]:
                        del new["metadata"]["ownerReferences"]
                    self._commit(rt, key, "MODIFIED", new, obj)
                elif not any(r.get("uid") != uid and self._uid_exists(r.get("uid")) for r in refs):
                    gone = self._commit(rt, key, "DELETED", None, obj)
                    self._collect_dependents(gone, propagation)

    def _uid_exists(self, uid: str | None) -> bool:
        return any(o["metadata"].get("uid") == uid for objs in self._objects.values() for o in objs.values())

    # ---- convenience for tests and loaders ----------------------------------------
    def apply(self, obj: dict) -> dict:
        """Create, or replace whatever is stored under the same name (status included)."""
        rt = self._resource_of(obj)
        meta = obj.get("metadata") or {}
        ns = (meta.get("namespace") or "default") if rt.namespaced else None
        with self._lock:
            if ns is not None:
                self.ensure_namespace(ns)
            exists = object_key(rt, ns, meta.get("name", "")) in self._objects[rt]
            if not exists:
                return self.create(obj)
            fresh = clone(obj)
            fresh.setdefault("metadata", {}).pop("resourceVersion", None)
            return self.update(fresh, rt=rt)

    def ensure_namespace(self, name: str) -> None:
        nsrt = BY_KIND[("v1", "Namespace")]
        with self._lock:
            if name not in self._objects[nsrt]:
                self.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})

    def remove(
        self, api_version: str, kind: str, namespace: str | None, name: str, propagation: str = "Background"
    ) -> dict:
        rt = resource_for(api_version, kind)
        return self.delete(rt, namespace if rt.namespaced else None, name, propagation)

    def find(self, api_version: str, kind: str, namespace: str | None, name: str) -> dict:
        rt = resource_for(api_version, kind)
        return self.get(rt, namespace if rt.namespaced else None, name)


def _normalize(rt: ResourceType, obj: dict, prev: dict | None) -> None:
    """The per-kind part of every write: what the API server's strategies default and refuse."""
    if rt.kind == "Secret":
        normalize_secret(obj, prev)
    elif rt.kind == "Namespace":
        # Set by the API server on every write, so namespaceSelectors can select by name.
        labels = obj["metadata"].get("labels") or {}
        labels["kubernetes.io/metadata.name"] = obj["metadata"]["name"]
        obj["metadata"]["labels"] = labels
    elif rt.kind in WEBHOOK_KINDS:
        normalize_webhook_configuration(obj)


def _list_item(obj: dict) -> dict:
    # The API server leaves kind and apiVersion out of a typed list's items.
    return {k: v for k, v in obj.items() if k != "kind" and k != "apiVersion"}


def _same_content(a: dict, b: dict) -> bool:
    ma = {k: v for k, v in a["metadata"].items() if k != "resourceVersion"}
    mb = {k: v for k, v in b["metadata"].items() if k != "resourceVersion"}
    return ma == mb and {k: v for k, v in a.items() if k != "metadata"} == {
        k: v for k, v in b.items() if k != "metadata"
    }


def _parse_rv(value: str | None) -> int:
    try:
        rv = int(str(value))
        if rv < 0:
            raise ValueError
        return rv
    except ValueError:
        raise ApiError(400, f'resourceVersion: Invalid value: "{value}": must be a non-negative integer') from None


def _validate_name(rt: ResourceType, name: Any) -> str:
    """``name`` when it is a valid name for ``rt``; otherwise the API server's 422."""
    if not name or not isinstance(name, str):
        raise ApiError(422, f'{rt.kind} "" is invalid: metadata.name: Required value: name or generateName is required')
    pattern = _DNS_LABEL if rt.kind == "Namespace" else _DNS_SUBDOMAIN
    limit = 63 if rt.kind == "Namespace" else 253
    if rt.kind == "Node":  # node names come from providers as written
        pattern = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?\Z")
    if len(name) > limit or not pattern.match(name):
        raise ApiError(
            422,
            f'{rt.kind} "{name}" is invalid: metadata.name: Invalid value: "{name}": a lowercase RFC 1123 '
            f"{'label' if rt.kind == 'Namespace' else 'subdomain'} must consist of lower case alphanumeric characters, "
            "'-' or '.', and must start and end with an alphanumeric character",
        )
    return name


def _validate_namespace_name(ns: str) -> None:
    if not _DNS_LABEL.match(ns) or len(ns) > 63:
        raise ApiError(
            422,
            f'metadata.namespace: Invalid value: "{ns}": a lowercase RFC 1123 label must consist of '
            "lower case alphanumeric characters or '-'",
        )
