"""The vulnerability funnel of an image and of a workload (all, with a fix, running), read for the API and
the console alike; the counting is ``vigil.service.analysis.funnel``.

What an image holds comes from its digest's contents (``image_vulnerabilities``, one row per package and
advisory), not from findings (one per workload running the image). What runs comes from the open
``running_vulnerability`` findings: for an image, those of every workload running it; for a workload, its
own, image by image. A workload's images are those of its pods' containers as the inventory holds them.
"""

from __future__ import annotations

from sqlalchemy import Connection, select

from vigil.model.findings import FindingStatus, FindingType
from vigil.service.analysis.funnel import KnownVulnerability, funnel, vulnerability_key
from vigil.service.store.schema import (
    containers,
    findings,
    image_packages,
    image_scans,
    image_vulnerabilities,
    pods,
    workloads,
)
from vigil.service.store.schema import images as images_table
from vigil.service.store.views.common import image_ref

__all__ = ["image_funnel", "workload_funnel"]


def _known(conn: Connection, digest: str) -> list[KnownVulnerability]:
    v, p = image_vulnerabilities.c, image_packages.c
    rows = conn.execute(
        select(v.key_id, v.severity, v.malicious, v.fixed_versions, p.type, p.name, p.version)
        .join(image_packages, p.id == v.package_id)
        .where(v.digest == digest)
    )
    return [
        KnownVulnerability(
            vulnerability_key(r.key_id, r.type, r.name, r.version),
            r.severity,
            bool(r.malicious),
            bool(r.fixed_versions),
        )
        for r in rows
    ]


def _running(conn: Connection, image_pk: int, workload: tuple[str, str, str, str] | None = None) -> set[str]:
    f = findings.c
    stmt = (
        select(f.subject_key)
        .distinct()
        .where(
            f.image_pk == image_pk,
            f.type == FindingType.RUNNING_VULNERABILITY,
            f.status == FindingStatus.OPEN,
        )
    )
    if workload is not None:
        cluster_id, namespace, kind, name = workload
        stmt = stmt.where(
            f.cluster_id == cluster_id, f.namespace == namespace, f.workload_kind == kind, f.workload_name == name
        )
    return set(conn.execute(stmt).scalars())


def _image(conn: Connection, image_pk: int) -> dict | None:
    i = images_table.c
    row = conn.execute(select(i.id, i.registry, i.repository, i.tag, i.digest).where(i.id == image_pk)).first()
    if row is None:
        return None
    if not row.digest:
        status = "no_digest"
    else:
        found = conn.execute(select(image_scans.c.status).where(image_scans.c.digest == row.digest)).scalar()
        status = found or "pending"
    return {
        "image_id": row.id,
        "image": image_ref(row.registry, row.repository, row.tag, row.digest) or "",
        "digest": row.digest or None,
        "scan_status": status,
    }


def _funnel_of(
    conn: Connection, image: dict, workload: tuple[str, str, str, str] | None
) -> tuple[list[KnownVulnerability], set[str]]:
    """An image's known vulnerabilities (none until its scan is done) and the keys running in the scope."""
    known = _known(conn, image["digest"]) if image["scan_status"] == "done" else []
    return known, _running(conn, image["image_id"], workload)


def image_funnel(conn: Connection, image_pk: int) -> dict | None:
    """The image's funnel over every workload running it; None when there is no such image."""
    image = _image(conn, image_pk)
    if image is None:
        return None
    known, running = _funnel_of(conn, image, None)
    return {**image, "funnel": funnel(known, running).as_dict()}


def workload_funnel(conn: Connection, cluster_id: str, namespace: str, kind: str, name: str) -> dict | None:
    """The workload's funnel over its images (a vulnerability two of them share counts once), and each
    image's with the workload's own running findings; None when there is no such workload."""
    w = workloads.c
    exists = conn.execute(
        select(w.name).where(w.cluster_id == cluster_id, w.namespace == namespace, w.kind == kind, w.name == name)
    ).first()
    if exists is None:
        return None
    c, p = containers.c, pods.c
    image_pks = sorted(
        conn.execute(
            select(c.image_pk)
            .distinct()
            .join(pods, (p.cluster_id == c.cluster_id) & (p.uid == c.pod_uid))
            .where(
                p.cluster_id == cluster_id,
                p.namespace == namespace,
                p.workload_kind == kind,
                p.workload_name == name,
                c.image_pk.is_not(None),
            )
        ).scalars()
    )
    key = (cluster_id, namespace, kind, name)
    per_image: list[dict] = []
    all_known: list[KnownVulnerability] = []
    all_running: set[str] = set()
    for pk in image_pks:
        image = _image(conn, pk)
        if image is None:
            continue
        known, running = _funnel_of(conn, image, key)
        all_known += known
        all_running |= running
        per_image.append({**image, "funnel": funnel(known, running).as_dict()})
    return {
        "cluster_id": cluster_id,
        "namespace": namespace,
        "kind": kind,
        "name": name,
        "funnel": funnel(all_known, all_running).as_dict(),
        "images": per_image,
    }
