"""The runtime analyzer: queued runtime records and activities -> joins -> findings, promptly.

Runtime ingest queues the batch's records in its own transaction and wakes the analyzer, which
takes every record that is ready (container in the inventory, image scanned), evaluates it
against its image (``evaluate``), and opens or refreshes findings, all in one transaction, so a
finding is visible within milliseconds of the batch reaching the service. Records that are not
ready stay queued; a completed scan or a new advisory match queues again the records of every
container running that digest, so nothing is lost and nothing is guessed. A periodic pass
labels vulnerable packages that were not observed running (``labels``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Engine

from vigil.background import PeriodicTask
from vigil.clock import as_utc
from vigil.service.analysis.runtime.evaluate import Evaluation, ImageView, activity_detections, dedup_key, evaluate
from vigil.service.analysis.runtime.loads import load_detections
from vigil.service.analysis.runtime.model import (
    Activity,
    ActivitySample,
    ContainerProcesses,
    ExecRecord,
    PackageRef,
    Sample,
    VulnerabilityRef,
    Workload,
)
from vigil.service.analysis.runtime.paths import ImageFileSystem
from vigil.service.analysis.runtime.rules import AllowEntry
from vigil.service.store import findings as finding_store
from vigil.service.store import runtime_analysis as store
from vigil.service.store import runtime_labels as labels
from vigil.service.store.schema import runtime_activity_pending

log = logging.getLogger(__name__)
ACTOR = "runtime"
DEFAULT_WATCH_PERIOD = 24 * 3600.0
MAX_SUBJECT = 1024


@dataclass
class PassReport:
    digests_requeued: int = 0
    analysed: int = 0
    unjudged: int = 0
    silenced: int = 0
    changes: Counter = field(default_factory=Counter)
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return {
            "digests_requeued": self.digests_requeued,
            "analysed": self.analysed,
            "unjudged": self.unjudged,
            "silenced": self.silenced,
            "changes": dict(self.changes),
            "seconds": round(self.seconds, 4),
        }


def _record(row) -> ExecRecord:
    return ExecRecord(
        id=row.execution_id,
        cluster_id=row.cluster_id,
        node_name=row.node_name,
        container_id=row.container_id,
        pod_uid=row.pod_uid,
        kind=row.kind,
        path=row.path,
        sha256=row.sha256 or None,
        first_seen=as_utc(row.first_seen_at),
        last_seen=as_utc(row.last_seen_at),
        count=row.count,
        samples=tuple(Sample.from_wire(s) for s in row.samples or ()),
    )


def _activity(row) -> Activity:
    return Activity(
        id=row.activity_id,
        cluster_id=row.cluster_id,
        node_name=row.node_name,
        container_id=row.container_id,
        pod_uid=row.pod_uid,
        kind=row.kind,
        target=row.target,
        upper_layer=row.upper_layer,
        detail=dict(row.detail or {}),
        first_seen=as_utc(row.first_seen_at),
        last_seen=as_utc(row.last_seen_at),
        count=row.count,
        samples=tuple(ActivitySample.from_wire(s) for s in row.samples or ()),
    )


def _workload(row) -> Workload:
    return Workload(
        cluster_id=row.cluster_id,
        cluster_name=row.cluster_name,
        namespace=row.namespace,
        kind=row.workload_kind,
        name=row.workload_name,
        pod_name=row.pod_name,
        container_name=row.container_name,
        image_pk=row.image_pk,
        image_ref=row.image_ref,
        digest=row.digest,
        labels={**(row.workload_labels or {}), **(row.pod_labels or {})},
    )


def _changed(report: PassReport) -> int:
    """How many observations so far changed a finding (and so added to its history)."""
    return sum(n for change, n in report.changes.items() if change not in ("unchanged", "suppressed"))


def _allow_entry(r) -> AllowEntry:
    return AllowEntry(r.id, r.rule, r.cluster, r.namespace, r.workload, dict(r.labels or {}), r.reason)


class RuntimeAnalyzer:
    def __init__(
        self,
        engine: Engine,
        *,
        watch_period: float = DEFAULT_WATCH_PERIOD,
        label_interval: float = 30.0,
        chunk: int = 1000,
        cache_size: int = 32,
        on_findings: Callable[[], None] = lambda: None,
    ) -> None:
        if watch_period < 0:
            raise ValueError(f"watch period {watch_period} must not be negative")
        self.engine = engine
        self.watch_period = watch_period
        self.label_interval = label_interval
        self.chunk = chunk
        self._images: OrderedDict[tuple, ImageView] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()  # one pass at a time
        self._task = PeriodicTask("vigil-runtime-analysis", self.run_pass, "runtime analysis pass")
        self._labelled_at = 0.0
        self._unjudged_logged: set[int] = set()
        self.last_report: PassReport | None = None
        # Called after a transaction of a pass that changed findings committed: this process's
        # findings streams send them at once instead of at their next poll.
        self.on_findings = on_findings

    # -- one pass -------------------------------------------------------------------------------

    def run_pass(self, *, labels_now: bool = False) -> PassReport:
        with self._lock:
            started = time.perf_counter()
            report = PassReport()
            with self.engine.begin() as conn:
                for digest, finished_at, revision in store.changed_digests(conn):
                    store.enqueue_digest(conn, digest)
                    store.mark_digest(conn, digest, finished_at, revision)
                    report.digests_requeued += 1
            while True:
                changed = _changed(report)
                with self.engine.begin() as conn:
                    rows = store.claim_ready(conn, self.chunk)
                    if not rows:
                        break
                    self._analyse(conn, rows, report)
                if _changed(report) != changed:
                    self.on_findings()
                if len(rows) < self.chunk:
                    break
            while True:
                changed = _changed(report)
                with self.engine.begin() as conn:
                    rows = store.claim_ready_activities(conn, self.chunk)
                    if not rows:
                        break
                    self._analyse_activities(conn, rows, report)
                if _changed(report) != changed:
                    self.on_findings()
                if len(rows) < self.chunk:
                    break
            if labels_now or time.monotonic() - self._labelled_at >= self.label_interval:
                self._labelled_at = time.monotonic()
                with self.engine.begin() as conn:
                    label_counts = labels.refresh(conn, self.watch_period)
                    resolved = labels.resolve_stopped(conn, ACTOR)
                report.changes["resolved"] += resolved
                if label_counts.get("changed"):
                    log.info("vulnerability runtime labels", extra=label_counts)
            report.seconds = time.perf_counter() - started
            self.last_report = report
            if report.analysed or report.changes:
                log.info("runtime analysis pass", extra=report.as_dict())
            return report

    def _image(self, conn, row) -> ImageView:
        key = (row.digest, row.scan_finished_at, row.matched_revision)
        view = self._images.get(key)
        if view is not None:
            self._images.move_to_end(key)
            return view
        files, symlinks, packages, vulns = store.image_contents(conn, row.digest)
        view = ImageView.build(
            row.digest,
            ImageFileSystem(files, symlinks),
            [(PackageRef(p.id, p.type, p.name, p.version, p.purl, p.found_in), p.files or []) for p in packages],
            [
                VulnerabilityRef(
                    v.package_id,
                    v.vuln_id,
                    v.key_id,
                    tuple(v.advisory_ids or ()),
                    tuple(v.aliases or ()),
                    v.severity,
                    v.score,
                    tuple(v.fixed_versions or ()),
                    bool(v.malicious),
                    v.summary or "",
                    tuple(v.links or ()),
                )
                for v in vulns
            ],
        )
        self._images[key] = view
        while len(self._images) > self._cache_size:
            self._images.popitem(last=False)
        return view

    def _processes(self, conn, rows) -> dict[tuple[str, str], ContainerProcesses]:
        by_cluster: dict[str, set[str]] = {}
        for row in rows:
            by_cluster.setdefault(row.cluster_id, set()).add(row.container_id)
        processes: dict[tuple[str, str], ContainerProcesses] = {}
        for cid, containers in by_cluster.items():
            for container, samples in store.container_samples(conn, cid, containers).items():
                processes[(cid, container)] = ContainerProcesses.from_samples([Sample.from_wire(s) for s in samples])
        return processes

    def _observe(self, conn, result: Evaluation, workload: Workload, report: PassReport) -> None:
        report.silenced += len(result.silenced)
        for d in result.detections:
            obs = finding_store.Observation(
                dedup_key=dedup_key(d, workload),
                type=d.type,
                severity=d.severity,
                subject=d.subject[:MAX_SUBJECT],
                evidence=d.evidence,
                cluster_id=workload.cluster_id,
                namespace=workload.namespace,
                workload_kind=workload.kind,
                workload_name=workload.name,
                image_pk=workload.image_pk,
                subject_key=d.key,
            )
            _, change = finding_store.observe(conn, obs, actor=ACTOR)
            report.changes[change] += 1
        report.analysed += 1

    def _analyse(self, conn, rows, report: PassReport) -> None:
        allow = [_allow_entry(r) for r in store.allow_rows(conn)]
        severities = store.severities(conn)
        processes = self._processes(conn, rows)
        done = []
        for row in rows:
            record, workload = _record(row), _workload(row)
            procs = processes.get((row.cluster_id, row.container_id), ContainerProcesses(None, frozenset()))
            result = evaluate(record, workload, self._image(conn, row), procs, allow, severities)
            if result.unjudged:
                report.unjudged += 1
                if record.id not in self._unjudged_logged and len(self._unjudged_logged) < 100_000:
                    self._unjudged_logged.add(record.id)
                    log.warning(
                        "runtime record not judged against its image: %s",
                        result.unjudged,
                        extra={
                            "cluster_id": record.cluster_id,
                            "container_id": record.container_id,
                            "path": record.path,
                        },
                    )
            self._observe(conn, result, workload, report)
            done.append((row.execution_id, row.generation))
        store.finish(conn, done)

    def _analyse_activities(self, conn, rows, report: PassReport) -> None:
        allow = [_allow_entry(r) for r in store.allow_rows(conn)]
        severities = store.severities(conn)
        processes = self._processes(conn, rows)
        executables: dict[tuple[str, str], dict[str, str]] = {}
        for cid in {row.cluster_id for row in rows}:
            found = store.container_executables(conn, cid, {r.container_id for r in rows if r.cluster_id == cid})
            executables.update({(cid, c): paths for c, paths in found.items()})
        done = []
        for row in rows:
            activity, workload = _activity(row), _workload(row)
            key = (row.cluster_id, row.container_id)
            procs = processes.get(key, ContainerProcesses(None, frozenset()))
            # A failed scan leaves the image's files unknown: the rules that need them stay silent.
            fs = self._image(conn, row).fs if row.scan_status == "done" else None
            result = activity_detections(activity, workload, procs, fs, allow, executables.get(key, {}), severities)
            if activity.kind == "package_load" and fs is not None:
                result.detections += load_detections(
                    activity, workload, self._image(conn, row), procs, executables.get(key, {})
                )
            self._observe(conn, result, workload, report)
            done.append((row.activity_id, row.generation))
        store.finish(conn, done, runtime_activity_pending)

    # -- in the background ----------------------------------------------------------------------

    def wake(self) -> None:
        """Ask for a pass now (runtime ingest calls this after each applied batch)."""
        self._task.wake()

    def start(self, tick: float = 0.5, gate: Callable[[], bool] | None = None) -> None:
        self._task.start(tick, gate)

    def stop(self) -> None:
        self._task.stop()
