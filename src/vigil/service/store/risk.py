"""Risk scores for findings and their roll-ups to workloads, images and clusters (docs/risk.md).

The formula is pure (``vigil.service.analysis.runtime.risk``); this module reads what it
needs: the exposure of each workload's pods, the blast radius of each image, and the runtime
label of package findings (``vulnerability_runtime``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Row, Select, distinct, func, select

from vigil.clock import iso
from vigil.model.findings import PACKAGE_TYPES, FindingStatus
from vigil.service.analysis.runtime.risk import (
    BlastRadius,
    Exposure,
    finding_risk,
    pod_exposure,
    rollup,
)
from vigil.service.store.chunks import chunks
from vigil.service.store.schema import containers, findings, pods, vulnerability_runtime

WorkloadKey = tuple[str, str, str, str]  # cluster id, namespace, kind, name


def _pod_exposure(r) -> Exposure:
    return pod_exposure(
        r.privileged, r.host_pid, r.host_network, r.run_as_non_root, r.run_as_user, r.added_capabilities or ()
    )


def workload_exposures(conn: Connection, keys: Iterable[WorkloadKey]) -> dict[WorkloadKey, Exposure]:
    """The worst pod of each workload."""
    keys = set(keys)
    out: dict[WorkloadKey, Exposure] = {}
    if not keys:
        return out
    clusters = sorted({k[0] for k in keys})
    names = sorted({k[3] for k in keys})
    for chunk in chunks(names):
        for r in conn.execute(select(pods).where(pods.c.cluster_id.in_(clusters), pods.c.workload_name.in_(chunk))):
            key = (r.cluster_id, r.namespace, r.workload_kind, r.workload_name)
            if key in keys:
                e = _pod_exposure(r)
                out[key] = out[key].worst(e) if key in out else e
    return out


def image_exposures(conn: Connection, image_ids: Iterable[int]) -> dict[int, Exposure]:
    """The worst pod running each image."""
    ids = sorted(set(image_ids))
    out: dict[int, Exposure] = {}
    for chunk in chunks(ids):
        for r in conn.execute(
            select(containers.c.image_pk, pods)
            .join(pods, (pods.c.cluster_id == containers.c.cluster_id) & (pods.c.uid == containers.c.pod_uid))
            .where(containers.c.image_pk.in_(chunk))
        ):
            e = _pod_exposure(r)
            out[r.image_pk] = out[r.image_pk].worst(e) if r.image_pk in out else e
    return out


def runtime_labels(conn: Connection, finding_ids: Iterable[int]) -> dict[int, dict]:
    ids = sorted(set(finding_ids))
    out = {}
    for chunk in chunks(ids):
        for r in conn.execute(select(vulnerability_runtime).where(vulnerability_runtime.c.finding_id.in_(chunk))):
            out[r.finding_id] = {
                "state": r.state,
                "watched_since": iso(r.watched_since),
                "running_finding_id": r.running_finding_id,
            }
    return out


def score(conn: Connection, rows: Sequence) -> dict[int, dict]:
    """{finding id: {score, parts}} for rows with id, type, severity, cluster_id, namespace,
    workload_kind, workload_name, image_pk."""
    wkeys = {(r.cluster_id, r.namespace, r.workload_kind, r.workload_name) for r in rows if r.workload_kind}
    exposures = workload_exposures(conn, wkeys)
    image_ids = sorted({r.image_pk for r in rows if r.image_pk is not None})
    usage = image_usage(conn, image_ids)
    image_exp = image_exposures(conn, [r.image_pk for r in rows if r.image_pk is not None and not r.workload_kind])
    labels = runtime_labels(conn, [r.id for r in rows if r.type in PACKAGE_TYPES])
    out = {}
    for r in rows:
        if r.workload_kind:
            exposure = exposures.get((r.cluster_id, r.namespace, r.workload_kind, r.workload_name))
        else:
            exposure = image_exp.get(r.image_pk)
        u = usage.get(r.image_pk, {}) if r.image_pk is not None else {}
        blast = BlastRadius(u.get("workloads", 0), u.get("clusters", 0))
        state = labels.get(r.id, {}).get("state")
        out[r.id] = finding_risk(r.severity, r.type, state, exposure, blast)
    return out


class _Row:
    __slots__ = ("cluster_id", "id", "image_pk", "namespace", "severity", "type", "workload_kind", "workload_name")

    def __init__(self, d: dict) -> None:
        w = d.get("workload") or {}
        self.id, self.type, self.severity = d["id"], d["type"], d["severity"]
        self.cluster_id, self.namespace, self.image_pk = d.get("cluster_id"), d.get("namespace"), d.get("image_pk")
        self.workload_kind, self.workload_name = w.get("kind"), w.get("name")


def attach_risk(conn: Connection, items: list[dict]) -> None:
    """Add ``risk`` to finding dicts (as the findings API shows them), and ``runtime`` to package findings."""
    if not items:
        return
    rows = [_Row(d) for d in items]
    scores = score(conn, rows)
    labels = runtime_labels(conn, [r.id for r in rows if r.type in PACKAGE_TYPES])
    for d in items:
        d["risk"] = scores[d["id"]]
        if d["type"] in PACKAGE_TYPES:
            d["runtime"] = labels.get(
                d["id"], {"state": "unwatched", "watched_since": None, "running_finding_id": None}
            )


_OPEN_COLUMNS = (
    findings.c.id,
    findings.c.type,
    findings.c.severity,
    findings.c.cluster_id,
    findings.c.namespace,
    findings.c.workload_kind,
    findings.c.workload_name,
    findings.c.image_pk,
)


def _rollups(conn: Connection, rows: list, group) -> dict:
    scores = score(conn, rows)
    grouped: dict = {}
    for r in rows:
        grouped.setdefault(group(r), []).append((r.id, scores[r.id]["score"]))
    return {k: rollup(v) for k, v in grouped.items()}


def workload_risk(conn: Connection, keys: Iterable[WorkloadKey]) -> dict[WorkloadKey, dict]:
    keys = set(keys)
    if not keys:
        return {}
    names = sorted({k[3] for k in keys})
    rows = []
    for chunk in chunks(names):
        rows += [
            r
            for r in conn.execute(
                select(*_OPEN_COLUMNS).where(
                    findings.c.status == FindingStatus.OPEN, findings.c.workload_name.in_(chunk)
                )
            )
            if (r.cluster_id, r.namespace, r.workload_kind, r.workload_name) in keys
        ]
    got = _rollups(conn, rows, lambda r: (r.cluster_id, r.namespace, r.workload_kind, r.workload_name))
    return {k: got.get(k, rollup([])) for k in keys}


def image_risk(conn: Connection, image_ids: Iterable[int], cluster: str | None = None) -> dict[int, dict]:
    ids = sorted(set(image_ids))
    rows: list[Row[*tuple[Any, ...]]] = []
    for chunk in chunks(ids):
        stmt = select(*_OPEN_COLUMNS).where(findings.c.status == FindingStatus.OPEN, findings.c.image_pk.in_(chunk))
        if cluster:
            stmt = stmt.where(findings.c.cluster_id == cluster)
        rows += conn.execute(stmt).all()
    got = _rollups(conn, rows, lambda r: r.image_pk)
    return {i: got.get(i, rollup([])) for i in ids}


def cluster_risk(conn: Connection, cluster_ids: Iterable[str]) -> dict[str, dict]:
    ids = sorted(set(cluster_ids))
    rows: list[Row[*tuple[Any, ...]]] = []
    for chunk in chunks(ids):
        rows += conn.execute(
            select(*_OPEN_COLUMNS).where(findings.c.status == FindingStatus.OPEN, findings.c.cluster_id.in_(chunk))
        ).all()
    got = _rollups(conn, rows, lambda r: r.cluster_id)
    return {i: got.get(i, rollup([])) for i in ids}


def image_workloads() -> Select:
    """Each container's image with the workload its pod belongs to: what a blast radius counts."""
    return select(
        containers.c.image_pk,
        containers.c.cluster_id,
        pods.c.namespace,
        pods.c.workload_kind,
        pods.c.workload_name,
    ).join(pods, (pods.c.cluster_id == containers.c.cluster_id) & (pods.c.uid == containers.c.pod_uid))


def image_usage(conn: Connection, image_ids: list[int]) -> dict[int, dict[str, int]]:
    """Blast radius per image: containers having it, distinct workloads and clusters."""
    if not image_ids:
        return {}
    per_workload = image_workloads().where(containers.c.image_pk.in_(image_ids)).distinct().subquery()
    usage: dict[int, dict[str, int]] = {i: {"containers": 0, "workloads": 0, "clusters": 0} for i in image_ids}
    for image_pk, n in conn.execute(
        select(containers.c.image_pk, func.count())
        .where(containers.c.image_pk.in_(image_ids))
        .group_by(containers.c.image_pk)
    ):
        usage[image_pk]["containers"] = n
    for image_pk, n in conn.execute(select(per_workload.c.image_pk, func.count()).group_by(per_workload.c.image_pk)):
        usage[image_pk]["workloads"] = n
    for image_pk, n in conn.execute(
        select(containers.c.image_pk, func.count(distinct(containers.c.cluster_id)))
        .where(containers.c.image_pk.in_(image_ids))
        .group_by(containers.c.image_pk)
    ):
        usage[image_pk]["clusters"] = n
    return usage


@dataclass(frozen=True)
class OpenRisk:
    """Rolled-up risk of every workload, image and cluster with open findings, scored in one pass."""

    workloads: dict[tuple[str, str, str, str], dict]
    images: dict[int, dict]
    clusters: dict[str, dict]


def open_risk(conn: Connection) -> OpenRisk:
    """Each open finding scored once (``score``), rolled up by workload, image and cluster as
    ``workload_risk`` / ``image_risk`` / ``cluster_risk`` do, without scoring the same findings
    three times."""
    rows = conn.execute(select(*_OPEN_COLUMNS).where(findings.c.status == FindingStatus.OPEN)).all()
    scores = score(conn, rows)
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
        {k: rollup(v) for k, v in by_workload.items()},
        {k: rollup(v) for k, v in by_image.items()},
        {k: rollup(v) for k, v in by_cluster.items()},
    )
