"""Integrity verdicts per (image, cluster), provenance per digest, and the running images they are about."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, select
from sqlalchemy.dialects import postgresql, sqlite

from vigil.clock import as_utc, iso
from vigil.model.findings import workload_scope
from vigil.policy.integrity import worst
from vigil.service.store.chunks import chunks
from vigil.service.store.schema import (
    clusters,
    containers,
    image_integrity,
    image_provenance,
    images,
    pods,
)

DEDUP_PREFIX = "integrity:"
# A container in these states is not running its image any more.
NOT_RUNNING = ("terminated",)


@dataclass(frozen=True, slots=True)
class RunningImage:
    """One workload running one image in one cluster."""

    cluster_id: str
    cluster_name: str
    image_pk: int
    registry: str
    repository: str
    tag: str
    digest: str
    namespace: str
    workload_kind: str
    workload_name: str

    @property
    def scope(self) -> str:
        return workload_scope(self.cluster_id, self.namespace, self.workload_kind, self.workload_name, self.image_pk)


@dataclass(frozen=True, slots=True)
class IntegrityState:
    status: str
    registry_digest: str | None
    registry_digest_since: datetime | None
    policy_revision: str
    next_check_at: datetime
    failures: int


def dedup_key(finding_type: str, r: RunningImage) -> str:
    """One finding per (type, cluster, image, workload); the scope and type columns say the same."""
    return f"{DEDUP_PREFIX}{r.cluster_id}:{r.image_pk}:{r.namespace}:{r.workload_kind}/{r.workload_name}:{finding_type}"


def running_images(conn: Connection, image_pk: int | None = None) -> list[RunningImage]:
    """Every workload running an image (only ``image_pk`` when given)."""
    stmt = (
        select(
            containers.c.cluster_id,
            clusters.c.name.label("cluster_name"),
            containers.c.image_pk,
            images.c.registry,
            images.c.repository,
            images.c.tag,
            images.c.digest,
            pods.c.namespace,
            pods.c.workload_kind,
            pods.c.workload_name,
        )
        .join(pods, (pods.c.cluster_id == containers.c.cluster_id) & (pods.c.uid == containers.c.pod_uid))
        .join(images, images.c.id == containers.c.image_pk)
        .join(clusters, clusters.c.id == containers.c.cluster_id)
        .where(containers.c.state.not_in(NOT_RUNNING))
        .distinct()
    )
    if image_pk is not None:
        stmt = stmt.where(containers.c.image_pk == image_pk)
    return [RunningImage(**row._mapping) for row in conn.execute(stmt)]


def load_states(conn: Connection) -> dict[tuple[int, str], IntegrityState]:
    out = {}
    for r in conn.execute(select(image_integrity)):
        out[(r.image_pk, r.cluster_id)] = IntegrityState(
            r.status,
            r.registry_digest,
            as_utc(r.registry_digest_since),
            r.policy_revision,
            as_utc(r.next_check_at),
            r.failures,
        )
    return out


def upsert_states(conn: Connection, rows: list[dict]) -> None:
    if not rows:
        return
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    stmt = insert(image_integrity)
    keys = ("image_pk", "cluster_id")
    stmt = stmt.on_conflict_do_update(
        index_elements=list(keys), set_={c: stmt.excluded[c] for c in rows[0] if c not in keys}
    )
    for chunk in chunks(rows):
        conn.execute(stmt, chunk)


def known_provenance(conn: Connection, digests: Iterable[str]) -> set[str]:
    digests = sorted(set(digests))
    out: set[str] = set()
    for chunk in chunks(digests):
        out.update(
            d for (d,) in conn.execute(select(image_provenance.c.digest).where(image_provenance.c.digest.in_(chunk)))
        )
    return out


def record_provenance(conn: Connection, rows: list[dict]) -> None:
    if not rows:
        return
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    conn.execute(insert(image_provenance).on_conflict_do_nothing(), rows)


def provenance_for(conn: Connection, digests: Iterable[str]) -> dict[str, dict]:
    digests = sorted({d for d in digests if d})
    out: dict[str, dict] = {}
    for chunk in chunks(digests):
        for r in conn.execute(select(image_provenance).where(image_provenance.c.digest.in_(chunk))):
            out[r.digest] = {
                "source": r.source,
                "revision": r.revision,
                "created": r.created,
                "authors": r.authors,
                "version": r.version,
                "labels": r.labels,
            }
    return out


def _state_dict(r) -> dict:
    return {
        "cluster_id": r.cluster_id,
        "status": r.status,
        "findings": [t for t in r.verdict.split(",") if t],
        "evidence": r.evidence,
        "checked_at": iso(r.checked_at),
        "next_check_at": iso(r.next_check_at),
    }


def summaries(conn: Connection, image_ids: list[int], cluster: str | None = None) -> dict[int, dict]:
    """Per image: the worst verdict over the clusters running it (or ``cluster``'s), each cluster's, and provenance.

    An image not evaluated yet is ``pending``.
    """
    per_image: dict[int, list[dict]] = {i: [] for i in image_ids}
    for chunk in chunks(image_ids):
        stmt = select(image_integrity).where(image_integrity.c.image_pk.in_(chunk))
        if cluster:
            stmt = stmt.where(image_integrity.c.cluster_id == cluster)
        for r in conn.execute(stmt.order_by(image_integrity.c.cluster_id)):
            per_image[r.image_pk].append(_state_dict(r))
    digests: dict[int, str] = {}
    for chunk in chunks(image_ids):
        stmt = select(images.c.id, images.c.digest).where(images.c.id.in_(chunk))
        digests.update({pk: digest for pk, digest in conn.execute(stmt)})
    provenance = provenance_for(conn, digests.values())
    out = {}
    for pk, states in per_image.items():
        status = worst([s["status"] for s in states]) or "pending"
        top = next((s for s in states if s["status"] == status), None)
        out[pk] = {
            "status": status,
            "findings": top["findings"] if top else [],
            "evidence": top["evidence"] if top else {},
            "checked_at": top["checked_at"] if top else None,
            "clusters": states,
            "provenance": provenance.get(digests.get(pk) or ""),
        }
    return out
