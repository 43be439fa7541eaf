"""Images: one sortable listing for the API and the console (blast radius, integrity, risk; with
``with_findings``, also the open findings the console lists), an image's page, and the
vulnerability counts and runtime states the image page shows.

Vulnerability counts come from the image's contents (one row per package and vulnerability of the
digest), not from findings, which exist once per workload running the image.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, Connection, FromClause, Row, case, distinct, func, or_, select

from vigil.model.findings import PACKAGE_TYPES, RATED_SEVERITIES, FindingStatus, FindingType, Severity
from vigil.service.store import contents as contents_store
from vigil.service.store import risk as risk_store
from vigil.service.store.chunks import chunks
from vigil.service.store.integrity import summaries as integrity_summaries
from vigil.service.store.pagination import Sort, keyset_rows
from vigil.service.store.schema import (
    clusters,
    containers,
    findings,
    image_scans,
    image_vulnerabilities,
    images,
    pods,
    vulnerability_runtime,
)
from vigil.service.store.views.common import Page, image_ref, iso


@dataclass(frozen=True)
class ImageFilter:
    registry: str | None = None
    repository: str | None = None
    text: str | None = None  # part of the repository or tag, or of the digest
    cluster_id: str | None = None  # run (or ran) by a container of this cluster
    in_use: bool = False  # some container has it, whatever its state
    running_only: bool = False  # some container running it now
    finding_types: tuple[str, ...] = ()  # with an open finding of one of these types


IMAGE_SORTS = ("ref", "first_seen", "findings", "workloads")
# How the runtime states of one vulnerability's findings (one per workload) sum up for the image.
RUNTIME_STATE_ORDER = ("running", "watching", "unwatched", "not_observed_running")


def image_dict(r) -> dict:
    return {
        "id": r.id,
        "ref": image_ref(r.registry, r.repository, r.tag, r.digest),
        "registry": r.registry,
        "repository": r.repository,
        "tag": r.tag or None,
        "digest": r.digest or None,
        "first_seen_at": iso(r.first_seen_at),
    }


def _conditions(f: ImageFilter) -> list[ColumnElement[bool]]:
    cond: list[ColumnElement[bool]] = []
    if f.registry:
        cond.append(images.c.registry == f.registry)
    if f.repository:
        cond.append(images.c.repository == f.repository)
    if f.text:
        t = f.text.lower()
        cond.append(
            or_(
                func.lower(images.c.repository).contains(t, autoescape=True),
                func.lower(images.c.tag).contains(t, autoescape=True),
                images.c.digest.contains(t, autoescape=True),
            )
        )
    if f.cluster_id:
        cond.append(images.c.id.in_(select(containers.c.image_pk).where(containers.c.cluster_id == f.cluster_id)))
    elif f.in_use:
        cond.append(images.c.id.in_(select(containers.c.image_pk)))
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
    return cond


def list_images(
    conn: Connection,
    f: ImageFilter,
    sort: str,
    descending: bool,
    after: str | None,
    limit: int,
    *,
    with_findings: bool = False,
) -> Page:
    """Images matching ``f`` in ``sort`` order (``IMAGE_SORTS`` or "id"), counted; each with its
    blast radius, integrity (in ``f.cluster_id`` when given) and risk. With ``with_findings``, also
    its other stored columns (``extra``) and its open findings (vulnerabilities by severity, running
    vulnerabilities, types, total), as the console lists them."""
    keys: tuple | None = {
        "id": ((images.c.id, "int"),),
        "ref": (
            (images.c.registry, "str"),
            (images.c.repository, "str"),
            (images.c.tag, "str"),
            (images.c.digest, "str"),
            (images.c.id, "int"),
        ),
        "first_seen": ((images.c.first_seen_at, "ts"), (images.c.id, "int")),
    }.get(sort)
    cond = _conditions(f)
    # Aggregate over every image only when the order needs it; otherwise count for the page alone.
    source: FromClause = images
    if sort == "findings":
        open_counts = (
            select(findings.c.image_pk, func.count().label("n"))
            .where(findings.c.status == FindingStatus.OPEN, findings.c.image_pk.is_not(None))
            .group_by(findings.c.image_pk)
            .subquery()
        )
        source = source.outerjoin(open_counts, open_counts.c.image_pk == images.c.id)
        keys = ((func.coalesce(open_counts.c.n, 0), "int"), (images.c.id, "int"))
    elif sort == "workloads":
        per_workload = risk_store.image_workloads().distinct().subquery()
        blast = select(per_workload.c.image_pk, func.count().label("n")).group_by(per_workload.c.image_pk).subquery()
        source = source.outerjoin(blast, blast.c.image_pk == images.c.id)
        keys = ((func.coalesce(blast.c.n, 0), "int"), (images.c.id, "int"))
    if keys is None:
        raise ValueError(f"sort {sort!r} is not one of id, {', '.join(IMAGE_SORTS)}")
    rows, nxt = keyset_rows(conn, select(images).select_from(source).where(*cond), Sort(keys, descending), after, limit)
    total = conn.execute(select(func.count()).select_from(images).where(*cond)).scalar_one()
    ids = [r.id for r in rows]
    usage = risk_store.image_usage(conn, ids)
    verdicts = integrity_summaries(conn, ids, f.cluster_id)
    risks = risk_store.image_risk(conn, ids, f.cluster_id)
    coverage = contents_store.scan_coverage(conn, [r.digest for r in rows])
    by_image = image_finding_summary(conn, ids) if with_findings else {}
    items = []
    for r in rows:
        d = image_dict(r)
        d["usage"] = usage[r.id]
        d["integrity"] = verdicts[r.id]
        d["risk"] = risks[r.id]
        d["coverage"] = coverage.get(r.digest)
        if with_findings:
            d["extra"] = {
                k: v for k, v in r._mapping.items() if k not in _IMAGE_BASE_COLUMNS and not k.startswith("_k")
            }
            d.update(by_image.get(r.id, _empty_image_summary()))
            d["open_findings"] = d.pop("open_total", 0)
        items.append(d)
    return Page(items, nxt, total)


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
    d = image_dict(row)
    d["extra"] = {k: v for k, v in row._mapping.items() if k not in _IMAGE_BASE_COLUMNS}
    d["usage"] = risk_store.image_usage(conn, [image_pk])[image_pk]
    d.update(image_finding_summary(conn, [image_pk]).get(image_pk, _empty_image_summary()))
    running = func.sum(case((containers.c.state == "running", 1), else_=0))
    d["workloads"] = [
        {
            "cluster_id": r.cluster_id,
            "cluster_name": r.cluster_name,
            "namespace": r.namespace,
            "kind": r.workload_kind,
            "name": r.workload_name,
            "containers": r.n,
            "running": r.running,
        }
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
            .group_by(
                containers.c.cluster_id, clusters.c.name, pods.c.namespace, pods.c.workload_kind, pods.c.workload_name
            )
            .order_by(clusters.c.name, pods.c.namespace, pods.c.workload_kind, pods.c.workload_name)
            .limit(500)
        )
    ]
    return d


def _empty_vulnerability_counts(scan: str) -> dict:
    return {
        "vulnerabilities": {s.value: 0 for s in RATED_SEVERITIES} | {Severity.UNKNOWN.value: 0},
        "malicious": 0,
        "running_vulnerabilities": 0,
        "scan_status": scan,
    }


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
    for part in chunks(ids):
        digests.update(dict(conn.execute(select(images.c.id, images.c.digest).where(images.c.id.in_(part))).all()))
    by_digest: dict[str, list[int]] = {}
    for pk, d in digests.items():
        if d:
            by_digest.setdefault(d, []).append(pk)
    scans: dict[str, str] = {}
    vuln_rows: list[Row] = []
    wanted = sorted(by_digest)
    for chunk in chunks(wanted):
        scans.update(
            dict(
                conn.execute(
                    select(image_scans.c.digest, image_scans.c.status).where(image_scans.c.digest.in_(chunk))
                ).all()
            )
        )
        vuln_rows += conn.execute(
            select(
                image_vulnerabilities.c.digest,
                image_vulnerabilities.c.severity,
                image_vulnerabilities.c.malicious,
                func.count(),
            )
            .where(image_vulnerabilities.c.digest.in_(chunk))
            .group_by(
                image_vulnerabilities.c.digest, image_vulnerabilities.c.severity, image_vulnerabilities.c.malicious
            )
        ).all()
    for pk in ids:
        digest_of = digests.get(pk)
        out[pk] = _empty_vulnerability_counts(scans.get(digest_of, "pending") if digest_of else "no_digest")
    for digest, severity, malicious, n in vuln_rows:
        rated = severity if severity in RATED_SEVERITIES else Severity.UNKNOWN.value
        level = Severity.CRITICAL.value if malicious else rated
        for pk in by_digest[digest]:
            out[pk]["vulnerabilities"][level] += n
            if malicious:
                out[pk]["malicious"] += n
    for part in chunks(ids):
        for pk, n in conn.execute(
            select(findings.c.image_pk, func.count(distinct(findings.c.subject)))
            .where(
                findings.c.image_pk.in_(part),
                findings.c.type == FindingType.RUNNING_VULNERABILITY,
                findings.c.status == FindingStatus.OPEN,
            )
            .group_by(findings.c.image_pk)
        ):
            out[pk]["running_vulnerabilities"] = n
    return out


def package_vulnerability_ids(conn: Connection, package_ids: list[int]) -> dict[int, list[dict]]:
    """package id -> its vulnerabilities (id, severity, malicious), for a page of packages."""
    out: dict[int, list[dict]] = {}
    ids = sorted(set(package_ids))
    v = image_vulnerabilities.c
    for part in chunks(ids):
        stmt = select(v.package_id, v.vuln_id, v.severity, v.malicious).where(v.package_id.in_(part))
        for r in conn.execute(stmt.order_by(v.package_id, v.id)):
            out.setdefault(r.package_id, []).append(
                {
                    "id": r.vuln_id,
                    "severity": Severity.CRITICAL.value if r.malicious else r.severity,
                    "malicious": r.malicious,
                }
            )
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
        raw_pkg = ev.get("package")
        pkg = raw_pkg if isinstance(raw_pkg, dict) else {}
        name, version, vulnerability = (
            pkg.get("name"),
            pkg.get("version") or ev.get("installed_version"),
            ev.get("vulnerability"),
        )
        if name is None or version is None or vulnerability is None:
            continue
        states = out.setdefault((name, version, vulnerability), {})
        state = labels.get(fid, "unwatched")
        states[state] = states.get(state, 0) + 1
    return out


def overall_runtime_state(states: dict[str, int]) -> str | None:
    """One state for a vulnerability over its workloads: running anywhere wins; it is
    not_observed_running only when every workload was watched long enough without it running."""
    return next((s for s in RUNTIME_STATE_ORDER if states.get(s)), None)


SCAN_VERDICTS = ("vulnerable", "incomplete", "clean", "not_scanned")


def scan_verdict(scan_status: str, vulnerabilities: int, coverage: dict | None) -> str:
    """What an image's scan says: ``vulnerable`` (some known vulnerability), ``incomplete`` (none known,
    but an ecosystem its packages need had no advisories, or no match recorded its coverage yet: nothing
    was checked there), ``clean`` (none known, every ecosystem checked), or ``not_scanned`` (yet)."""
    if scan_status != "done":
        return "not_scanned"
    if vulnerabilities:
        return "vulnerable"
    if coverage is None or coverage.get("status") != "complete":
        return "incomplete"
    return "clean"


def scan_verdict_counts(conn: Connection) -> dict[str, int]:
    """How many images some container has, by ``scan_verdict``."""
    in_use = select(images.c.id, images.c.digest).where(images.c.id.in_(select(containers.c.image_pk)))
    digests: dict[int, str] = dict(conn.execute(in_use).all())
    counts = image_vulnerability_counts(conn, list(digests))
    coverage = contents_store.scan_coverage(conn, digests.values())
    out = dict.fromkeys(SCAN_VERDICTS, 0)
    for pk, c in counts.items():
        out[scan_verdict(c["scan_status"], sum(c["vulnerabilities"].values()), coverage.get(digests.get(pk, "")))] += 1
    return out
