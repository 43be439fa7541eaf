"""Each node's load watch: per running container, the package files whose opens its sensor reports.

Computed from the open vulnerable_package / malicious_package findings of each container's workload and
image, and the image's stored packages with their files (vigil.service.analysis.runtime.load_watch). It goes
to the sensor inside the node's runtime policy, and is part of the policy's revision: a finding opened or
resolved changes the node's policy, and a held long poll sees it through ``marker``.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

from sqlalchemy import Connection, func, select

from vigil.model.findings import FindingStatus, FindingType
from vigil.service.analysis.runtime.load_watch import InterestPackage, interest_set
from vigil.service.store.schema import containers, finding_events, findings, image_packages, images, pods
from vigil.wire.prevention import ContainerLoadWatch, NodeRuntimePolicy

log = logging.getLogger(__name__)
PACKAGE_FINDINGS = (str(FindingType.VULNERABLE_PACKAGE), str(FindingType.MALICIOUS_PACKAGE))


def marker(conn: Connection) -> Any:
    """Moves whenever a finding is opened, resolved or suppressed (the latest finding event)."""
    return conn.execute(select(func.max(finding_events.c.id))).scalar()


def _package(evidence: Any) -> tuple[str, str, str, str] | None:
    pkg = evidence.get("package") if isinstance(evidence, dict) else None
    if not isinstance(pkg, dict):
        return None
    fields = (pkg.get("type"), pkg.get("name"), pkg.get("version"), pkg.get("found_in"))
    if not all(isinstance(f, str) for f in fields):
        return None
    return fields  # type: ignore[return-value]


def node_load_watch(conn: Connection, cluster_id: str, node_name: str) -> list[ContainerLoadWatch]:
    """The load watch of every running container of the node whose workload has open package findings."""
    c, p = containers.c, pods.c
    running = conn.execute(
        select(c.container_id, c.image_pk, images.c.digest, p.namespace, p.workload_kind, p.workload_name)
        .join(pods, (p.cluster_id == c.cluster_id) & (p.uid == c.pod_uid))
        .join(images, images.c.id == c.image_pk)
        .where(
            c.cluster_id == cluster_id,
            p.node_name == node_name,
            c.state == "running",
            c.container_id.is_not(None),
        )
        .order_by(c.container_id)
    ).all()
    if not running:
        return []
    f = findings.c
    wanted: dict[tuple, set[tuple[str, str, str, str]]] = {}
    for fr in conn.execute(
        select(f.image_pk, f.namespace, f.workload_kind, f.workload_name, f.evidence).where(
            f.cluster_id == cluster_id,
            f.status == str(FindingStatus.OPEN),
            f.type.in_(PACKAGE_FINDINGS),
            f.image_pk.in_(sorted({c.image_pk for c in running})),
        )
    ):
        ident = _package(fr.evidence)
        if ident is not None:
            wanted.setdefault((fr.image_pk, fr.namespace, fr.workload_kind, fr.workload_name), set()).add(ident)
    files: dict[tuple[str, tuple[str, str, str, str]], tuple[str, ...]] = {}
    digests = sorted(
        {c.digest for c in running if (c.image_pk, c.namespace, c.workload_kind, c.workload_name) in wanted}
    )
    ip = image_packages.c
    for row in conn.execute(
        select(ip.digest, ip.type, ip.name, ip.version, ip.found_in, ip.files).where(ip.digest.in_(digests))
    ):
        files[(row.digest, (row.type, row.name, row.version, row.found_in))] = tuple(row.files or ())
    out: list[ContainerLoadWatch] = []
    for r in running:
        idents = wanted.get((r.image_pk, r.namespace, r.workload_kind, r.workload_name))
        if not idents:
            continue
        packages = [
            InterestPackage(t, found_in, files.get((r.digest, (t, n, v, found_in)), ()))
            for t, n, v, found_in in sorted(idents)
        ]
        got = interest_set(packages)
        if got.left_out:
            log.warning(
                "load watch of container %s: %d package paths left out (over the cap or too long for the kernel)",
                r.container_id,
                got.left_out,
                extra={"cluster_id": cluster_id, "node_name": node_name, "left_out": got.left_out},
            )
        if got.paths:
            out.append(ContainerLoadWatch(container_id=r.container_id, paths=list(got.paths), left_out=got.left_out))
    return out


def with_load_watch(policy: NodeRuntimePolicy, watch: list[ContainerLoadWatch]) -> NodeRuntimePolicy:
    """The policy carrying ``watch``; its revision covers it (unchanged when there is none to watch)."""
    if not watch:
        return policy
    doc = json.dumps([w.model_dump(mode="json") for w in watch], sort_keys=True)
    revision = hashlib.sha256(f"{policy.revision}|{doc}".encode()).hexdigest()[: len(policy.revision)]
    return policy.model_copy(update={"load_watch": watch, "revision": revision})
