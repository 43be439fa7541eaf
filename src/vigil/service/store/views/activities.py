"""What containers did besides executing: file accesses on watched paths and kernel operations
(one row per container, kind and target), for the API and the console's process view."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection

from vigil.service.store.pagination import Sort, keyset_rows
from vigil.service.store.schema import pods, runtime_activities
from vigil.service.store.views.common import Page, iso, where_equal
from vigil.service.store.views.processes import inventory_refs, with_inventory

BY_ID = Sort(((runtime_activities.c.id, "int"),))

# The process view's sections: what the container wrote, read, and asked of the kernel.
SECTIONS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("written", "Files written", ("file_write", "file_rename", "file_chmod", "file_unlink")),
    ("read", "Watched files read", ("file_read",)),
    ("loaded", "Vulnerable package files loaded", ("package_load",)),
    (
        "kernel",
        "Kernel operations",
        ("ptrace", "setns", "unshare", "mount", "pivot_root", "bpf_load", "module_load", "memfd_create"),
    ),
)
KINDS: tuple[str, ...] = tuple(k for _, _, kinds in SECTIONS for k in kinds)


@dataclass(frozen=True)
class ActivityFilter:
    cluster_id: str | None = None
    node: str | None = None
    container_id: str | None = None
    pod_uid: str | None = None
    namespace: str | None = None
    workload_kind: str | None = None
    workload_name: str | None = None
    kinds: tuple[str, ...] = ()


def list_activities(conn: Connection, f: ActivityFilter, after: str | None, limit: int) -> Page:
    """Activities by id, each with the pod and workload of its container when the inventory knows it."""
    a = runtime_activities
    stmt = with_inventory(a)
    stmt = where_equal(
        stmt,
        (
            (a.c.cluster_id, f.cluster_id),
            (a.c.node_name, f.node),
            (a.c.container_id, f.container_id),
            (a.c.pod_uid, f.pod_uid),
            (pods.c.namespace, f.namespace),
            (pods.c.workload_kind, f.workload_kind),
            (pods.c.workload_name, f.workload_name),
        ),
    )
    if f.kinds:
        stmt = stmt.where(a.c.kind.in_(f.kinds))
    rows, nxt = keyset_rows(conn, stmt, BY_ID, after, limit)
    items = [
        {
            "id": r.id,
            "cluster_id": r.cluster_id,
            "node_name": r.node_name,
            "container_id": r.container_id or None,
            "pod_uid": r.pod_uid,
            "kind": r.kind,
            "target": r.target,
            "upper_layer": r.upper_layer,
            "detail": r.detail or {},
            "count": r.count,
            "first_seen_at": iso(r.first_seen_at),
            "last_seen_at": iso(r.last_seen_at),
            "samples": r.samples,
            **inventory_refs(r),
        }
        for r in rows
    ]
    return Page(items, nxt)
