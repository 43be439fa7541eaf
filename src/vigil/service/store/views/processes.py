"""What executed: the API's runtime records (one per container, kind, sha256 and path) and the
console's executables grouped per image and workload."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, Select, Table, case, distinct, func, select

from vigil.service.store.pagination import Sort, keyset_rows
from vigil.service.store.schema import containers, executions, images, pods, sensors
from vigil.service.store.views.common import Page, cluster_names, image_ref, iso, where_equal

BY_ID = Sort(((executions.c.id, "int"),))


@dataclass(frozen=True)
class ProcessFilter:
    cluster_id: str | None = None
    node: str | None = None
    container_id: str | None = None
    pod_uid: str | None = None
    namespace: str | None = None
    workload: tuple[str, str, str, str] | None = None  # cluster id, namespace, kind, name
    image_pk: int | None = None
    kind: str | None = None
    text: str | None = None  # part of the path
    sha256: str | None = None
    running_only: bool = False


PROCESS_SORTS = ("last_seen", "path", "count")


def with_inventory(table: Table) -> Select:
    """``table``'s rows (executions, runtime activities: by cluster and container id) with the pod and
    container the inventory knows them in."""
    return select(
        table,
        pods.c.namespace,
        pods.c.name.label("pod_name"),
        pods.c.workload_kind,
        pods.c.workload_name,
        containers.c.name.label("container_name"),
        containers.c.image,
        containers.c.image_digest,
    ).select_from(
        table.outerjoin(
            containers,
            (containers.c.cluster_id == table.c.cluster_id)
            & (containers.c.container_id == table.c.container_id)
            & (table.c.container_id != ""),
        ).outerjoin(pods, (pods.c.cluster_id == containers.c.cluster_id) & (pods.c.uid == containers.c.pod_uid))
    )


def inventory_refs(r) -> dict:
    """The pod, workload and container of a ``with_inventory`` row (None where the inventory has none)."""
    return {
        "pod": {"namespace": r.namespace, "name": r.pod_name} if r.pod_name else None,
        "workload": {"kind": r.workload_kind, "name": r.workload_name} if r.workload_kind else None,
        "container": {"name": r.container_name, "image": r.image, "image_digest": r.image_digest}
        if r.container_name
        else None,
    }


def list_execution_records(conn: Connection, f: ProcessFilter, after: str | None, limit: int) -> Page:
    """Runtime records (one per container, kind, sha256 and path), each with the pod and workload it ran
    in when the inventory knows the container; by id."""
    stmt = with_inventory(executions)
    stmt = where_equal(
        stmt,
        (
            (executions.c.cluster_id, f.cluster_id),
            (executions.c.node_name, f.node),
            (executions.c.container_id, f.container_id),
            (executions.c.pod_uid, f.pod_uid),
            (executions.c.sha256, f.sha256),
            (executions.c.kind, f.kind),
        ),
    )
    rows, nxt = keyset_rows(conn, stmt, BY_ID, after, limit)
    items = [
        {
            "id": r.id,
            "cluster_id": r.cluster_id,
            "node_name": r.node_name,
            "container_id": r.container_id or None,
            "pod_uid": r.pod_uid,
            "kind": r.kind,
            "path": r.path,
            "sha256": r.sha256 or None,
            "count": r.count,
            "first_seen_at": iso(r.first_seen_at),
            "last_seen_at": iso(r.last_seen_at),
            "samples": r.samples,
            **inventory_refs(r),
        }
        for r in rows
    ]
    return Page(items, nxt)


def list_executables(
    conn: Connection, f: ProcessFilter, sort: str, descending: bool, after: str | None, limit: int
) -> Page:
    """Executables: executions grouped by (path, sha256) per image and workload, with first/last seen,
    a sample, whether a container of the group runs now (``running``) and the process ``state``
    (``exited`` once the inventory's containers of the group all stopped; else ``last_seen``, its last
    exec's time)."""
    e = executions.c
    namespace = func.coalesce(pods.c.namespace, "").label("namespace")
    wkind = func.coalesce(pods.c.workload_kind, "").label("workload_kind")
    wname = func.coalesce(pods.c.workload_name, "").label("workload_name")
    image_pk = func.coalesce(containers.c.image_pk, -1).label("image_pk")
    cond = []
    for col, value in (
        (e.cluster_id, f.cluster_id),
        (pods.c.namespace, f.namespace),
        (e.kind, f.kind),
        (e.sha256, f.sha256),
    ):
        if value:
            cond.append(col == value)
    if f.image_pk is not None:
        cond.append(containers.c.image_pk == f.image_pk)
    if f.workload:
        cid, ns, kind, name = f.workload
        cond += [
            e.cluster_id == cid,
            pods.c.namespace == ns,
            pods.c.workload_kind == kind,
            pods.c.workload_name == name,
        ]
    if f.text:
        cond.append(func.lower(e.path).contains(f.text.lower(), autoescape=True))
    running = func.max(case((containers.c.state == "running", 1), else_=0))
    grouped = (
        select(
            e.path,
            e.sha256,
            e.kind,
            e.cluster_id,
            namespace,
            wkind,
            wname,
            image_pk,
            func.min(e.first_seen_at).label("first_seen_at"),
            func.max(e.last_seen_at).label("last_seen_at"),
            func.sum(e.count).label("count"),
            func.max(e.id).label("sample_id"),
            func.count(distinct(e.container_id)).label("containers"),
            running.label("running"),
        )
        .select_from(
            executions.outerjoin(
                containers,
                (containers.c.cluster_id == e.cluster_id)
                & (containers.c.container_id == e.container_id)
                & (e.container_id != ""),
            ).outerjoin(pods, (pods.c.cluster_id == containers.c.cluster_id) & (pods.c.uid == containers.c.pod_uid))
        )
        .where(*cond)
        .group_by(e.path, e.sha256, e.kind, e.cluster_id, namespace, wkind, wname, image_pk)
    )
    if f.running_only:
        grouped = grouped.having(running == 1)
    g = grouped.subquery()
    identity = (
        (g.c.path, "str"),
        (g.c.sha256, "str"),
        (g.c.kind, "str"),
        (g.c.cluster_id, "str"),
        (g.c.namespace, "str"),
        (g.c.workload_kind, "str"),
        (g.c.workload_name, "str"),
        (g.c.image_pk, "int"),
    )
    keys = {
        "last_seen": ((g.c.last_seen_at, "ts"),) + identity,
        "path": identity,
        "count": ((g.c["count"], "int"),) + identity,
    }[sort]
    rows, nxt = keyset_rows(conn, select(g), Sort(keys, descending), after, limit)
    total = conn.execute(select(func.count()).select_from(g)).scalar_one()
    samples = {}
    if rows:
        samples = dict(conn.execute(select(e.id, e.samples).where(e.id.in_([r.sample_id for r in rows]))).all())
    refs = {}
    image_ids = [r.image_pk for r in rows if r.image_pk != -1]
    if image_ids:
        refs = {
            i.id: image_ref(i.registry, i.repository, i.tag, i.digest)
            for i in conn.execute(select(images).where(images.c.id.in_(image_ids)))
        }
    names = cluster_names(conn, {r.cluster_id for r in rows})
    items = []
    for r in rows:
        sample = (samples.get(r.sample_id) or [None])[0]
        items.append(
            {
                "path": r.path,
                "sha256": r.sha256 or None,
                "kind": r.kind,
                "cluster_id": r.cluster_id,
                "cluster_name": names.get(r.cluster_id),
                "namespace": r.namespace or None,
                "workload": {"kind": r.workload_kind, "name": r.workload_name} if r.workload_name else None,
                "image_pk": r.image_pk if r.image_pk != -1 else None,
                "image_ref": refs.get(r.image_pk),
                "first_seen_at": iso(r.first_seen_at),
                "last_seen_at": iso(r.last_seen_at),
                "count": int(r._mapping["count"]),
                "containers": r.containers,
                "running": bool(r.running),
                # Sensors report execs, not exits: a stopped container's processes have all exited; in a
                # running one (or on the host) only the last exec is known, so none is claimed to run still.
                "state": "exited" if r.image_pk != -1 and not r.running else "last_seen",
                "argv": sample.get("argv") if isinstance(sample, dict) else None,
            }
        )
    return Page(items, nxt, total)


def sensor_reach(conn: Connection, nodes: set[tuple[str, str]]) -> dict[str, list[str]]:
    """Of the (cluster id, node name) pairs: the nodes a sensor has reported from (a heartbeat, whatever
    its status since) and the nodes none ever has, each sorted by name."""
    pairs = sorted(n for n in nodes if n[1])
    heard: set[tuple[str, str]] = set()
    for cid in sorted({c for c, _ in pairs}):
        names = [n for c, n in pairs if c == cid]
        stmt = select(sensors.c.node_name).where(sensors.c.cluster_id == cid, sensors.c.node_name.in_(names))
        heard |= {(cid, n) for (n,) in conn.execute(stmt)}
    return {
        "reporting": sorted({n for c, n in pairs if (c, n) in heard}),
        "silent": sorted({n for c, n in pairs if (c, n) not in heard}),
    }


def image_nodes(conn: Connection, image_pk: int) -> set[tuple[str, str]]:
    """The (cluster id, node name) pairs whose pods have a container of this image."""
    stmt = (
        select(pods.c.cluster_id, pods.c.node_name)
        .join(containers, (containers.c.cluster_id == pods.c.cluster_id) & (containers.c.pod_uid == pods.c.uid))
        .where(containers.c.image_pk == image_pk, pods.c.node_name.is_not(None))
        .distinct()
    )
    return {(c, n) for c, n in conn.execute(stmt)}
