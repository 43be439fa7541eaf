"""The runtime analyzer's side of the store: the pending queue, what a record joins to, image
contents as the joins need them, the suspicious-exec allow-list.

A runtime record is queued when it is ingested (in the ingest's transaction, so none is lost)
and stays queued until its container is in the inventory and its image's scan is done; a scan
that completes, or a new advisory match, queues again every record of the containers that run
the digest.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, Table, delete, func, literal, or_, select, tuple_
from sqlalchemy.dialects import postgresql, sqlite

from vigil.clock import as_utc, iso, utcnow
from vigil.service.analysis.runtime.rules import RULES, RULES_BY_ID
from vigil.service.store.chunks import chunks
from vigil.service.store.contents import VULNERABILITY_COLUMNS
from vigil.service.store.db import inserted_id
from vigil.service.store.schema import (
    clusters,
    containers,
    executions,
    image_files,
    image_packages,
    image_scans,
    image_vulnerabilities,
    images,
    pods,
    runtime_activities,
    runtime_activity_pending,
    runtime_allow,
    runtime_digest_state,
    runtime_pending,
    runtime_rule_changes,
    runtime_rule_settings,
    workloads,
)
from vigil.wire.runtime import RuntimeBatch

log = logging.getLogger(__name__)


def _insert(conn: Connection):
    return postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert


# -- the queue ------------------------------------------------------------------------------------


def _enqueue(conn: Connection, pending: Table, column: str, ids: Iterable[int], now: datetime | None = None) -> int:
    ids = sorted(set(ids))
    if not ids:
        return 0
    now = now or utcnow()
    for chunk in chunks(ids):
        rows = [{column: i, "generation": 1, "queued_at": now} for i in chunk]
        stmt = _insert(conn)(pending)
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=[column],
                set_={"generation": pending.c.generation + 1, "queued_at": stmt.excluded.queued_at},
            ),
            rows,
        )
    return len(ids)


def enqueue_ids(conn: Connection, ids: Iterable[int], now: datetime | None = None) -> int:
    return _enqueue(conn, runtime_pending, "execution_id", ids, now)


def enqueue_activity_ids(conn: Connection, ids: Iterable[int], now: datetime | None = None) -> int:
    return _enqueue(conn, runtime_activity_pending, "activity_id", ids, now)


def _stored_ids(conn: Connection, table: Table, cluster_id: str, cols: tuple, keys: list[tuple]) -> list[int]:
    ids: list[int] = []
    for chunk in chunks(keys):
        ids += conn.execute(
            select(table.c.id).where(table.c.cluster_id == cluster_id, tuple_(*cols).in_(chunk))
        ).scalars()
    return ids


def _enqueue_stored(conn: Connection, cluster_id: str, cols: tuple, keys: list[tuple]) -> int:
    """Queue the stored executions of ``keys`` as ``enqueue_ids`` does, each chunk in one INSERT ... SELECT:
    the ids never come back to this process (a round trip and a statement less per runtime batch)."""
    queued = 0
    now = utcnow()
    for chunk in chunks(sorted(set(keys))):
        stored = (
            select(executions.c.id, literal(1), literal(now, runtime_pending.c.queued_at.type))
            .where(executions.c.cluster_id == cluster_id, tuple_(*cols).in_(chunk))
            # In id order, as enqueue_ids: concurrent batches lock queue rows in one order, never deadlock.
            .order_by(executions.c.id)
        )
        stmt = _insert(conn)(runtime_pending).from_select(["execution_id", "generation", "queued_at"], stored)
        result = conn.execute(
            stmt.on_conflict_do_update(
                index_elements=["execution_id"],
                set_={"generation": runtime_pending.c.generation + 1, "queued_at": stmt.excluded.queued_at},
            )
        )
        queued += result.rowcount
    return queued


def enqueue_batch(conn: Connection, batch: RuntimeBatch) -> int:
    """Queue the stored rows of a batch's container records and activities (host processes are not analysed)."""
    keys = [(r.container_id, r.kind, r.sha256 or "", r.path) for r in batch.records if r.container_id]
    cols = (executions.c.container_id, executions.c.kind, executions.c.sha256, executions.c.path)
    queued = _enqueue_stored(conn, batch.cluster_id, cols, keys)
    a = runtime_activities.c
    akeys = [(x.container_id, x.kind, x.target) for x in batch.activities if x.container_id]
    ids = _stored_ids(conn, runtime_activities, batch.cluster_id, (a.container_id, a.kind, a.target), akeys)
    # The sensor ships an exec after hashing its file, often after what the process then did: an activity
    # seen since an exec this batch reports is judged again, now that its process's exec (executable,
    # argv, parent) is known.
    since: dict[str, datetime] = {}
    for r in batch.records:
        if r.container_id and r.kind == "executable":
            since[r.container_id] = min(since.get(r.container_id, r.first_seen), r.first_seen)
    if since:
        # One query from the earliest of those execs, each container's own bound applied here: a query per
        # container was most of an ingest request's statements.
        earliest = min(since.values())
        for chunk in chunks(sorted(since)):
            rows = conn.execute(
                select(a.id, a.container_id, a.last_seen_at).where(
                    a.cluster_id == batch.cluster_id, a.container_id.in_(chunk), a.last_seen_at >= earliest
                )
            )
            ids += [row.id for row in rows if as_utc(row.last_seen_at) >= since[row.container_id]]
    return queued + enqueue_activity_ids(conn, ids)


def _of_digest(table: Table, digest: str):
    return (
        select(table.c.id)
        .join(
            containers,
            (containers.c.cluster_id == table.c.cluster_id) & (containers.c.container_id == table.c.container_id),
        )
        .join(images, images.c.id == containers.c.image_pk)
        .where(images.c.digest == digest, table.c.container_id != "")
    )


def enqueue_digest(conn: Connection, digest: str) -> int:
    """Queue every record and activity of every container that runs ``digest``."""
    n = enqueue_ids(conn, conn.execute(_of_digest(executions, digest)).scalars())
    return n + enqueue_activity_ids(conn, conn.execute(_of_digest(runtime_activities, digest)).scalars())


def _claim(
    conn: Connection,
    pending: Table,
    pending_id: Any,
    record: Table,
    columns: Sequence[Any],
    scans_done: bool,
    limit: int,
) -> Sequence[Row[*tuple[Any, ...]]]:
    # The join below is planned from the inventory side on SQLite; with nothing queued (the
    # usual case when inventory deltas wake the analyzer) it would still walk every container.
    if conn.execute(select(pending_id).limit(1)).first() is None:
        return []
    e, c, p, i, s, w = record, containers, pods, images, image_scans, workloads
    # Exec records need the image's files; activities only a settled scan (done, or failed: judged
    # without the image's files rather than never).
    settled = (s.c.status == "done") if scans_done else s.c.status.in_(("done", "failed"))
    stmt = (
        select(
            pending_id,
            pending.c.generation,
            e.c.cluster_id,
            e.c.node_name,
            e.c.container_id,
            e.c.pod_uid,
            e.c.kind,
            *columns,
            e.c.first_seen_at,
            e.c.last_seen_at,
            e.c.count,
            e.c.samples,
            c.c.name.label("container_name"),
            c.c.image_pk,
            c.c.image.label("image_ref"),
            i.c.digest,
            s.c.status.label("scan_status"),
            s.c.finished_at.label("scan_finished_at"),
            s.c.matched_revision,
            p.c.namespace,
            p.c.name.label("pod_name"),
            p.c.workload_kind,
            p.c.workload_name,
            p.c.labels.label("pod_labels"),
            w.c.labels.label("workload_labels"),
            clusters.c.name.label("cluster_name"),
        )
        .select_from(
            pending.join(e, e.c.id == pending_id)
            .join(c, (c.c.cluster_id == e.c.cluster_id) & (c.c.container_id == e.c.container_id))
            .join(p, (p.c.cluster_id == c.c.cluster_id) & (p.c.uid == c.c.pod_uid))
            .join(i, i.c.id == c.c.image_pk)
            .join(s, (s.c.digest == i.c.digest) & settled)
            .join(clusters, clusters.c.id == e.c.cluster_id)
            .outerjoin(
                w,
                (w.c.cluster_id == p.c.cluster_id)
                & (w.c.namespace == p.c.namespace)
                & (w.c.kind == p.c.workload_kind)
                & (w.c.name == p.c.workload_name),
            )
        )
        .order_by(pending.c.queued_at, pending_id)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        # Several service replicas: each takes other records.
        stmt = stmt.with_for_update(of=pending, skip_locked=True)
    return conn.execute(stmt).all()


def claim_ready(conn: Connection, limit: int) -> Sequence[Row[*tuple[Any, ...]]]:
    """Queued records whose container is known and whose image is scanned, with what they join to."""
    e = executions
    return _claim(conn, runtime_pending, runtime_pending.c.execution_id, e, (e.c.path, e.c.sha256), True, limit)


def claim_ready_activities(conn: Connection, limit: int) -> Sequence[Row[*tuple[Any, ...]]]:
    """Queued activities whose container is known and whose image's scan is settled, with what they join to."""
    a = runtime_activities
    return _claim(
        conn,
        runtime_activity_pending,
        runtime_activity_pending.c.activity_id,
        a,
        (a.c.target, a.c.upper_layer, a.c.detail),
        False,
        limit,
    )


def finish(conn: Connection, done: Sequence[tuple[int, int]], pending: Table = runtime_pending) -> None:
    """Dequeue analysed records (or activities: ``pending`` = runtime_activity_pending), unless they
    were queued again meanwhile (a newer generation)."""
    key = pending.c.execution_id if pending is runtime_pending else pending.c.activity_id
    for chunk in chunks(done):
        conn.execute(delete(pending).where(tuple_(key, pending.c.generation).in_(list(chunk))))


def pending_counts(conn: Connection, activities: bool = False) -> dict[str, int]:
    """Queued records (or activities) by what they wait for: the inventory (container unknown), the scan,
    or the analyzer. An activity is judged after a failed scan too, so it counts as ready then."""
    if activities:
        q, e, key = runtime_activity_pending, runtime_activities, runtime_activity_pending.c.activity_id
    else:
        q, e, key = runtime_pending, executions, runtime_pending.c.execution_id
    c, i, s = containers, images, image_scans
    rows = conn.execute(
        select(c.c.container_id.is_(None), s.c.status, func.count())
        .select_from(
            q.join(e, e.c.id == key)
            .outerjoin(c, (c.c.cluster_id == e.c.cluster_id) & (c.c.container_id == e.c.container_id))
            .outerjoin(i, i.c.id == c.c.image_pk)
            .outerjoin(s, s.c.digest == i.c.digest)
        )
        .group_by(c.c.container_id.is_(None), s.c.status)
    ).all()
    out = {"waiting_for_inventory": 0, "waiting_for_scan": 0, "scan_failed": 0, "ready": 0}
    for no_container, status, n in rows:
        if no_container:
            out["waiting_for_inventory"] += n
        elif status == "done" or (activities and status == "failed"):
            out["ready"] += n
        elif status == "failed":
            out["scan_failed"] += n
        else:
            out["waiting_for_scan"] += n
    return out


# -- digests whose contents or matches changed ----------------------------------------------------


def changed_digests(conn: Connection) -> Sequence[Row[*tuple[Any, ...]]]:
    """Scanned digests whose scan or advisory match differs from what the analyzer last used."""
    s, st = image_scans, runtime_digest_state
    stmt = (
        select(s.c.digest, s.c.finished_at, s.c.matched_revision)
        .select_from(s.outerjoin(st, st.c.digest == s.c.digest))
        .where(
            s.c.status == "done",
            or_(
                st.c.digest.is_(None),
                st.c.scan_finished_at.is_distinct_from(s.c.finished_at),
                st.c.matched_revision.is_distinct_from(s.c.matched_revision),
            ),
        )
    )
    return conn.execute(stmt).all()


def mark_digest(conn: Connection, digest: str, finished_at, matched_revision: str | None) -> None:
    values = dict(scan_finished_at=finished_at, matched_revision=matched_revision, updated_at=utcnow())
    stmt = _insert(conn)(runtime_digest_state).values(digest=digest, **values)
    conn.execute(stmt.on_conflict_do_update(index_elements=["digest"], set_=values))


# -- what the joins read --------------------------------------------------------------------------


def container_samples(conn: Connection, cluster_id: str, container_ids: Iterable[str]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    ids = sorted(set(container_ids))
    for chunk in chunks(ids):
        for cid, samples in conn.execute(
            select(executions.c.container_id, executions.c.samples).where(
                executions.c.cluster_id == cluster_id,
                executions.c.container_id.in_(chunk),
                executions.c.kind == "executable",
            )
        ):
            out.setdefault(cid, []).extend(samples or [])
    return out


def container_executables(conn: Connection, cluster_id: str, container_ids: Iterable[str]) -> dict[str, dict[str, str]]:
    """container id -> {executed path: sha256}: names the file of the process behind an activity."""
    out: dict[str, dict[str, str]] = {}
    for chunk in chunks(sorted(set(container_ids))):
        for cid, path, sha in conn.execute(
            select(executions.c.container_id, executions.c.path, executions.c.sha256).where(
                executions.c.cluster_id == cluster_id,
                executions.c.container_id.in_(chunk),
                executions.c.kind == "executable",
                executions.c.sha256 != "",
            )
        ):
            out.setdefault(cid, {})[path] = sha
    return out


def image_contents(conn: Connection, digest: str):
    """(files: path -> sha256, symlinks: path -> target, packages: [(row, files)], vulnerabilities rows)."""
    files: dict[str, str | None] = {}
    symlinks: dict[str, str] = {}
    for path, kind, sha, target in conn.execute(
        select(image_files.c.path, image_files.c.kind, image_files.c.sha256, image_files.c.target).where(
            image_files.c.digest == digest
        )
    ):
        if kind == "symlink":
            symlinks[path] = target or ""
        else:
            files[path] = sha
    packages = conn.execute(
        select(
            image_packages.c.id,
            image_packages.c.type,
            image_packages.c.name,
            image_packages.c.version,
            image_packages.c.purl,
            image_packages.c.found_in,
            image_packages.c.files,
        )
        .where(image_packages.c.digest == digest)
        .order_by(image_packages.c.id)
    ).all()
    v = image_vulnerabilities
    vulns = conn.execute(
        select(v.c.package_id, *VULNERABILITY_COLUMNS).where(v.c.digest == digest).order_by(v.c.id)
    ).all()
    return files, symlinks, packages, vulns


# -- the allow-list -------------------------------------------------------------------------------


def _allow_dict(r) -> dict:
    return {
        "id": r.id,
        "rule": r.rule,
        "cluster": r.cluster or None,
        "namespace": r.namespace or None,
        "workload": r.workload or None,
        "labels": r.labels,
        "reason": r.reason,
        "created_at": iso(r.created_at),
        "created_by": r.created_by,
    }


def list_allow(conn: Connection) -> list[dict]:
    return [_allow_dict(r) for r in conn.execute(select(runtime_allow).order_by(runtime_allow.c.id))]


def describe_allow(entry: Mapping[str, Any]) -> str:
    """An allow-list entry in words, for the history of rule changes."""
    scope = [f"{k} {entry[k]}" for k in ("cluster", "namespace", "workload") if entry.get(k)]
    scope += [f"label {k}={v}" for k, v in sorted((entry.get("labels") or {}).items())]
    return f"{', '.join(scope) or 'every workload'} ({entry.get('reason', '')})"


def record_change(conn: Connection, rule: str, change: str, actor: str) -> None:
    conn.execute(runtime_rule_changes.insert().values(rule=rule, change=change, at=utcnow(), by=actor))


def rule_changes(conn: Connection, limit: int = 100, rule: str | None = None) -> list[dict]:
    """The latest changes of rule severities and allow-lists, newest first."""
    c = runtime_rule_changes.c
    stmt = select(runtime_rule_changes).order_by(c.id.desc()).limit(limit)
    if rule is not None:
        stmt = stmt.where(c.rule == rule)
    return [{"id": r.id, "rule": r.rule, "change": r.change, "at": iso(r.at), "by": r.by} for r in conn.execute(stmt)]


def severities(conn: Connection) -> dict[str, str]:
    """rule id -> the severity an admin set (rules without one keep their default)."""
    return {r.rule: r.severity for r in conn.execute(select(runtime_rule_settings))}


def rule_settings(conn: Connection) -> dict[str, dict]:
    return {
        r.rule: {"severity": r.severity, "updated_at": iso(r.updated_at), "updated_by": r.updated_by}
        for r in conn.execute(select(runtime_rule_settings))
    }


def set_severity(conn: Connection, rule: str, severity: str, default: str, actor: str) -> str | None:
    """Set a rule's severity (its default removes the setting); the previous one, or None when unchanged."""
    before = severities(conn).get(rule, default)
    if before == severity:
        return None
    conn.execute(delete(runtime_rule_settings).where(runtime_rule_settings.c.rule == rule))
    if severity != default:
        conn.execute(
            runtime_rule_settings.insert().values(rule=rule, severity=severity, updated_at=utcnow(), updated_by=actor)
        )
    record_change(conn, rule, f"severity {before} -> {severity}", actor)
    return before


def rule_views(conn: Connection) -> list[dict]:
    """Every runtime rule with the severity its findings take and who set it, in table order."""
    settings = rule_settings(conn)
    out = []
    for r in RULES:
        s = settings.get(r.id, {})
        out.append(
            {**r.as_dict(s.get("severity")), "updated_at": s.get("updated_at"), "updated_by": s.get("updated_by")}
        )
    return out


class UnknownRule(LookupError):
    pass


def set_rule_severity(conn: Connection, rule_id: str, severity: str, actor: str) -> dict:
    """Set ``rule_id``'s severity (recorded in the history) and return the rule as listed."""
    rule = RULES_BY_ID.get(rule_id)
    if rule is None:
        raise UnknownRule(f"rule {rule_id!r} is not one of {', '.join(RULES_BY_ID)}")
    set_severity(conn, rule.id, severity, rule.severity, actor)
    return next(v for v in rule_views(conn) if v["id"] == rule.id)


def add_allow(
    conn: Connection, rule: str, cluster: str, namespace: str, workload: str, labels: dict, reason: str, actor: str
) -> dict:
    result = conn.execute(
        runtime_allow.insert().values(
            rule=rule,
            cluster=cluster,
            namespace=namespace,
            workload=workload,
            labels=labels,
            reason=reason,
            created_at=utcnow(),
            created_by=actor,
        )
    )
    row = conn.execute(select(runtime_allow).where(runtime_allow.c.id == inserted_id(result))).one()
    entry = _allow_dict(row)
    record_change(conn, rule, f"allowed for {describe_allow(entry)}", actor)
    return entry


def delete_allow(conn: Connection, entry_id: int, actor: str = "") -> bool:
    row = conn.execute(select(runtime_allow).where(runtime_allow.c.id == entry_id)).first()
    if row is None:
        return False
    conn.execute(delete(runtime_allow).where(runtime_allow.c.id == entry_id))
    record_change(conn, row.rule, f"allow-list entry {entry_id} removed: {describe_allow(_allow_dict(row))}", actor)
    return True


def allow_rows(conn: Connection) -> Sequence[Row[*tuple[Any, ...]]]:
    return conn.execute(select(runtime_allow).order_by(runtime_allow.c.id)).all()


__all__ = [
    "add_allow",
    "allow_rows",
    "changed_digests",
    "claim_ready",
    "claim_ready_activities",
    "container_executables",
    "container_samples",
    "delete_allow",
    "enqueue_activity_ids",
    "enqueue_batch",
    "enqueue_digest",
    "enqueue_ids",
    "record_change",
    "rule_changes",
    "rule_settings",
    "rule_views",
    "set_rule_severity",
    "set_severity",
    "severities",
    "finish",
    "image_contents",
    "list_allow",
    "mark_digest",
    "pending_counts",
]
