"""The controller's picture of the cluster, and what the service has been sent (pure).

Informers feed raw objects in; the state keeps the wire models that describe the
cluster now (nodes, pods, workloads), which keys changed since the last batch, and the
last acknowledged version of every item. A batch is the difference between the two,
so a lost or retried batch, a gap in a watch or a service outage all converge to the
exact cluster state: nothing is an event that could be lost, everything is state.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from vigil.wire.inventory import (
    InventoryDeletes,
    InventoryDelta,
    InventorySnapshot,
    Node,
    OwnerRef,
    Pod,
    SecurityFacts,
    Workload,
    WorkloadKey,
)

from .compact import compact
from .convert import ConversionError, describe, node_to_wire, pod_to_wire, string_map
from .kinds import OWNER_KINDS
from .owners import MAX_DEPTH, OwnerFacts, Resolution, controller_ref, resolve

log = logging.getLogger(__name__)

WKey = tuple[str, str, str]  # namespace, kind, name
_SHARED = (SecurityFacts,)  # pods' security summaries: a handful of distinct values in a cluster
Subject = tuple[str, ...]  # ("pod", uid) or ("owner", namespace, kind, name)


@dataclass
class Sent:
    nodes: dict[str, Node] = field(default_factory=dict)
    pods: dict[str, Pod] = field(default_factory=dict)
    workloads: dict[WKey, Workload] = field(default_factory=dict)


def _meta(obj: Mapping[str, Any]) -> dict[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, dict) else {}


class ClusterState:
    def __init__(self) -> None:
        self.nodes: dict[str, Node] = {}
        self.pods: dict[str, Pod] = {}
        self.workloads: dict[WKey, Workload] = {}
        self._pod_refs: dict[str, tuple[str, str, Any]] = {}  # uid -> namespace, name, controller ref
        self._owners: dict[str, dict[tuple[str, str], OwnerFacts]] = {}
        self._resolutions: dict[Subject, Resolution] = {}
        self._dependents: dict[WKey, set[Subject]] = {}
        self._members: dict[WKey, set[Subject]] = {}
        self._dirty_nodes: set[str] = set()
        self._dirty_pods: set[str] = set()
        self._dirty_workloads: set[WKey] = set()
        # kind -> keys (as the objects spell them) seen so far in the list being received
        self._listed: dict[str, set[Hashable]] = {}
        self.sent = Sent()
        self.snapshot_needed = True

    # ---- subjects and resolution ---------------------------------------------------
    @staticmethod
    def _subject_ns(sid: Subject) -> str:
        return sid[1] if sid[0] == "owner" else ""

    def _subject_origin(self, sid: Subject) -> tuple[str, str, str, Any]:
        if sid[0] == "pod":
            ns, name, ref = self._pod_refs[sid[1]]
            return ns, "Pod", name, ref
        _, ns, kind, name = sid
        return ns, kind, name, self._owners[ns][(kind, name)].controller

    def _resolve(self, sid: Subject) -> None:
        ns, kind, name, ref = self._subject_origin(sid)
        res = resolve(kind, name, ref, self._owners.get(ns, {}))
        old = self._resolutions.get(sid)
        if old == res:
            return
        self._forget_resolution(sid, ns, old)
        self._resolutions[sid] = res
        for dep in res.depends_on:
            self._dependents.setdefault((ns, *dep), set()).add(sid)
        wkey = (ns, res.top_kind, res.top_name)
        self._members.setdefault(wkey, set()).add(sid)
        self._dirty_workloads.add(wkey)
        if sid[0] == "pod" and sid[1] in self.pods:
            pod = self.pods[sid[1]]
            if (pod.workload.kind, pod.workload.name) != (res.top_kind, res.top_name):
                moved = pod.model_copy(update={"workload": OwnerRef(kind=res.top_kind, name=res.top_name)})
                self.pods[sid[1]] = compact(moved, _SHARED)
                self._dirty_pods.add(sid[1])

    def _forget_resolution(self, sid: Subject, ns: str, old: Resolution | None) -> None:
        if old is None:
            return
        for dep in old.depends_on:
            deps = self._dependents.get((ns, *dep))
            if deps is not None:
                deps.discard(sid)
                if not deps:
                    del self._dependents[(ns, *dep)]
        wkey = (ns, old.top_kind, old.top_name)
        members = self._members.get(wkey)
        if members is not None:
            members.discard(sid)
            if not members:
                del self._members[wkey]
        self._dirty_workloads.add(wkey)

    def _drop_subject(self, sid: Subject, ns: str) -> None:
        self._forget_resolution(sid, ns, self._resolutions.pop(sid, None))

    def _resolve_dependents(self, ns: str, kind: str, name: str) -> None:
        for sid in list(self._dependents.get((ns, kind, name), ())):
            if sid in self._resolutions:
                self._resolve(sid)

    # ---- nodes ---------------------------------------------------------------------
    def upsert_node(self, obj: Mapping[str, Any]) -> None:
        name = _meta(obj).get("name")
        try:
            node = node_to_wire(obj)
        except ConversionError as exc:
            log.warning("node skipped: %s", exc)
            if isinstance(name, str) and name in self.nodes:
                self.delete_node(obj)
            return
        if self.nodes.get(node.name) != node:
            self.nodes[node.name] = compact(node)
            self._dirty_nodes.add(node.name)

    def delete_node(self, obj: Mapping[str, Any]) -> None:
        name = _meta(obj).get("name")
        if isinstance(name, str) and self.nodes.pop(name, None) is not None:
            self._dirty_nodes.add(name)

    # ---- pods ----------------------------------------------------------------------
    def upsert_pod(self, obj: Mapping[str, Any]) -> None:
        meta = _meta(obj)
        uid, ns, name = meta.get("uid"), meta.get("namespace"), meta.get("name")
        if not (isinstance(uid, str) and uid and isinstance(ns, str) and ns and isinstance(name, str) and name):
            log.warning("pod skipped: it lacks metadata.uid, namespace or name: %s", describe(obj))
            return
        sid = ("pod", uid)
        self._pod_refs[uid] = (ns, name, controller_ref(meta))
        self._resolve(sid)
        res = self._resolutions[sid]
        try:
            pod = pod_to_wire(obj, res.top_kind, res.top_name)
        except ConversionError as exc:
            log.warning("pod skipped: %s", exc)
            self.delete_pod(obj)
            return
        if self.pods.get(uid) != pod:
            # Kept until the pod goes: the compact form (vigil.controller.compact) is a third of the size.
            self.pods[uid] = compact(pod, _SHARED)
            self._dirty_pods.add(uid)
            if res.top_kind == "Pod":
                self._dirty_workloads.add((ns, "Pod", name))  # a bare pod's labels are its workload's

    def delete_pod(self, obj: Mapping[str, Any]) -> None:
        uid = _meta(obj).get("uid")
        if not isinstance(uid, str) or uid not in self._pod_refs:
            return
        ns, _, _ = self._pod_refs.pop(uid)
        self._drop_subject(("pod", uid), ns)
        if self.pods.pop(uid, None) is not None:
            self._dirty_pods.add(uid)

    # ---- owners (ReplicaSets, Deployments, Jobs, ...) ------------------------------
    def upsert_owner(self, kind: str, obj: Mapping[str, Any]) -> None:
        meta = _meta(obj)
        ns, name = meta.get("namespace"), meta.get("name")
        if kind not in OWNER_KINDS or not (isinstance(ns, str) and ns and isinstance(name, str) and name):
            log.warning("%s skipped: it lacks metadata.namespace or name: %s", kind, describe(obj))
            return
        facts = OwnerFacts(kind, name, str(meta.get("uid") or ""), controller_ref(meta), string_map(meta.get("labels")))
        old = self._owners.get(ns, {}).get((kind, name))
        self._owners.setdefault(ns, {})[(kind, name)] = facts
        if old is None or old.uid != facts.uid or old.controller != facts.controller:
            self._resolve(("owner", ns, kind, name))
            self._resolve_dependents(ns, kind, name)
        if old is None or old.labels != facts.labels:
            self._dirty_workloads.add((ns, kind, name))

    def delete_owner(self, kind: str, obj: Mapping[str, Any]) -> None:
        meta = _meta(obj)
        ns, name = meta.get("namespace"), meta.get("name")
        if not isinstance(ns, str) or not isinstance(name, str):
            return
        owners = self._owners.get(ns)
        if not owners or (kind, name) not in owners:
            return
        del owners[(kind, name)]
        if not owners:
            del self._owners[ns]
        self._drop_subject(("owner", ns, kind, name), ns)
        self._resolve_dependents(ns, kind, name)

    # ---- relists -------------------------------------------------------------------
    # A list arrives page by page and each page is converted as it comes, so the raw JSON of
    # a 10,000-pod list (~50 MB parsed, several times that as Python objects) is never held
    # whole: begin_list, then add_listed per page, then finish_list drops what was not listed.
    def begin_list(self, kind: str) -> None:
        if kind not in ("Node", "Pod") and kind not in OWNER_KINDS:
            raise ValueError(f"kind {kind!r} is not one the controller watches")
        self._listed[kind] = set()
        self.snapshot_needed = True

    def add_listed(self, kind: str, objects: Iterable[Mapping[str, Any]]) -> None:
        seen = self._listed.setdefault(kind, set())
        if kind == "Node":
            for o in objects:
                seen.add(_meta(o).get("name"))
                self.upsert_node(o)
        elif kind == "Pod":
            for o in objects:
                seen.add(_meta(o).get("uid"))
                self.upsert_pod(o)
        elif kind in OWNER_KINDS:
            for o in objects:
                seen.add((_meta(o).get("namespace"), _meta(o).get("name")))
                self.upsert_owner(kind, o)
        else:
            raise ValueError(f"kind {kind!r} is not one the controller watches")

    def finish_list(self, kind: str) -> None:
        """The list is complete: whatever of ``kind`` it did not contain is gone."""
        keep = self._listed.pop(kind, set())
        if kind == "Node":
            for name in [n for n in self.nodes if n not in keep]:
                self.delete_node({"metadata": {"name": name}})
        elif kind == "Pod":
            for uid in [u for u in self._pod_refs if u not in keep]:
                self.delete_pod({"metadata": {"uid": uid}})
        else:
            stale = [
                (ns, name)
                for ns, owners in self._owners.items()
                for (k, name) in owners
                if k == kind and (ns, name) not in keep
            ]
            for ns, name in stale:
                self.delete_owner(kind, {"metadata": {"namespace": ns, "name": name}})
        self.snapshot_needed = True

    def replace(self, kind: str, objects: Iterable[Mapping[str, Any]]) -> None:
        """A fresh list of every ``kind`` object: whatever is not in it is gone."""
        self.begin_list(kind)
        self.add_listed(kind, objects)
        self.finish_list(kind)

    def apply_event(self, kind: str, event_type: str, obj: Mapping[str, Any]) -> None:
        deleting = event_type == "DELETED"
        if kind == "Node":
            (self.delete_node if deleting else self.upsert_node)(obj)
        elif kind == "Pod":
            (self.delete_pod if deleting else self.upsert_pod)(obj)
        elif kind in OWNER_KINDS:
            if deleting:
                self.delete_owner(kind, obj)
            else:
                self.upsert_owner(kind, obj)
        else:
            raise ValueError(f"kind {kind!r} is not one the controller watches")

    # ---- workloads -----------------------------------------------------------------
    def _workload(self, wkey: WKey) -> Workload | None:
        members = self._members.get(wkey)
        if not members:
            return None
        ns, kind, name = wkey
        ranked: dict[tuple[str, str], int] = {}
        for sid in members:
            res = self._resolutions[sid]
            chain = list(res.chain)
            if sid[0] == "owner" and (sid[2], sid[3]) != (kind, name):
                chain.insert(0, (sid[2], sid[3]))
            for i, link in enumerate(chain):
                depth = len(chain) - i  # distance below the workload
                ranked[link] = max(ranked.get(link, 0), depth)
        ordered = sorted(ranked, key=lambda link: (-ranked[link], link))
        if len(ordered) > MAX_DEPTH:
            log.warning(
                "workload %s/%s/%s: %d owners between it and its pods; the wire carries the %d nearest the pods",
                ns,
                kind,
                name,
                len(ordered),
                MAX_DEPTH,
            )
            ordered = ordered[:MAX_DEPTH]
        labels: dict[str, str] = {}
        owner = self._owners.get(ns, {}).get((kind, name))
        if owner is not None:
            labels = dict(owner.labels)
        elif kind == "Pod":
            for sid in members:
                if sid[0] == "pod" and sid[1] in self.pods and self.pods[sid[1]].name == name:
                    labels = dict(self.pods[sid[1]].labels)
        try:
            return Workload(
                namespace=ns,
                kind=kind,
                name=name,
                labels=labels,
                owner_chain=[OwnerRef(kind=k, name=n) for k, n in ordered],
            )
        except Exception as exc:  # a name or kind the wire refuses: say which
            log.warning("workload %s/%s/%s skipped: %s", ns, kind, name, exc)
            return None

    def _materialize_workloads(self) -> None:
        for wkey in self._dirty_workloads:
            w = self._workload(wkey)
            if w is None:
                self.workloads.pop(wkey, None)
            else:
                self.workloads[wkey] = w

    # ---- batches -------------------------------------------------------------------
    def build_snapshot(self, cluster_id: str, batch_id: str) -> InventorySnapshot:
        self._materialize_workloads()
        self._dirty_nodes.clear()
        self._dirty_pods.clear()
        self._dirty_workloads.clear()
        self.snapshot_needed = False
        known = {(w.namespace, w.kind, w.name) for w in self.workloads.values()}
        pods = []
        for p in self.pods.values():
            if (p.namespace, p.workload.kind, p.workload.name) in known:
                pods.append(p)
            else:  # only when the wire refused the workload's name or kind, logged above
                log.warning(
                    "pod %s/%s left out of the snapshot: its workload %s/%s is not reportable",
                    p.namespace,
                    p.name,
                    p.workload.kind,
                    p.workload.name,
                )
        return InventorySnapshot(
            kind="snapshot",
            batch_id=batch_id,
            cluster_id=cluster_id,
            nodes=sorted(self.nodes.values(), key=lambda n: n.name),
            workloads=sorted(self.workloads.values(), key=lambda w: (w.namespace, w.kind, w.name)),
            pods=sorted(pods, key=lambda p: (p.namespace, p.name, p.uid)),
        )

    def build_delta(self, cluster_id: str, batch_id: str) -> InventoryDelta | None:
        """The changes since the last acknowledged batch, or None when there are none."""
        self._materialize_workloads()
        sent = self.sent
        nodes = [
            self.nodes[n] for n in sorted(self._dirty_nodes) if n in self.nodes and sent.nodes.get(n) != self.nodes[n]
        ]
        gone_nodes = sorted(n for n in self._dirty_nodes if n not in self.nodes and n in sent.nodes)
        pods = [self.pods[u] for u in sorted(self._dirty_pods) if u in self.pods and sent.pods.get(u) != self.pods[u]]
        gone_pods = sorted(u for u in self._dirty_pods if u not in self.pods and u in sent.pods)
        workloads = [
            self.workloads[k]
            for k in sorted(self._dirty_workloads)
            if k in self.workloads and sent.workloads.get(k) != self.workloads[k]
        ]
        gone_workloads = [
            WorkloadKey(namespace=k[0], kind=k[1], name=k[2])
            for k in sorted(self._dirty_workloads)
            if k not in self.workloads and k in sent.workloads
        ]
        self._dirty_nodes.clear()
        self._dirty_pods.clear()
        self._dirty_workloads.clear()
        if not (nodes or gone_nodes or pods or gone_pods or workloads or gone_workloads):
            return None
        return InventoryDelta(
            kind="delta",
            batch_id=batch_id,
            cluster_id=cluster_id,
            nodes=nodes,
            workloads=workloads,
            pods=pods,
            deletes=InventoryDeletes(nodes=gone_nodes, workloads=gone_workloads, pods=gone_pods),
        )

    def acknowledge(self, batch: InventorySnapshot | InventoryDelta) -> None:
        """The service applied ``batch``: it now holds what the batch said."""
        sent = self.sent
        if batch.kind == "snapshot":
            sent.nodes = {n.name: n for n in batch.nodes}
            sent.pods = {p.uid: p for p in batch.pods}
            sent.workloads = {(w.namespace, w.kind, w.name): w for w in batch.workloads}
            return
        sent.nodes.update((n.name, n) for n in batch.nodes)
        sent.pods.update((p.uid, p) for p in batch.pods)
        sent.workloads.update(((w.namespace, w.kind, w.name), w) for w in batch.workloads)
        for n in batch.deletes.nodes:
            sent.nodes.pop(n, None)
        for u in batch.deletes.pods:
            sent.pods.pop(u, None)
        for k in batch.deletes.workloads:
            sent.workloads.pop((k.namespace, k.kind, k.name), None)

    def reject(self, batch: InventorySnapshot | InventoryDelta) -> None:
        """The service refused ``batch``: its items are sent again, in a snapshot."""
        self.snapshot_needed = True

    @property
    def has_changes(self) -> bool:
        return bool(self._dirty_nodes or self._dirty_pods or self._dirty_workloads)
