"""The drift rule's second source: per running container, the sha256s that ran in it and that its image's
manifest holds at no path, from the open runtime_drift / tampered_binary findings of its workload and image.

The sensor matches these by file identity once it has hashed a file (the exec after that is judged under the
drift rule), so a sha256 the image holds at some other path is left out: a tampered ``/bin/ls`` that is a copy
of the image's ``/bin/sh`` would otherwise mark the real ``/bin/sh`` too. They go to the sensor inside the
node's runtime policy and are part of its revision; a held long poll sees a finding opened or resolved
through ``marker``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, func, select

from vigil.model.findings import FindingStatus, FindingType
from vigil.service.store.chunks import chunks
from vigil.service.store.schema import finding_events, findings, image_files

DRIFT_FINDINGS = (str(FindingType.RUNTIME_DRIFT), str(FindingType.TAMPERED_BINARY))
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True, slots=True)
class ContainerImage:
    """A running container with what ties it to its findings: the workload and the image."""

    container_id: str
    image_pk: int
    digest: str
    namespace: str
    workload_kind: str | None
    workload_name: str | None

    @property
    def scope(self) -> tuple[int, str, str | None, str | None]:
        return (self.image_pk, self.namespace, self.workload_kind, self.workload_name)


def marker(conn: Connection) -> Any:
    """Moves whenever a finding is opened, resolved or suppressed (the latest finding event)."""
    return conn.execute(select(func.max(finding_events.c.id))).scalar()


def _ran(finding_type: str, evidence: Any) -> str | None:
    """The sha256 that ran, as the finding's evidence names it."""
    if not isinstance(evidence, dict):
        return None
    sha = evidence.get("sha256" if finding_type == str(FindingType.RUNTIME_DRIFT) else "actual_sha256")
    # Anything but a sha256 is skipped, never sent: one bad value would make the node's whole policy invalid.
    return sha if isinstance(sha, str) and _SHA256.fullmatch(sha) else None


def container_drift(conn: Connection, cluster_id: str, running: Iterable[ContainerImage]) -> dict[str, frozenset[str]]:
    """container id -> the non-image sha256s that ran in its workload and image, for containers that have any."""
    running = list(running)
    if not running:
        return {}
    f = findings.c
    by_scope: dict[tuple[int, str, str | None, str | None], set[str]] = {}
    for pks in chunks(sorted({r.image_pk for r in running})):
        for row in conn.execute(
            select(f.type, f.image_pk, f.namespace, f.workload_kind, f.workload_name, f.evidence).where(
                f.cluster_id == cluster_id,
                f.status == str(FindingStatus.OPEN),
                f.type.in_(DRIFT_FINDINGS),
                f.image_pk.in_(pks),
            )
        ):
            sha = _ran(row.type, row.evidence)
            if sha is not None:
                by_scope.setdefault((row.image_pk, row.namespace, row.workload_kind, row.workload_name), set()).add(sha)
    if not by_scope:
        return {}
    # A sha256 the image holds at any path is the image's own bytes: never drift, whatever the finding.
    digests = sorted({r.digest for r in running if r.scope in by_scope})
    candidates = sorted(set().union(*by_scope.values()))
    held: set[tuple[str, str]] = set()
    i = image_files.c
    for ds in chunks(digests):
        for shas in chunks(candidates):
            stmt = select(i.digest, i.sha256).where(i.digest.in_(ds), i.sha256.in_(shas)).distinct()
            held.update((d.digest, d.sha256) for d in conn.execute(stmt))
    out: dict[str, frozenset[str]] = {}
    for r in running:
        drift = frozenset(s for s in by_scope.get(r.scope, ()) if (r.digest, s) not in held)
        if drift:
            out[r.container_id] = drift
    return out
