"""Pods with their containers and security facts."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, select

from vigil.service.store.pagination import Sort, keyset_rows
from vigil.service.store.schema import containers, images, pods
from vigil.service.store.views.common import Page, iso, where_equal

BY_KEY = Sort(((pods.c.cluster_id, "str"), (pods.c.namespace, "str"), (pods.c.name, "str"), (pods.c.uid, "str")))


@dataclass(frozen=True)
class PodFilter:
    cluster_id: str | None = None
    namespace: str | None = None
    node: str | None = None
    workload_kind: str | None = None
    workload_name: str | None = None


def list_pods(conn: Connection, f: PodFilter, after: str | None, limit: int) -> Page:
    stmt = where_equal(
        select(pods),
        (
            (pods.c.cluster_id, f.cluster_id),
            (pods.c.namespace, f.namespace),
            (pods.c.node_name, f.node),
            (pods.c.workload_kind, f.workload_kind),
            (pods.c.workload_name, f.workload_name),
        ),
    )
    rows, nxt = keyset_rows(conn, stmt, BY_KEY, after, limit)
    by_pod: dict[tuple[str, str], list[dict]] = {}
    if rows:
        cq = (
            select(containers, images.c.registry, images.c.repository, images.c.tag, images.c.digest)
            .join(images, images.c.id == containers.c.image_pk)
            .where(
                containers.c.cluster_id.in_({r.cluster_id for r in rows}),
                containers.c.pod_uid.in_([r.uid for r in rows]),
            )
            .order_by(containers.c.pod_uid, containers.c.kind, containers.c.name)
        )
        for c in conn.execute(cq):
            by_pod.setdefault((c.cluster_id, c.pod_uid), []).append(
                {
                    "name": c.name,
                    "kind": c.kind,
                    "container_id": c.container_id,
                    "image": c.image,
                    "image_id": c.image_id,
                    "image_digest": c.image_digest,
                    "image_pk": c.image_pk,
                    "state": c.state,
                    "restart_count": c.restart_count,
                }
            )
    items = []
    for r in rows:
        items.append(
            {
                "cluster_id": r.cluster_id,
                "uid": r.uid,
                "namespace": r.namespace,
                "name": r.name,
                "node_name": r.node_name,
                "phase": r.phase,
                "service_account": r.service_account,
                "workload": {"kind": r.workload_kind, "name": r.workload_name},
                "labels": r.labels,
                "security": {
                    "privileged": r.privileged,
                    "host_pid": r.host_pid,
                    "host_network": r.host_network,
                    "host_ipc": r.host_ipc,
                    "run_as_non_root": r.run_as_non_root,
                    "run_as_user": r.run_as_user,
                    "added_capabilities": r.added_capabilities,
                },
                "containers": by_pod.get((r.cluster_id, r.uid), []),
                "updated_at": iso(r.updated_at),
            }
        )
    return Page(items, nxt)
