"""Which vulnerable packages are really running: each open vulnerable_package or
malicious_package finding is labelled

- ``running``: a running_vulnerability of the same package and advisory is open for its
  workload (or, for a finding about an image alone, any workload running the image);
- ``not_observed_running``: the workload has been watched by a sensor (its first runtime
  record) for at least the watch period, and the package's code never ran;
- ``watching``: watched, but not long enough to say; ``unwatched``: no runtime record yet.

Also resolves runtime findings whose workload no longer runs the image.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, exists, func, select

from vigil.clock import as_utc, utcnow
from vigil.model.findings import PACKAGE_TYPES, Family, FindingStatus, FindingType
from vigil.service.store import findings as finding_store
from vigil.service.store.schema import (
    containers,
    executions,
    findings,
    pods,
    vulnerability_runtime,
)

STATES = ("running", "not_observed_running", "watching", "unwatched")
NOT_RUNNING = ("terminated",)
# What labelling reads of a finding: where it is (cluster, namespace, workload, image) and its evidence.
_FINDING_COLUMNS = (
    findings.c.id,
    findings.c.cluster_id,
    findings.c.namespace,
    findings.c.workload_kind,
    findings.c.workload_name,
    findings.c.image_pk,
    findings.c.evidence,
)


def _strings(value) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _strings(v)


def package_identity(evidence: dict) -> tuple[str | None, str | None, frozenset[str]]:
    """(package name, version, advisory ids and aliases) named by a finding's evidence.

    Read tolerantly: package findings put the package under ``package`` (name, version) or
    flat (``package_name``/``name``, ``installed_version``/``version``), the ids under
    ``vulnerability`` or flat (``id``, ``vuln_id``, ``advisory_ids``, ``aliases``)."""
    package = evidence.get("package")
    pkg: dict[str, Any] = package if isinstance(package, dict) else {}
    name = pkg.get("name") or evidence.get("package_name") or (package if isinstance(package, str) else None)
    version = pkg.get("version") or evidence.get("installed_version") or evidence.get("version")
    ids: set[str] = set()
    vulnerability = evidence.get("vulnerability")
    for holder in (evidence, vulnerability if isinstance(vulnerability, dict) else {}):
        for key in ("id", "vuln_id", "key_id", "vulnerability", "advisory_ids", "aliases", "advisories"):
            ids.update(_strings(holder.get(key)))
    return name, version, frozenset(ids)


def _watched_since(conn: Connection) -> tuple[dict, dict]:
    """First runtime record per (cluster, namespace, workload kind, name, image) and per image."""
    j = executions.join(
        containers,
        (containers.c.cluster_id == executions.c.cluster_id) & (containers.c.container_id == executions.c.container_id),
    ).join(pods, (pods.c.cluster_id == containers.c.cluster_id) & (pods.c.uid == containers.c.pod_uid))
    per_workload: dict[tuple[str, str, str, str, int], datetime] = {}
    per_image: dict[int, datetime] = {}
    for cid, ns, kind, name, image_pk, first in conn.execute(
        select(
            pods.c.cluster_id,
            pods.c.namespace,
            pods.c.workload_kind,
            pods.c.workload_name,
            containers.c.image_pk,
            func.min(executions.c.first_seen_at),
        )
        .select_from(j)
        .where(executions.c.container_id != "")
        .group_by(
            pods.c.cluster_id, pods.c.namespace, pods.c.workload_kind, pods.c.workload_name, containers.c.image_pk
        )
    ):
        first = as_utc(first)
        per_workload[(cid, ns, kind, name, image_pk)] = first
        per_image[image_pk] = min(first, per_image.get(image_pk, first))
    return per_workload, per_image


def refresh(conn: Connection, watch_period: float, now=None) -> dict[str, int]:
    now = now or utcnow()
    running: dict[tuple, list] = {}
    running_by_image: dict[int, list] = {}
    for r in conn.execute(
        select(*_FINDING_COLUMNS).where(
            findings.c.type == FindingType.RUNNING_VULNERABILITY, findings.c.status == FindingStatus.OPEN
        )
    ):
        ident = (r.id, *package_identity(r.evidence or {}))
        running.setdefault((r.cluster_id, r.namespace, r.workload_kind, r.workload_name, r.image_pk), []).append(ident)
        running_by_image.setdefault(r.image_pk, []).append(ident)
    per_workload, per_image = _watched_since(conn)
    previous = dict(conn.execute(select(vulnerability_runtime.c.finding_id, vulnerability_runtime.c.state)).all())
    counts = {s: 0 for s in STATES} | {"changed": 0}
    for f in conn.execute(
        select(*_FINDING_COLUMNS).where(findings.c.type.in_(PACKAGE_TYPES), findings.c.status == FindingStatus.OPEN)
    ):
        name, version, ids = package_identity(f.evidence or {})
        if f.workload_kind:
            candidates = running.get((f.cluster_id, f.namespace, f.workload_kind, f.workload_name, f.image_pk), [])
            since = per_workload.get((f.cluster_id, f.namespace, f.workload_kind, f.workload_name, f.image_pk))
        else:
            candidates = running_by_image.get(f.image_pk, [])
            since = per_image.get(f.image_pk)
        match = next(
            (
                rid
                for rid, rname, rversion, rids in candidates
                if rname == name and rversion == version and (rids & ids)
            ),
            None,
        )
        if match is not None:
            state = "running"
        elif since is None:
            state = "unwatched"
        elif now - since >= timedelta(seconds=watch_period):
            state = "not_observed_running"
        else:
            state = "watching"
        counts[state] += 1
        values = dict(state=state, watched_since=since, running_finding_id=match, updated_at=now)
        if f.id not in previous:
            conn.execute(vulnerability_runtime.insert().values(finding_id=f.id, **values))
            counts["changed"] += 1
        elif previous[f.id] != state:
            conn.execute(
                vulnerability_runtime.update().where(vulnerability_runtime.c.finding_id == f.id).values(**values)
            )
            counts["changed"] += 1
    return counts


def resolve_stopped(conn: Connection, actor: str) -> int:
    """Resolve open runtime findings whose workload no longer runs their image (a finding about
    no image is left alone: nothing here says when it ends)."""
    still = (
        select(containers.c.pod_uid)
        .join(pods, (pods.c.cluster_id == containers.c.cluster_id) & (pods.c.uid == containers.c.pod_uid))
        .where(
            containers.c.cluster_id == findings.c.cluster_id,
            containers.c.image_pk == findings.c.image_pk,
            containers.c.state.not_in(NOT_RUNNING),
            pods.c.namespace == findings.c.namespace,
            pods.c.workload_kind == findings.c.workload_kind,
            pods.c.workload_name == findings.c.workload_name,
        )
    )
    ids = (
        conn.execute(
            select(findings.c.id).where(
                findings.c.family == Family.RUNTIME,
                findings.c.status == FindingStatus.OPEN,
                findings.c.image_pk.is_not(None),
                ~exists(still),
            )
        )
        .scalars()
        .all()
    )
    for fid in ids:
        finding_store.set_status(conn, fid, FindingStatus.RESOLVED, "the workload no longer runs this image", actor)
    return len(ids)
