"""Read side of the store: listings with filters and key-based pagination, and the counts views need."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Connection, distinct, func, select

from vigil.model.findings import (
    FINDING_STATUSES,  # noqa: F401  (views read it from here)
    PACKAGE_TYPES,
    RATED_SEVERITIES,
    RUNTIME_TYPES,
    SEVERITIES,
    FindingStatus,
    FindingType,
    Severity,
)
from vigil.service.store.integrity import summaries as integrity_summaries
from vigil.service.store.pagination import page, split_page
from vigil.service.store.runtime import sensor_status
from vigil.service.store.schema import (
    clusters,
    containers,
    executions,
    finding_events,
    findings,
    images,
    nodes,
    pods,
    sensors,
    workloads,
)
from vigil.service.store.tokens import as_utc, utcnow
from vigil.service.store import risk as risk_store  # noqa: E402,I001
from vigil.service.store.schema import vulnerability_runtime  # noqa: E402,I001
# Console (web UI) reads below need these.
from datetime import date, datetime  # noqa: E402,I001
from sqlalchemy import and_, case, literal, or_, tuple_  # noqa: E402
from vigil.service.store.pagination import BadCursor, decode_cursor, encode_cursor  # noqa: E402
from vigil.service.store.schema import api_tokens  # noqa: E402
from vigil.service.store.tokens import USER_ROLES, Principal  # noqa: E402

MISSED_BEATS_FOR_STOPPED = 3


@dataclass(frozen=True)
class Page:
    items: list[dict]
    next: str | None


def controller_status(heartbeat_at, interval_s) -> str:
    if heartbeat_at is None:
        return "never_seen"
    deadline = as_utc(heartbeat_at) + timedelta(seconds=(interval_s or 15) * MISSED_BEATS_FOR_STOPPED)
    return "running" if utcnow() <= deadline else "stopped"


def _iso(value) -> str | None:
    value = as_utc(value)
    return value.isoformat() if value else None


def list_clusters(conn: Connection, after: str | None, limit: int) -> Page:
    stmt = page(select(clusters), [clusters.c.name, clusters.c.id], after, limit)
    rows, nxt = split_page(conn.execute(stmt).all(), lambda r: (r.name, r.id), limit)
    ids = [r.id for r in rows]
    node_counts = dict(
        conn.execute(select(nodes.c.cluster_id, func.count()).where(nodes.c.cluster_id.in_(ids)).group_by(nodes.c.cluster_id)).all()
    )
    pod_counts = dict(
        conn.execute(select(pods.c.cluster_id, func.count()).where(pods.c.cluster_id.in_(ids)).group_by(pods.c.cluster_id)).all()
    )
    items = [
        {
            "id": r.id,
            "name": r.name,
            "created_at": _iso(r.created_at),
            "last_seen_at": _iso(r.last_seen_at),
            "controller": {
                "status": controller_status(r.controller_heartbeat_at, r.controller_interval_s),
                "last_heartbeat_at": _iso(r.controller_heartbeat_at),
                "version": r.controller_version,
            },
            "nodes": node_counts.get(r.id, 0),
            "pods": pod_counts.get(r.id, 0),
        }
        for r in rows
    ]
    risks = risk_store.cluster_risk(conn, ids)
    for d in items:
        d["risk"] = risks[d["id"]]
    return Page(items, nxt)


def list_nodes(conn: Connection, cluster: str | None, after: str | None, limit: int) -> Page:
    stmt = select(nodes)
    if cluster:
        stmt = stmt.where(nodes.c.cluster_id == cluster)
    stmt = page(stmt, [nodes.c.cluster_id, nodes.c.name], after, limit)
    rows, nxt = split_page(conn.execute(stmt).all(), lambda r: (r.cluster_id, r.name), limit)
    beats = {}
    if rows:
        for b in conn.execute(
            select(sensors).where(sensors.c.cluster_id.in_({r.cluster_id for r in rows}), sensors.c.node_name.in_([r.name for r in rows]))
        ):
            beats[(b.cluster_id, b.node_name)] = b
    items = []
    for r in rows:
        d = r._asdict()
        d["updated_at"] = _iso(d["updated_at"])
        b = beats.get((r.cluster_id, r.name))
        d["sensor"] = {
            "status": sensor_status(r.sensor_disabled, b),
            "reported_status": b.status if b else None,
            "error": b.error if b else None,
            "version": b.version if b else None,
            "kernel": b.kernel if b else None,
            "btf": b.btf if b else None,
            "events_seen": b.events_seen if b else None,
            "events_lost": b.events_lost if b else None,
            "batches_spooled": b.batches_spooled if b else None,
            "batches_dropped": b.batches_dropped if b else None,
            "last_heartbeat_at": _iso(b.heartbeat_at) if b else None,
        }
        items.append(d)
    return Page(items, nxt)


def list_workloads(
    conn: Connection, cluster: str | None, namespace: str | None, kind: str | None, after: str | None, limit: int
) -> Page:
    stmt = select(workloads)
    if cluster:
        stmt = stmt.where(workloads.c.cluster_id == cluster)
    if namespace:
        stmt = stmt.where(workloads.c.namespace == namespace)
    if kind:
        stmt = stmt.where(workloads.c.kind == kind)
    key = [workloads.c.cluster_id, workloads.c.namespace, workloads.c.kind, workloads.c.name]
    rows, nxt = split_page(
        conn.execute(page(stmt, key, after, limit)).all(), lambda r: (r.cluster_id, r.namespace, r.kind, r.name), limit
    )
    counts: dict = {}
    if rows:
        cids = {r.cluster_id for r in rows}
        names = {r.name for r in rows}
        q = (
            select(pods.c.cluster_id, pods.c.namespace, pods.c.workload_kind, pods.c.workload_name, func.count())
            .where(pods.c.cluster_id.in_(cids), pods.c.workload_name.in_(names))
            .group_by(pods.c.cluster_id, pods.c.namespace, pods.c.workload_kind, pods.c.workload_name)
        )
        counts = {tuple(r[:4]): r[4] for r in conn.execute(q)}
    items = []
    for r in rows:
        d = r._asdict()
        d["updated_at"] = _iso(d["updated_at"])
        d["pods"] = counts.get((r.cluster_id, r.namespace, r.kind, r.name), 0)
        items.append(d)
    risks = risk_store.workload_risk(conn, [(d["cluster_id"], d["namespace"], d["kind"], d["name"]) for d in items])
    for d in items:
        d["risk"] = risks[(d["cluster_id"], d["namespace"], d["kind"], d["name"])]
    return Page(items, nxt)


def _image_dict(r) -> dict:
    ref = f"{r.registry}/{r.repository}" if r.registry else r.repository
    if r.tag:
        ref += f":{r.tag}"
    if r.digest:
        ref += f"@{r.digest}"
    return {
        "id": r.id,
        "ref": ref,
        "registry": r.registry,
        "repository": r.repository,
        "tag": r.tag or None,
        "digest": r.digest or None,
        "first_seen_at": _iso(r.first_seen_at),
    }


def list_pods(
    conn: Connection,
    cluster: str | None,
    namespace: str | None,
    node: str | None,
    workload_kind: str | None,
    workload_name: str | None,
    after: str | None,
    limit: int,
) -> Page:
    stmt = select(pods)
    for col, value in (
        (pods.c.cluster_id, cluster),
        (pods.c.namespace, namespace),
        (pods.c.node_name, node),
        (pods.c.workload_kind, workload_kind),
        (pods.c.workload_name, workload_name),
    ):
        if value:
            stmt = stmt.where(col == value)
    key = [pods.c.cluster_id, pods.c.namespace, pods.c.name, pods.c.uid]
    rows, nxt = split_page(
        conn.execute(page(stmt, key, after, limit)).all(), lambda r: (r.cluster_id, r.namespace, r.name, r.uid), limit
    )
    by_pod: dict[tuple[str, str], list[dict]] = {}
    if rows:
        cq = (
            select(containers, images.c.registry, images.c.repository, images.c.tag, images.c.digest)
            .join(images, images.c.id == containers.c.image_pk)
            .where(containers.c.cluster_id.in_({r.cluster_id for r in rows}), containers.c.pod_uid.in_([r.uid for r in rows]))
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
                "updated_at": _iso(r.updated_at),
            }
        )
    return Page(items, nxt)


def image_usage(conn: Connection, image_ids: list[int]) -> dict[int, dict[str, int]]:
    """Blast radius per image: running containers, distinct workloads and clusters."""
    if not image_ids:
        return {}
    joined = (
        select(
            containers.c.image_pk,
            containers.c.cluster_id,
            pods.c.namespace,
            pods.c.workload_kind,
            pods.c.workload_name,
        )
        .join(pods, (pods.c.cluster_id == containers.c.cluster_id) & (pods.c.uid == containers.c.pod_uid))
        .where(containers.c.image_pk.in_(image_ids))
    )
    per_workload = joined.distinct().subquery()
    usage: dict[int, dict[str, int]] = {i: {"containers": 0, "workloads": 0, "clusters": 0} for i in image_ids}
    for image_pk, n in conn.execute(
        select(containers.c.image_pk, func.count()).where(containers.c.image_pk.in_(image_ids)).group_by(containers.c.image_pk)
    ):
        usage[image_pk]["containers"] = n
    for image_pk, n in conn.execute(
        select(per_workload.c.image_pk, func.count()).group_by(per_workload.c.image_pk)
    ):
        usage[image_pk]["workloads"] = n
    for image_pk, n in conn.execute(
        select(containers.c.image_pk, func.count(distinct(containers.c.cluster_id)))
        .where(containers.c.image_pk.in_(image_ids))
        .group_by(containers.c.image_pk)
    ):
        usage[image_pk]["clusters"] = n
    return usage


def list_images(
    conn: Connection,
    cluster: str | None,
    registry: str | None,
    repository: str | None,
    running_only: bool,
    after: str | None,
    limit: int,
) -> Page:
    stmt = select(images)
    if registry:
        stmt = stmt.where(images.c.registry == registry)
    if repository:
        stmt = stmt.where(images.c.repository == repository)
    if cluster:
        stmt = stmt.where(
            images.c.id.in_(select(containers.c.image_pk).where(containers.c.cluster_id == cluster))
        )
    elif running_only:
        stmt = stmt.where(images.c.id.in_(select(containers.c.image_pk)))
    rows = conn.execute(page(stmt, [images.c.id], after, limit)).all()
    rows, nxt = split_page(rows, lambda r: (r.id,), limit)
    usage = image_usage(conn, [r.id for r in rows])
    verdicts = integrity_summaries(conn, [r.id for r in rows], cluster)
    items = []
    for r in rows:
        d = _image_dict(r)
        d["usage"] = usage[r.id]
        d["integrity"] = verdicts[r.id]
        items.append(d)
    risks = risk_store.image_risk(conn, [d["id"] for d in items], cluster)
    for d in items:
        d["risk"] = risks[d["id"]]
    return Page(items, nxt)


def _finding_dict(r) -> dict:
    return {
        "id": r.id,
        "type": r.type,
        "severity": r.severity,
        "subject": r.subject,
        "cluster_id": r.cluster_id,
        "namespace": r.namespace,
        "workload": {"kind": r.workload_kind, "name": r.workload_name} if r.workload_kind else None,
        "image_pk": r.image_pk,
        "evidence": r.evidence,
        "status": r.status,
        "status_reason": r.status_reason,
        "first_seen_at": _iso(r.first_seen_at),
        "last_seen_at": _iso(r.last_seen_at),
        "status_changed_at": _iso(r.status_changed_at),
    }


def list_findings(
    conn: Connection,
    cluster: str | None,
    namespace: str | None,
    severities: list[str],
    types: list[str],
    statuses: list[str],
    after: str | None,
    limit: int,
    since: datetime | None = None,
    runtime_states: list[str] | None = None,
) -> Page:
    stmt = select(findings)
    if since is not None:
        # changed since: any entry in its history (opened, severity, status) at or after `since`
        stmt = stmt.where(findings.c.id.in_(select(finding_events.c.finding_id).where(finding_events.c.at >= since)))
    if runtime_states:
        stmt = stmt.where(
            findings.c.id.in_(select(vulnerability_runtime.c.finding_id).where(vulnerability_runtime.c.state.in_(runtime_states)))
        )
    if cluster:
        stmt = stmt.where(findings.c.cluster_id == cluster)
    if namespace:
        stmt = stmt.where(findings.c.namespace == namespace)
    if severities:
        stmt = stmt.where(findings.c.severity.in_(severities))
    if types:
        stmt = stmt.where(findings.c.type.in_(types))
    if statuses:
        stmt = stmt.where(findings.c.status.in_(statuses))
    rows, nxt = split_page(conn.execute(page(stmt, [findings.c.id], after, limit)).all(), lambda r: (r.id,), limit)
    items = [_finding_dict(r) for r in rows]
    risk_store.attach_risk(conn, items)
    return Page(items, nxt)


def get_finding(conn: Connection, finding_id: int) -> dict | None:
    row = conn.execute(select(findings).where(findings.c.id == finding_id)).first()
    if row is None:
        return None
    d = _finding_dict(row)
    risk_store.attach_risk(conn, [d])
    d["history"] = [
        {
            "at": _iso(e.at),
            "from_status": e.from_status,
            "to_status": e.to_status,
            "severity": e.severity,
            "reason": e.reason,
            "actor": e.actor,
        }
        for e in conn.execute(
            select(finding_events).where(finding_events.c.finding_id == finding_id).order_by(finding_events.c.id)
        )
    ]
    return d


def finding_counts(conn: Connection, cluster: str | None = None) -> dict[str, dict[str, int]]:
    """Open findings by type and severity, for the overview."""
    stmt = select(findings.c.type, findings.c.severity, func.count()).where(findings.c.status == FindingStatus.OPEN)
    if cluster:
        stmt = stmt.where(findings.c.cluster_id == cluster)
    out: dict[str, dict[str, int]] = {}
    for t, s, n in conn.execute(stmt.group_by(findings.c.type, findings.c.severity)):
        out.setdefault(t, {})[s] = n
    return out


def list_executions(
    conn: Connection,
    cluster: str | None,
    node: str | None,
    container_id: str | None,
    pod_uid: str | None,
    sha256: str | None,
    kind: str | None,
    after: str | None,
    limit: int,
) -> Page:
    """Runtime records with the pod and workload they ran in, when the inventory knows the container."""
    stmt = select(
        executions,
        pods.c.namespace,
        pods.c.name.label("pod_name"),
        pods.c.workload_kind,
        pods.c.workload_name,
        containers.c.name.label("container_name"),
        containers.c.image,
        containers.c.image_digest,
    ).select_from(
        executions.outerjoin(
            containers,
            (containers.c.cluster_id == executions.c.cluster_id) & (containers.c.container_id == executions.c.container_id) & (executions.c.container_id != ""),
        ).outerjoin(pods, (pods.c.cluster_id == containers.c.cluster_id) & (pods.c.uid == containers.c.pod_uid))
    )
    for col, value in (
        (executions.c.cluster_id, cluster),
        (executions.c.node_name, node),
        (executions.c.container_id, container_id),
        (executions.c.pod_uid, pod_uid),
        (executions.c.sha256, sha256),
        (executions.c.kind, kind),
    ):
        if value:
            stmt = stmt.where(col == value)
    rows, nxt = split_page(conn.execute(page(stmt, [executions.c.id], after, limit)).all(), lambda r: (r.id,), limit)
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
            "first_seen_at": _iso(r.first_seen_at),
            "last_seen_at": _iso(r.last_seen_at),
            "samples": r.samples,
            "pod": {"namespace": r.namespace, "name": r.pod_name} if r.pod_name else None,
            "workload": {"kind": r.workload_kind, "name": r.workload_name} if r.workload_kind else None,
            "container": {"name": r.container_name, "image": r.image, "image_digest": r.image_digest} if r.container_name else None,
        }
        for r in rows
    ]
    return Page(items, nxt)


# --- Console (web UI) reads: sortable keyset pages with totals, filters, overview aggregates ---------
# Every page is ordered by a tuple of keys ending in a unique column, all in one direction, so a
# cursor (the last row's keys) resumes exactly where a page ended under any sort.

# Sorting ascending lists the most severe first; a string that is no severity sorts last.
SEVERITY_RANK = case({s.value: i for i, s in enumerate(SEVERITIES)}, value=findings.c.severity, else_=len(SEVERITIES))


@dataclass(frozen=True)
class Sort:
    """Key expressions with their cursor kind ("str", "int" or "ts"), the last one unique."""

    keys: tuple
    descending: bool = False


@dataclass(frozen=True)
class SortedPage:
    items: list[dict]
    next: str | None
    total: int


def _cursor_value(value, kind: str):
    return as_utc(value).isoformat() if kind == "ts" else value


def _bind_cursor_value(raw, kind: str, expr):
    wanted = {"ts": str, "str": str, "int": int}[kind]
    if not isinstance(raw, wanted) or isinstance(raw, bool):
        raise BadCursor(f"cursor value {raw!r} is not one this service issued for this sort")
    if kind == "ts":
        try:
            raw = datetime.fromisoformat(raw)
        except ValueError:
            raise BadCursor(f"cursor value {raw!r} is not a timestamp this service issued") from None
    return literal(raw, expr.type)


def keyset_rows(conn: Connection, stmt, sort: Sort, after: str | None, limit: int) -> tuple[list, str | None]:
    exprs = [e for e, _ in sort.keys]
    stmt = stmt.add_columns(*[e.label(f"_k{i}") for i, e in enumerate(exprs)])
    if after:
        raw = decode_cursor(after, len(exprs))
        values = [_bind_cursor_value(v, k, e) for v, (e, k) in zip(raw, sort.keys)]
        lhs, rhs = tuple_(*exprs), tuple_(*values)
        stmt = stmt.where(lhs < rhs if sort.descending else lhs > rhs)
    stmt = stmt.order_by(*[e.desc() if sort.descending else e.asc() for e in exprs]).limit(limit + 1)
    rows = conn.execute(stmt).all()
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    last = rows[-1]
    return rows, encode_cursor([_cursor_value(getattr(last, f"_k{i}"), k) for i, (_, k) in enumerate(sort.keys)])


def active_user(conn: Connection, token_id: str) -> Principal | None:
    """The user behind a token id if that token still admits a person (not revoked, not expired)."""
    row = conn.execute(select(api_tokens).where(api_tokens.c.id == token_id)).first()
    if row is None or row.role not in USER_ROLES or row.revoked_at is not None:
        return None
    expires_at = as_utc(row.expires_at)
    if expires_at is not None and expires_at <= utcnow():
        return None
    return Principal(row.id, row.name, row.role, row.cluster_id)


@dataclass(frozen=True)
class FindingFilter:
    types: tuple[str, ...] = ()
    severities: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    cluster_id: str | None = None
    namespace: str | None = None
    image_pk: int | None = None
    workload: tuple[str, str, str, str] | None = None  # cluster id, namespace, kind, name
    running_only: bool = False
    text: str | None = None


def _finding_conditions(f: FindingFilter) -> list:
    cond = []
    if f.types:
        cond.append(findings.c.type.in_(f.types))
    if f.severities:
        cond.append(findings.c.severity.in_(f.severities))
    if f.statuses:
        cond.append(findings.c.status.in_(f.statuses))
    if f.cluster_id:
        cond.append(findings.c.cluster_id == f.cluster_id)
    if f.namespace:
        cond.append(findings.c.namespace == f.namespace)
    if f.image_pk is not None:
        cond.append(findings.c.image_pk == f.image_pk)
    if f.workload:
        cid, ns, kind, name = f.workload
        cond += [
            findings.c.cluster_id == cid,
            findings.c.namespace == ns,
            findings.c.workload_kind == kind,
            findings.c.workload_name == name,
        ]
    if f.running_only:
        # Running: the finding is about execution, or a container of its image is running now.
        running_container = (
            select(containers.c.image_pk)
            .where(
                containers.c.image_pk == findings.c.image_pk,
                containers.c.state == "running",
                or_(findings.c.cluster_id.is_(None), containers.c.cluster_id == findings.c.cluster_id),
            )
            .exists()
        )
        cond.append(or_(findings.c.type.in_(RUNTIME_TYPES), running_container))
    if f.text:
        cond.append(func.lower(findings.c.subject).contains(f.text.lower(), autoescape=True))
    return cond


def finding_sort(name: str, descending: bool) -> Sort:
    keys = {
        "severity": ((SEVERITY_RANK, "int"), (findings.c.id, "int")),
        "last_seen": ((findings.c.last_seen_at, "ts"), (findings.c.id, "int")),
        "first_seen": ((findings.c.first_seen_at, "ts"), (findings.c.id, "int")),
        "type": ((findings.c.type, "str"), (findings.c.id, "int")),
        "id": ((findings.c.id, "int"),),
    }[name]
    return Sort(keys, descending)


FINDING_SORTS = ("severity", "last_seen", "first_seen", "type", "id")


def _image_ref(registry, repository, tag, digest) -> str | None:
    if repository is None:
        return None
    ref = f"{registry}/{repository}" if registry else repository
    if tag:
        ref += f":{tag}"
    if digest:
        ref += f"@{digest}"
    return ref


def console_findings(conn: Connection, f: FindingFilter, sort: Sort, after: str | None, limit: int) -> SortedPage:
    cond = _finding_conditions(f)
    stmt = (
        select(
            findings,
            clusters.c.name.label("cluster_name"),
            images.c.registry,
            images.c.repository,
            images.c.tag,
            images.c.digest.label("image_digest"),
        )
        .select_from(
            findings.outerjoin(clusters, clusters.c.id == findings.c.cluster_id).outerjoin(images, images.c.id == findings.c.image_pk)
        )
        .where(*cond)
    )
    rows, nxt = keyset_rows(conn, stmt, sort, after, limit)
    total = conn.execute(select(func.count()).select_from(findings).where(*cond)).scalar_one()
    items = []
    for r in rows:
        d = _finding_dict(r)
        d["cluster_name"] = r.cluster_name
        d["image_ref"] = _image_ref(r.registry, r.repository, r.tag, r.image_digest)
        items.append(d)
    return SortedPage(items, nxt, total)


def findings_marker(conn: Connection) -> tuple:
    """Changes whenever a finding is added, seen again or changes status: what live views poll."""
    return tuple(
        conn.execute(
            select(func.count(), func.max(findings.c.id), func.max(findings.c.last_seen_at), func.max(findings.c.status_changed_at))
        ).one()
    )


def _severity_sums():
    return [func.sum(case((findings.c.severity == s, 1), else_=0)).label(s.value) for s in RATED_SEVERITIES]


def top_risky_workloads(conn: Connection, limit: int = 5) -> list[dict]:
    """Workloads ranked by their open findings, most severe first (until risk scores exist)."""
    sums = _severity_sums()
    group = (findings.c.cluster_id, findings.c.namespace, findings.c.workload_kind, findings.c.workload_name)
    stmt = (
        select(*group, *sums, func.count().label("total"))
        .where(findings.c.status == FindingStatus.OPEN, findings.c.workload_name.is_not(None))
        .group_by(*group)
        .order_by(*[c.desc() for c in sums], func.count().desc(), *group)
        .limit(limit)
    )
    rows = conn.execute(stmt).all()
    names = _cluster_names(conn, {r.cluster_id for r in rows})
    return [
        {
            "cluster_id": r.cluster_id,
            "cluster_name": names.get(r.cluster_id),
            "namespace": r.namespace,
            "kind": r.workload_kind,
            "name": r.workload_name,
            "severities": {s.value: getattr(r, s) for s in RATED_SEVERITIES},
            "total": r.total,
        }
        for r in rows
    ]


def top_risky_images(conn: Connection, limit: int = 5) -> list[dict]:
    sums = _severity_sums()
    stmt = (
        select(findings.c.image_pk, images.c.registry, images.c.repository, images.c.tag, images.c.digest, *sums, func.count().label("total"))
        .join(images, images.c.id == findings.c.image_pk)
        .where(findings.c.status == FindingStatus.OPEN)
        .group_by(findings.c.image_pk, images.c.registry, images.c.repository, images.c.tag, images.c.digest)
        .order_by(*[c.desc() for c in sums], func.count().desc(), findings.c.image_pk)
        .limit(limit)
    )
    rows = conn.execute(stmt).all()
    usage = image_usage(conn, [r.image_pk for r in rows])
    return [
        {
            "id": r.image_pk,
            "ref": _image_ref(r.registry, r.repository, r.tag, r.digest),
            "severities": {s.value: getattr(r, s) for s in RATED_SEVERITIES},
            "total": r.total,
            "usage": usage[r.image_pk],
        }
        for r in rows
    ]


def _cluster_names(conn: Connection, ids) -> dict[str, str]:
    ids = [i for i in ids if i]
    if not ids:
        return {}
    return dict(conn.execute(select(clusters.c.id, clusters.c.name).where(clusters.c.id.in_(ids))).all())


def open_findings_series(conn: Connection, days: int = 14, today: date | None = None) -> list[tuple[date, int]]:
    """Open findings at the end of each of the last ``days`` days (UTC), from the findings' history."""
    ev = finding_events.c
    delta = case(
        (
            and_(ev.to_status == FindingStatus.OPEN, or_(ev.from_status.is_(None), ev.from_status != FindingStatus.OPEN)),
            1,
        ),
        (and_(ev.from_status == FindingStatus.OPEN, ev.to_status != FindingStatus.OPEN), -1),
        else_=0,
    )
    if conn.dialect.name == "postgresql":
        day = func.to_char(func.timezone("UTC", ev.at), "YYYY-MM-DD")
    else:
        day = func.strftime("%Y-%m-%d", ev.at)
    per_day = {d: int(n or 0) for d, n in conn.execute(select(day.label("d"), func.sum(delta)).group_by(day))}
    today = today or utcnow().date()
    start = today - timedelta(days=days - 1)
    running = sum(n for d, n in per_day.items() if date.fromisoformat(d) < start)
    out = []
    for i in range(days):
        d = start + timedelta(days=i)
        running += per_day.get(d.isoformat(), 0)
        out.append((d, running))
    return out


def sensor_summary(conn: Connection, cluster_ids: list[str]) -> dict[str, dict[str, int]]:
    """Per cluster, how many nodes are in each monitoring status."""
    out: dict[str, dict[str, int]] = {cid: {} for cid in cluster_ids}
    if not cluster_ids:
        return out
    beats = {(b.cluster_id, b.node_name): b for b in conn.execute(select(sensors).where(sensors.c.cluster_id.in_(cluster_ids)))}
    now = utcnow()
    for cid, name, disabled in conn.execute(
        select(nodes.c.cluster_id, nodes.c.name, nodes.c.sensor_disabled).where(nodes.c.cluster_id.in_(cluster_ids))
    ):
        status = sensor_status(disabled, beats.get((cid, name)), now)
        out[cid][status] = out[cid].get(status, 0) + 1
    return out


def cluster_nodes(
    conn: Connection, cluster_id: str, status: str | None, text: str | None, after: str | None, limit: int
) -> SortedPage:
    """A cluster's nodes with their monitoring status, by name; the status filter is computed, so it runs here."""
    beats = {b.node_name: b for b in conn.execute(select(sensors).where(sensors.c.cluster_id == cluster_id))}
    now = utcnow()
    stmt = select(nodes).where(nodes.c.cluster_id == cluster_id)
    if text:
        stmt = stmt.where(func.lower(nodes.c.name).contains(text.lower(), autoescape=True))
    matched = []
    for r in conn.execute(stmt.order_by(nodes.c.name)):
        b = beats.get(r.name)
        s = sensor_status(r.sensor_disabled, b, now)
        if status and s != status:
            continue
        matched.append((r, b, s))
    start = 0
    if after:
        (last_name,) = decode_cursor(after, 1)
        start = next((i for i, (r, _, _) in enumerate(matched) if r.name > last_name), len(matched))
    chunk = matched[start : start + limit]
    nxt = encode_cursor([chunk[-1][0].name]) if start + limit < len(matched) and chunk else None
    items = []
    for r, b, s in chunk:
        items.append(
            {
                "name": r.name,
                "labels": r.labels,
                "kubelet_version": r.kubelet_version,
                "kernel_version": r.kernel_version,
                "os_image": r.os_image,
                "container_runtime": r.container_runtime,
                "architecture": r.architecture,
                "ready": next((c.get("status") for c in (r.conditions or []) if isinstance(c, dict) and c.get("type") == "Ready"), None)
                if isinstance(r.conditions, list)
                else (r.conditions or {}).get("Ready"),
                "sensor": {
                    "status": s,
                    "reported_status": b.status if b else None,
                    "error": b.error if b else None,
                    "version": b.version if b else None,
                    "events_seen": b.events_seen if b else None,
                    "events_lost": b.events_lost if b else None,
                    "last_heartbeat_at": _iso(b.heartbeat_at) if b else None,
                },
            }
        )
    return SortedPage(items, nxt, len(matched))


@dataclass(frozen=True)
class ImageFilter:
    registry: str | None = None
    text: str | None = None
    cluster_id: str | None = None
    running_only: bool = False
    finding_types: tuple[str, ...] = ()


IMAGE_SORTS = ("ref", "first_seen", "findings", "workloads")


def console_images(conn: Connection, f: ImageFilter, sort: str, descending: bool, after: str | None, limit: int) -> SortedPage:
    open_counts = (
        select(findings.c.image_pk, func.count().label("n"))
        .where(findings.c.status == FindingStatus.OPEN, findings.c.image_pk.is_not(None))
        .group_by(findings.c.image_pk)
        .subquery()
    )
    per_workload = (
        select(containers.c.image_pk, containers.c.cluster_id, pods.c.namespace, pods.c.workload_kind, pods.c.workload_name)
        .join(pods, (pods.c.cluster_id == containers.c.cluster_id) & (pods.c.uid == containers.c.pod_uid))
        .distinct()
        .subquery()
    )
    blast = select(per_workload.c.image_pk, func.count().label("n")).group_by(per_workload.c.image_pk).subquery()
    n_findings = func.coalesce(open_counts.c.n, 0)
    n_workloads = func.coalesce(blast.c.n, 0)
    keys = {
        "ref": (
            (images.c.registry, "str"),
            (images.c.repository, "str"),
            (images.c.tag, "str"),
            (images.c.digest, "str"),
            (images.c.id, "int"),
        ),
        "first_seen": ((images.c.first_seen_at, "ts"), (images.c.id, "int")),
        "findings": ((n_findings, "int"), (images.c.id, "int")),
        "workloads": ((n_workloads, "int"), (images.c.id, "int")),
    }[sort]
    cond = []
    if f.registry:
        cond.append(images.c.registry == f.registry)
    if f.text:
        t = f.text.lower()
        cond.append(or_(func.lower(images.c.repository).contains(t, autoescape=True), func.lower(images.c.tag).contains(t, autoescape=True), images.c.digest.contains(t, autoescape=True)))
    if f.cluster_id:
        cond.append(images.c.id.in_(select(containers.c.image_pk).where(containers.c.cluster_id == f.cluster_id)))
    if f.running_only:
        cond.append(images.c.id.in_(select(containers.c.image_pk).where(containers.c.state == "running")))
    if f.finding_types:
        cond.append(
            images.c.id.in_(
                select(findings.c.image_pk).where(
                    findings.c.status == FindingStatus.OPEN, findings.c.type.in_(f.finding_types)
                )
            )
        )
    # Aggregate over every image only when the order needs it; otherwise count for the page alone.
    source = images
    if sort == "findings":
        source = source.outerjoin(open_counts, open_counts.c.image_pk == images.c.id)
    if sort == "workloads":
        source = source.outerjoin(blast, blast.c.image_pk == images.c.id)
    stmt = select(images).select_from(source).where(*cond)
    rows, nxt = keyset_rows(conn, stmt, Sort(keys, descending), after, limit)
    total = conn.execute(select(func.count()).select_from(images).where(*cond)).scalar_one()
    ids = [r.id for r in rows]
    usage = image_usage(conn, ids)
    by_image = image_finding_summary(conn, ids)
    items = []
    for r in rows:
        d = _image_dict(r)
        d["extra"] = {k: v for k, v in r._mapping.items() if k not in _IMAGE_BASE_COLUMNS and not k.startswith("_k")}
        d["usage"] = usage[r.id]
        d.update(by_image.get(r.id, _empty_image_summary()))
        d["open_findings"] = d.pop("open_total", 0)
        items.append(d)
    return SortedPage(items, nxt, total)


_IMAGE_BASE_COLUMNS = {"id", "registry", "repository", "tag", "digest", "first_seen_at"}


def _empty_image_summary() -> dict:
    vulnerabilities = {s.value: 0 for s in RATED_SEVERITIES}
    return {"vulnerabilities": vulnerabilities, "running_vulnerabilities": 0, "open_types": [], "open_total": 0}


def image_finding_summary(conn: Connection, image_ids: list[int]) -> dict[int, dict]:
    """Per image: open vulnerability counts by severity, running vulnerabilities, and the open finding types."""
    out: dict[int, dict] = {}
    if not image_ids:
        return out
    for pk, t, s, n in conn.execute(
        select(findings.c.image_pk, findings.c.type, findings.c.severity, func.count())
        .where(findings.c.image_pk.in_(image_ids), findings.c.status == FindingStatus.OPEN)
        .group_by(findings.c.image_pk, findings.c.type, findings.c.severity)
    ):
        d = out.setdefault(pk, _empty_image_summary())
        d["open_total"] += n
        if t in PACKAGE_TYPES and s in d["vulnerabilities"]:
            d["vulnerabilities"][s] += n
        if t == FindingType.RUNNING_VULNERABILITY:
            d["running_vulnerabilities"] += n
        if t not in d["open_types"]:
            d["open_types"].append(t)
    return out


def image_detail(conn: Connection, image_pk: int) -> dict | None:
    row = conn.execute(select(images).where(images.c.id == image_pk)).first()
    if row is None:
        return None
    d = _image_dict(row)
    d["extra"] = {k: v for k, v in row._mapping.items() if k not in _IMAGE_BASE_COLUMNS}
    d["usage"] = image_usage(conn, [image_pk])[image_pk]
    d.update(image_finding_summary(conn, [image_pk]).get(image_pk, _empty_image_summary()))
    running = func.sum(case((containers.c.state == "running", 1), else_=0))
    d["workloads"] = [
        {"cluster_id": r.cluster_id, "cluster_name": r.cluster_name, "namespace": r.namespace, "kind": r.workload_kind, "name": r.workload_name, "containers": r.n, "running": r.running}
        for r in conn.execute(
            select(
                containers.c.cluster_id,
                clusters.c.name.label("cluster_name"),
                pods.c.namespace,
                pods.c.workload_kind,
                pods.c.workload_name,
                func.count().label("n"),
                running.label("running"),
            )
            .join(pods, (pods.c.cluster_id == containers.c.cluster_id) & (pods.c.uid == containers.c.pod_uid))
            .join(clusters, clusters.c.id == containers.c.cluster_id)
            .where(containers.c.image_pk == image_pk)
            .group_by(containers.c.cluster_id, clusters.c.name, pods.c.namespace, pods.c.workload_kind, pods.c.workload_name)
            .order_by(clusters.c.name, pods.c.namespace, pods.c.workload_kind, pods.c.workload_name)
            .limit(500)
        )
    ]
    return d


@dataclass(frozen=True)
class WorkloadFilter:
    cluster_id: str | None = None
    namespace: str | None = None
    kind: str | None = None
    text: str | None = None


WORKLOAD_SORTS = ("name", "findings", "pods")


def console_workloads(conn: Connection, f: WorkloadFilter, sort: str, descending: bool, after: str | None, limit: int) -> SortedPage:
    w = workloads.c
    fc = (
        select(findings.c.cluster_id, findings.c.namespace, findings.c.workload_kind, findings.c.workload_name, func.count().label("n"))
        .where(findings.c.status == FindingStatus.OPEN, findings.c.workload_name.is_not(None))
        .group_by(findings.c.cluster_id, findings.c.namespace, findings.c.workload_kind, findings.c.workload_name)
        .subquery()
    )
    pc = (
        select(pods.c.cluster_id, pods.c.namespace, pods.c.workload_kind, pods.c.workload_name, func.count().label("n"))
        .group_by(pods.c.cluster_id, pods.c.namespace, pods.c.workload_kind, pods.c.workload_name)
        .subquery()
    )
    n_findings, n_pods = func.coalesce(fc.c.n, 0), func.coalesce(pc.c.n, 0)
    name_key = ((w.cluster_id, "str"), (w.namespace, "str"), (w.kind, "str"), (w.name, "str"))
    keys = {"name": name_key, "findings": ((n_findings, "int"),) + name_key, "pods": ((n_pods, "int"),) + name_key}[sort]
    cond = []
    if f.cluster_id:
        cond.append(w.cluster_id == f.cluster_id)
    if f.namespace:
        cond.append(w.namespace == f.namespace)
    if f.kind:
        cond.append(w.kind == f.kind)
    if f.text:
        cond.append(func.lower(w.name).contains(f.text.lower(), autoescape=True))
    stmt = (
        select(workloads, clusters.c.name.label("cluster_name"), n_findings.label("open_findings"), n_pods.label("pods"))
        .select_from(
            workloads.join(clusters, clusters.c.id == w.cluster_id)
            .outerjoin(fc, and_(fc.c.cluster_id == w.cluster_id, fc.c.namespace == w.namespace, fc.c.workload_kind == w.kind, fc.c.workload_name == w.name))
            .outerjoin(pc, and_(pc.c.cluster_id == w.cluster_id, pc.c.namespace == w.namespace, pc.c.workload_kind == w.kind, pc.c.workload_name == w.name))
        )
        .where(*cond)
    )
    rows, nxt = keyset_rows(conn, stmt, Sort(keys, descending), after, limit)
    total = conn.execute(select(func.count()).select_from(workloads).where(*cond)).scalar_one()
    sev: dict[tuple, dict[str, int]] = {}
    ctr: dict[tuple, int] = {}
    if rows:
        cids, names = {r.cluster_id for r in rows}, {r.name for r in rows}
        for cid, ns, kind, name, s, n in conn.execute(
            select(findings.c.cluster_id, findings.c.namespace, findings.c.workload_kind, findings.c.workload_name, findings.c.severity, func.count())
            .where(
                findings.c.status == FindingStatus.OPEN, findings.c.cluster_id.in_(cids), findings.c.workload_name.in_(names)
            )
            .group_by(findings.c.cluster_id, findings.c.namespace, findings.c.workload_kind, findings.c.workload_name, findings.c.severity)
        ):
            sev.setdefault((cid, ns, kind, name), {})[s] = n
        for cid, ns, kind, name, n in conn.execute(
            select(pods.c.cluster_id, pods.c.namespace, pods.c.workload_kind, pods.c.workload_name, func.count())
            .join(containers, (containers.c.cluster_id == pods.c.cluster_id) & (containers.c.pod_uid == pods.c.uid))
            .where(pods.c.cluster_id.in_(cids), pods.c.workload_name.in_(names))
            .group_by(pods.c.cluster_id, pods.c.namespace, pods.c.workload_kind, pods.c.workload_name)
        ):
            ctr[(cid, ns, kind, name)] = n
    items = []
    for r in rows:
        key = (r.cluster_id, r.namespace, r.kind, r.name)
        items.append(
            {
                "cluster_id": r.cluster_id,
                "cluster_name": r.cluster_name,
                "namespace": r.namespace,
                "kind": r.kind,
                "name": r.name,
                "owner_chain": r.owner_chain,
                "labels": r.labels,
                "pods": r.pods,
                "containers": ctr.get(key, 0),
                "open_findings": r.open_findings,
                "severities": sev.get(key, {}),
            }
        )
    return SortedPage(items, nxt, total)


def get_workload(conn: Connection, cluster_id: str, namespace: str, kind: str, name: str) -> dict | None:
    r = conn.execute(
        select(workloads, clusters.c.name.label("cluster_name"))
        .join(clusters, clusters.c.id == workloads.c.cluster_id)
        .where(workloads.c.cluster_id == cluster_id, workloads.c.namespace == namespace, workloads.c.kind == kind, workloads.c.name == name)
    ).first()
    if r is None:
        return None
    return {
        "cluster_id": r.cluster_id,
        "cluster_name": r.cluster_name,
        "namespace": r.namespace,
        "kind": r.kind,
        "name": r.name,
        "owner_chain": r.owner_chain,
        "labels": r.labels,
        "updated_at": _iso(r.updated_at),
    }


@dataclass(frozen=True)
class ProcessFilter:
    cluster_id: str | None = None
    namespace: str | None = None
    workload: tuple[str, str, str, str] | None = None
    image_pk: int | None = None
    kind: str | None = None
    text: str | None = None
    sha256: str | None = None
    running_only: bool = False


PROCESS_SORTS = ("last_seen", "path", "count")


def console_processes(conn: Connection, f: ProcessFilter, sort: str, descending: bool, after: str | None, limit: int) -> SortedPage:
    """Executions grouped by executable (path, sha256) per image and workload, with first/last seen and a sample."""
    e = executions.c
    namespace = func.coalesce(pods.c.namespace, "").label("namespace")
    wkind = func.coalesce(pods.c.workload_kind, "").label("workload_kind")
    wname = func.coalesce(pods.c.workload_name, "").label("workload_name")
    image_pk = func.coalesce(containers.c.image_pk, -1).label("image_pk")
    cond = []
    for col, value in ((e.cluster_id, f.cluster_id), (pods.c.namespace, f.namespace), (e.kind, f.kind), (e.sha256, f.sha256)):
        if value:
            cond.append(col == value)
    if f.image_pk is not None:
        cond.append(containers.c.image_pk == f.image_pk)
    if f.workload:
        cid, ns, kind, name = f.workload
        cond += [e.cluster_id == cid, pods.c.namespace == ns, pods.c.workload_kind == kind, pods.c.workload_name == name]
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
                (containers.c.cluster_id == e.cluster_id) & (containers.c.container_id == e.container_id) & (e.container_id != ""),
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
    keys = {"last_seen": ((g.c.last_seen_at, "ts"),) + identity, "path": identity, "count": ((g.c["count"], "int"),) + identity}[sort]
    rows, nxt = keyset_rows(conn, select(g), Sort(keys, descending), after, limit)
    total = conn.execute(select(func.count()).select_from(g)).scalar_one()
    samples = {}
    if rows:
        samples = dict(conn.execute(select(e.id, e.samples).where(e.id.in_([r.sample_id for r in rows]))).all())
    refs = {}
    image_ids = [r.image_pk for r in rows if r.image_pk != -1]
    if image_ids:
        refs = {i.id: _image_ref(i.registry, i.repository, i.tag, i.digest) for i in conn.execute(select(images).where(images.c.id.in_(image_ids)))}
    names = _cluster_names(conn, {r.cluster_id for r in rows})
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
                "first_seen_at": _iso(r.first_seen_at),
                "last_seen_at": _iso(r.last_seen_at),
                "count": int(r.count),
                "containers": r.containers,
                "running": bool(r.running),
                "argv": sample.get("argv") if isinstance(sample, dict) else None,
            }
        )
    return SortedPage(items, nxt, total)


def finding_filter_choices(conn: Connection) -> dict[str, list]:
    """Values the findings filters offer: clusters and namespaces that have findings."""
    return {
        "clusters": [
            (r.id, r.name)
            for r in conn.execute(select(clusters.c.id, clusters.c.name).order_by(clusters.c.name))
        ],
        "namespaces": [
            n for (n,) in conn.execute(select(findings.c.namespace).where(findings.c.namespace.is_not(None)).distinct().order_by(findings.c.namespace))
        ],
    }


# -- Console reads added with contents, runtime labels and risk ------------------------------------
# Vulnerability counts come from the image's contents (one row per package and vulnerability of
# the digest), not from findings, which exist once per workload running the image.

from vigil.service.store.schema import image_scans, image_vulnerabilities  # noqa: E402,I001

# How the runtime states of one vulnerability's findings (one per workload) sum up for the image.
RUNTIME_STATE_ORDER = ("running", "watching", "unwatched", "not_observed_running")


def _empty_vulnerability_counts(scan: str) -> dict:
    return {"vulnerabilities": {s.value: 0 for s in RATED_SEVERITIES} | {Severity.UNKNOWN.value: 0}, "malicious": 0, "running_vulnerabilities": 0, "scan_status": scan}


def image_vulnerability_counts(conn: Connection, image_ids: list[int]) -> dict[int, dict]:
    """Per image: distinct vulnerabilities of its digest by severity (a malicious package counts as
    critical, as its finding does), malicious packages, distinct running vulnerabilities (open
    running_vulnerability findings by subject: one per package and advisory, whatever the workload),
    and the digest's scan status (pending | scanning | done | failed; ``no_digest`` when the runtime
    reported none)."""
    ids = sorted(set(image_ids))
    out: dict[int, dict] = {}
    if not ids:
        return out
    digests: dict[int, str] = {}
    for start in range(0, len(ids), 500):
        digests.update(dict(conn.execute(select(images.c.id, images.c.digest).where(images.c.id.in_(ids[start : start + 500]))).all()))
    by_digest: dict[str, list[int]] = {}
    for pk, d in digests.items():
        if d:
            by_digest.setdefault(d, []).append(pk)
    scans = {}
    vuln_rows = []
    wanted = sorted(by_digest)
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        scans.update(dict(conn.execute(select(image_scans.c.digest, image_scans.c.status).where(image_scans.c.digest.in_(chunk))).all()))
        vuln_rows += conn.execute(
            select(image_vulnerabilities.c.digest, image_vulnerabilities.c.severity, image_vulnerabilities.c.malicious, func.count())
            .where(image_vulnerabilities.c.digest.in_(chunk))
            .group_by(image_vulnerabilities.c.digest, image_vulnerabilities.c.severity, image_vulnerabilities.c.malicious)
        ).all()
    for pk in ids:
        d = digests.get(pk)
        out[pk] = _empty_vulnerability_counts(scans.get(d, "pending") if d else "no_digest")
    for digest, severity, malicious, n in vuln_rows:
        rated = severity if severity in RATED_SEVERITIES else Severity.UNKNOWN.value
        level = Severity.CRITICAL.value if malicious else rated
        for pk in by_digest[digest]:
            out[pk]["vulnerabilities"][level] += n
            if malicious:
                out[pk]["malicious"] += n
    for start in range(0, len(ids), 500):
        for pk, n in conn.execute(
            select(findings.c.image_pk, func.count(distinct(findings.c.subject)))
            .where(findings.c.image_pk.in_(ids[start : start + 500]), findings.c.type == FindingType.RUNNING_VULNERABILITY, findings.c.status == FindingStatus.OPEN)
            .group_by(findings.c.image_pk)
        ):
            out[pk]["running_vulnerabilities"] = n
    return out


def package_vulnerability_ids(conn: Connection, package_ids: list[int]) -> dict[int, list[dict]]:
    """package id -> its vulnerabilities (id, severity, malicious), for a page of packages."""
    out: dict[int, list[dict]] = {}
    ids = sorted(set(package_ids))
    for start in range(0, len(ids), 500):
        v = image_vulnerabilities.c
        for r in conn.execute(select(v.package_id, v.vuln_id, v.severity, v.malicious).where(v.package_id.in_(ids[start : start + 500])).order_by(v.package_id, v.id)):
            out.setdefault(r.package_id, []).append({"id": r.vuln_id, "severity": Severity.CRITICAL.value if r.malicious else r.severity, "malicious": r.malicious})
    return out


def image_runtime_states(conn: Connection, image_pk: int) -> dict[tuple[str, str, str], dict[str, int]]:
    """(package name, version, vulnerability id) -> {runtime state: open findings in that state}
    over the image's open package findings (one per workload). A finding without a label yet is
    ``unwatched``, as the findings API shows it."""
    labels = {
        fid: state
        for fid, state in conn.execute(
            select(vulnerability_runtime.c.finding_id, vulnerability_runtime.c.state)
            .join(findings, findings.c.id == vulnerability_runtime.c.finding_id)
            .where(findings.c.image_pk == image_pk)
        )
    }
    out: dict[tuple[str, str, str], dict[str, int]] = {}
    for fid, evidence in conn.execute(
        select(findings.c.id, findings.c.evidence).where(
            findings.c.image_pk == image_pk, findings.c.type.in_(PACKAGE_TYPES), findings.c.status == FindingStatus.OPEN
        )
    ):
        ev = evidence if isinstance(evidence, dict) else {}
        pkg = ev.get("package") if isinstance(ev.get("package"), dict) else {}
        key = (pkg.get("name"), pkg.get("version") or ev.get("installed_version"), ev.get("vulnerability"))
        if None in key:
            continue
        states = out.setdefault(key, {})
        state = labels.get(fid, "unwatched")
        states[state] = states.get(state, 0) + 1
    return out


def overall_runtime_state(states: dict[str, int]) -> str | None:
    """One state for a vulnerability over its workloads: running anywhere wins; it is
    not_observed_running only when every workload was watched long enough without it running."""
    return next((s for s in RUNTIME_STATE_ORDER if states.get(s)), None)


@dataclass(frozen=True)
class OpenRisk:
    """Rolled-up risk of every workload, image and cluster with open findings, scored in one pass."""

    workloads: dict[tuple[str, str, str, str], dict]
    images: dict[int, dict]
    clusters: dict[str, dict]


def open_risk(conn: Connection) -> OpenRisk:
    """Each open finding scored once (``store.risk.score``), rolled up by workload, image and
    cluster as ``store.risk.workload_risk`` / ``image_risk`` / ``cluster_risk`` do, without
    scoring the same findings three times."""
    cols = (
        findings.c.id, findings.c.type, findings.c.severity, findings.c.cluster_id, findings.c.namespace,
        findings.c.workload_kind, findings.c.workload_name, findings.c.image_pk,
    )
    rows = conn.execute(select(*cols).where(findings.c.status == FindingStatus.OPEN)).all()
    scores = risk_store.score(conn, rows)
    by_workload: dict[tuple, list] = {}
    by_image: dict[int, list] = {}
    by_cluster: dict[str, list] = {}
    for r in rows:
        pair = (r.id, scores[r.id]["score"])
        if r.workload_name is not None:
            by_workload.setdefault((r.cluster_id, r.namespace, r.workload_kind, r.workload_name), []).append(pair)
        if r.image_pk is not None:
            by_image.setdefault(r.image_pk, []).append(pair)
        if r.cluster_id is not None:
            by_cluster.setdefault(r.cluster_id, []).append(pair)
    return OpenRisk(
        {k: risk_store.rollup(v) for k, v in by_workload.items()},
        {k: risk_store.rollup(v) for k, v in by_image.items()},
        {k: risk_store.rollup(v) for k, v in by_cluster.items()},
    )


def console_clusters(conn: Connection, after: str | None, limit: int, risk: OpenRisk | None = None) -> Page:
    """``list_clusters`` for the console: the same items, with risk taken from ``risk`` (a cluster
    without open findings rolls up to 0) instead of scoring every finding again."""
    stmt = page(select(clusters), [clusters.c.name, clusters.c.id], after, limit)
    rows, nxt = split_page(conn.execute(stmt).all(), lambda r: (r.name, r.id), limit)
    ids = [r.id for r in rows]
    node_counts = dict(conn.execute(select(nodes.c.cluster_id, func.count()).where(nodes.c.cluster_id.in_(ids)).group_by(nodes.c.cluster_id)).all())
    pod_counts = dict(conn.execute(select(pods.c.cluster_id, func.count()).where(pods.c.cluster_id.in_(ids)).group_by(pods.c.cluster_id)).all())
    items = []
    for r in rows:
        d = {
            "id": r.id,
            "name": r.name,
            "created_at": _iso(r.created_at),
            "last_seen_at": _iso(r.last_seen_at),
            "controller": {
                "status": controller_status(r.controller_heartbeat_at, r.controller_interval_s),
                "last_heartbeat_at": _iso(r.controller_heartbeat_at),
                "version": r.controller_version,
            },
            "nodes": node_counts.get(r.id, 0),
            "pods": pod_counts.get(r.id, 0),
        }
        if risk is not None:
            d["risk"] = risk.clusters.get(r.id) or risk_store.rollup([])
        items.append(d)
    return Page(items, nxt)


def riskiest_workloads(conn: Connection, limit: int = 5, risk: OpenRisk | None = None) -> list[dict]:
    """Workloads with open findings ranked by their rolled-up risk score (store/risk.py), highest first."""
    risks = (risk or open_risk(conn)).workloads
    top = sorted(risks.items(), key=lambda kv: (-kv[1]["score"], kv[0]))[:limit]
    names = _cluster_names(conn, {k[0] for k, _ in top})
    sev: dict[tuple, dict[str, int]] = {}
    if top:
        for cid, ns, kind, name, s, n in conn.execute(
            select(findings.c.cluster_id, findings.c.namespace, findings.c.workload_kind, findings.c.workload_name, findings.c.severity, func.count())
            .where(findings.c.status == FindingStatus.OPEN, findings.c.workload_name.in_({k[3] for k, _ in top}))
            .group_by(findings.c.cluster_id, findings.c.namespace, findings.c.workload_kind, findings.c.workload_name, findings.c.severity)
        ):
            sev.setdefault((cid, ns, kind, name), {})[s] = n
    return [
        {
            "cluster_id": k[0],
            "cluster_name": names.get(k[0]),
            "namespace": k[1],
            "kind": k[2],
            "name": k[3],
            "risk": risk,
            "severities": sev.get(k, {}),
            "total": risk["parts"]["open_findings"],
        }
        for k, risk in top
    ]


def riskiest_images(conn: Connection, limit: int = 5, risk: OpenRisk | None = None) -> list[dict]:
    """Images with open findings ranked by their rolled-up risk score, highest first."""
    risks = (risk or open_risk(conn)).images
    top = sorted(risks.items(), key=lambda kv: (-kv[1]["score"], kv[0]))[:limit]
    pks = [pk for pk, _ in top]
    rows = {r.id: r for r in conn.execute(select(images).where(images.c.id.in_(pks)))} if pks else {}
    usage = image_usage(conn, pks)
    counts = image_vulnerability_counts(conn, pks)
    return [
        {
            "id": pk,
            "ref": _image_ref(rows[pk].registry, rows[pk].repository, rows[pk].tag, rows[pk].digest),
            "risk": risk,
            "total": risk["parts"]["open_findings"],
            "usage": usage[pk],
            **counts[pk],
        }
        for pk, risk in top
        if pk in rows
    ]
