"""The integrity evaluator: running images -> trust and registry checks -> verdicts and findings in the store.

One pass (``run_pass``) evaluates every (image, cluster) pair that is due: never
evaluated (a new or changed running image), evaluated under another policy
revision, or past its ``next_check_at`` (the reverify interval after a verdict,
a shorter backoff after ``unknown``). Registry questions run concurrently, at most
``registry_concurrency`` at a time per registry (a thread pool each), so one slow
registry neither holds up another nor gets more than that many requests at once;
the client's caches make a warm pass cost no requests. A verdict needs one HEAD of
the tag (a GET for a digest whose provenance is not stored yet: its manifest is read
next); provenance (the config blob, once per digest) is fetched after the verdicts
and findings are committed, by a recorder of its own between passes
(``jobs/provenance.py``), so a pass never waits for labels. A registry found
unreachable is not asked again in the same pass: its remaining images are
``unknown`` with the same error, and are retried with backoff.

Findings open per (type, cluster, namespace, workload, image) and resolve when
the condition ends (a definite verdict without it) or the workload stops running
the image; an ``unknown`` verdict leaves existing findings as they are.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from queue import Empty, SimpleQueue

from sqlalchemy import Engine

from vigil.background import PeriodicTask
from vigil.clock import utcnow
from vigil.model.findings import INTEGRITY_TYPES, Family, FindingStatus, FindingType
from vigil.model.image import ImageRef, digest_error
from vigil.policy.integrity import Status, Verdict, judge, not_asked
from vigil.policy.trust import TrustDecision, TrustPolicy
from vigil.registry import RegistryClient
from vigil.registry.probe import RegistryAnswer, probe
from vigil.service.jobs.provenance import ProvenanceRecorder, Turns
from vigil.service.store import findings as finding_store
from vigil.service.store import integrity as store
from vigil.service.store.policy import load_policy

log = logging.getLogger(__name__)

DEFAULT_REVERIFY_INTERVAL = 300.0
DEFAULT_RETRY_BASE = 15.0
DEFAULT_REGISTRY_CONCURRENCY = 8
ACTOR = "integrity"


@dataclass
class PassReport:
    due: int = 0
    evaluated: int = 0
    statuses: Counter = field(default_factory=Counter)
    opened: int = 0
    resolved: int = 0
    requests: int = 0
    seconds: float = 0.0
    verdict_seconds: float = 0.0  # from the start until every verdict and finding is committed
    provenance_due: int = 0  # digests handed to the provenance recorder (fetched after the pass)

    def as_dict(self) -> dict:
        return {
            "due": self.due,
            "evaluated": self.evaluated,
            "statuses": dict(self.statuses),
            "opened": self.opened,
            "resolved": self.resolved,
            "requests": self.requests,
            "provenance_due": self.provenance_due,
            "seconds": round(self.seconds, 4),
            "verdict_seconds": round(self.verdict_seconds, 4),
        }


@dataclass(frozen=True)
class _Pair:
    """One image in one cluster, with every workload there running it."""

    cluster_id: str
    cluster_name: str
    image_pk: int
    ref: ImageRef | None
    digest: str | None
    workloads: tuple[store.RunningImage, ...]


def _image_ref(r: store.RunningImage) -> ImageRef | None:
    if not r.registry:
        return None  # the ingest kept an unparseable image string as it was
    return ImageRef(r.registry, r.repository, r.tag or None, None)


def _pairs(running: list[store.RunningImage]) -> list[_Pair]:
    grouped: dict[tuple[str, int], list[store.RunningImage]] = defaultdict(list)
    for r in running:
        grouped[(r.cluster_id, r.image_pk)].append(r)
    out = []
    for (cid, pk), rows in sorted(grouped.items()):
        first = rows[0]
        digest = first.digest if first.digest and digest_error(first.digest) is None else None
        out.append(_Pair(cid, first.cluster_name, pk, _image_ref(first), digest, tuple(rows)))
    return out


class IntegrityEvaluator:
    def __init__(
        self,
        engine: Engine,
        client: RegistryClient,
        *,
        reverify_interval: float = DEFAULT_REVERIFY_INTERVAL,
        retry_base: float = DEFAULT_RETRY_BASE,
        registry_concurrency: int = DEFAULT_REGISTRY_CONCURRENCY,
        record_provenance: bool = True,
    ) -> None:
        if reverify_interval <= 0:
            raise ValueError(f"reverify interval {reverify_interval} must be positive")
        if registry_concurrency < 1:
            raise ValueError(f"registry concurrency {registry_concurrency} must be at least 1 request at a time")
        self.engine = engine
        self.client = client
        self.reverify_interval = reverify_interval
        self.retry_base = min(retry_base, reverify_interval)
        self.registry_concurrency = registry_concurrency
        self.record_provenance = record_provenance
        self._turns = Turns()  # one pass at a time, and provenance only between passes
        self.provenance = ProvenanceRecorder(
            engine,
            client,
            self._turns,
            lambda items, fn: self._per_registry(items, lambda item: item[1].registry, fn, "vigil-provenance"),
        )
        self._task = PeriodicTask("vigil-integrity", self.run_pass, "integrity pass")
        self.last_report: PassReport | None = None

    # -- one pass -------------------------------------------------------------------------------

    def run_pass(self, *, force: bool = False, refresh: bool = False) -> PassReport:
        """Evaluate what is due (everything with ``force``); ``refresh`` drops cached tag answers first."""
        with self._turns.for_pass():
            started = time.perf_counter()
            requests_before = self.client.stats.requests
            if refresh:
                self.client.tag_cache.clear()
            report = self._run(force, started)
            report.requests = self.client.stats.requests - requests_before
            report.seconds = time.perf_counter() - started
            self.last_report = report
            if report.evaluated or report.resolved:
                log.info("integrity pass", extra=report.as_dict())
            return report

    def _run(self, force: bool, started: float) -> PassReport:
        now = utcnow()
        with self.engine.connect() as conn:
            policy = load_policy(conn)
            running = store.running_images(conn)
            states = store.load_states(conn)
        revision = policy.revision
        pairs = _pairs(running)
        due = [p for p in pairs if force or self._is_due(states.get((p.image_pk, p.cluster_id)), revision, now)]
        report = PassReport(due=len(due))
        decisions = {id(p): self._trust(policy, p) for p in due}
        unrecorded = self._unrecorded_provenance(due, decisions)
        answers = self._ask_registries(due, decisions, unrecorded)
        verdicts: dict[int, Verdict] = {}
        rows = []
        for p in due:
            state = states.get((p.image_pk, p.cluster_id))
            verdict = self._verdict(p, decisions[id(p)], answers, state, now)
            verdicts[id(p)] = verdict
            report.statuses[verdict.status.value] += 1
            rows.append(self._state_row(p, verdict, state, revision, now))
        with self.engine.begin() as conn:
            store.upsert_states(conn, rows)
            open_findings = finding_store.open_findings(conn, Family.INTEGRITY)
            report.opened, report.resolved = self._write_findings(conn, due, decisions, verdicts, open_findings)
            report.resolved += self._resolve_stopped(conn, running, open_findings)
        report.verdict_seconds = time.perf_counter() - started
        report.provenance_due = self.provenance.submit(self._provenance_wanted(due, decisions, verdicts, unrecorded))
        report.evaluated = len(due)
        return report

    def _is_due(self, state: store.IntegrityState | None, revision: str, now: datetime) -> bool:
        return state is None or state.policy_revision != revision or state.next_check_at <= now

    def _trust(self, policy: TrustPolicy, p: _Pair) -> TrustDecision | None:
        if p.ref is None:
            return None
        return policy.decide(p.ref.with_digest(p.digest) if p.digest else p.ref, (p.cluster_id, p.cluster_name))

    def _unrecorded_provenance(self, due: list[_Pair], decisions: dict) -> set[str]:
        """The running digests a trusted registry is asked about whose provenance is not stored."""
        if not self.record_provenance:
            return set()
        asked = {p.digest for p in due if p.digest and (d := decisions[id(p)]) is not None and d.trusted is True}
        if not asked:
            return set()
        with self.engine.connect() as conn:
            return asked - store.known_provenance(conn, asked)

    def _ask_registries(self, due: list[_Pair], decisions: dict, unrecorded: set[str]) -> dict[tuple, RegistryAnswer]:
        """Registry answers keyed by (effective image name, tag, running digest); each asked once.

        For a digest in ``unrecorded`` the manifest is taken with the answer (a GET for the HEAD),
        so its provenance costs only the config blob after the pass."""
        questions: dict[tuple, ImageRef] = {}
        for p in due:
            decision = decisions[id(p)]
            if decision is None or decision.trusted is not True or p.digest is None:
                continue
            eff = decision.effective
            questions.setdefault((eff.registry, eff.repository, eff.tag, p.digest), eff)
        down: dict[str, str] = {}
        down_lock = threading.Lock()

        def ask(key: tuple) -> tuple[tuple, RegistryAnswer]:
            eff = questions[key]
            with down_lock:
                known = down.get(eff.registry)
            if known is not None:
                return key, RegistryAnswer(error=known, error_kind="unreachable")
            answer = probe(self.client, eff, key[3], with_manifest=key[3] in unrecorded)
            if answer.error_kind == "unreachable":
                with down_lock:
                    down.setdefault(eff.registry, answer.error or "unreachable")
            return key, answer

        return dict(self._per_registry(list(questions), lambda k: k[0], ask, "vigil-integrity"))

    def _per_registry(self, items: list, registry_of: Callable, fn: Callable, name: str) -> list:
        """``fn`` of every item, in order, at most ``registry_concurrency`` at a time per registry, all registries
        at once: per registry that many threads take the next item until none is left (a future per item
        would cost more than answering from the client's caches does)."""
        if not items:
            return []
        groups: dict[str, list[int]] = defaultdict(list)
        for i, item in enumerate(items):
            groups[registry_of(item)].append(i)
        if len(items) == 1 or (self.registry_concurrency == 1 and len(groups) == 1):
            return [fn(item) for item in items]
        results: list = [None] * len(items)

        def drain(queue: SimpleQueue[int]) -> None:
            while True:
                try:
                    i = queue.get_nowait()
                except Empty:
                    return
                results[i] = fn(items[i])

        drainers: list[SimpleQueue[int]] = []
        for indexes in groups.values():
            queue: SimpleQueue[int] = SimpleQueue()
            for i in indexes:
                queue.put(i)
            drainers += [queue] * min(self.registry_concurrency, len(indexes))
        with ThreadPoolExecutor(max_workers=len(drainers), thread_name_prefix=name) as pool:
            for future in [pool.submit(drain, queue) for queue in drainers]:
                future.result()
        return results

    def _verdict(
        self, p: _Pair, decision: TrustDecision | None, answers: dict, state: store.IntegrityState | None, now: datetime
    ) -> Verdict:
        if decision is None:
            image = p.workloads[0].repository
            return Verdict(
                Status.UNKNOWN, (), {"image": image, "reason": "not a valid image reference; cannot be checked"}
            )
        if decision.trusted is None:
            return not_asked(p.digest, decision)
        answer = None
        if decision.trusted is True and p.digest is not None:
            eff = decision.effective
            answer = answers[(eff.registry, eff.repository, eff.tag, p.digest)]
        since = None
        if answer is not None and answer.tag_digest is not None:
            same = state is not None and state.registry_digest == answer.tag_digest
            kept = state.registry_digest_since if same and state is not None else None
            since = (kept or now).isoformat()
        verdict = judge(p.digest, decision, answer, tag_moved_since=since)
        if verdict.status is Status.UNKNOWN:
            log.warning(
                "registry could not answer; integrity unknown",
                extra={
                    "image": str(decision.effective),
                    "cluster_id": p.cluster_id,
                    "error": verdict.evidence.get("registry_answer"),
                },
            )
        return verdict

    def _state_row(
        self, p: _Pair, v: Verdict, state: store.IntegrityState | None, revision: str, now: datetime
    ) -> dict:
        failures = (state.failures + 1 if state else 1) if v.status is Status.UNKNOWN else 0
        if v.status is Status.UNKNOWN:
            wait = min(self.retry_base * 2 ** (failures - 1), self.reverify_interval)
        else:
            wait = self.reverify_interval
        since = None
        if v.registry_digest is not None:
            same = state is not None and state.registry_digest == v.registry_digest
            kept = state.registry_digest_since if same and state is not None else None
            since = kept or now
        elif v.status is Status.UNKNOWN and state is not None:
            # An unknown verdict says nothing about the tag: keep what we knew.
            return dict(
                image_pk=p.image_pk,
                cluster_id=p.cluster_id,
                status=v.status.value,
                verdict="",
                evidence=v.evidence,
                registry_digest=state.registry_digest,
                registry_digest_since=state.registry_digest_since,
                policy_revision=revision,
                checked_at=now,
                next_check_at=now + timedelta(seconds=wait),
                failures=failures,
            )
        return dict(
            image_pk=p.image_pk,
            cluster_id=p.cluster_id,
            status=v.status.value,
            verdict=",".join(f.type for f in v.findings),
            evidence=v.evidence,
            registry_digest=v.registry_digest,
            registry_digest_since=since,
            policy_revision=revision,
            checked_at=now,
            next_check_at=now + timedelta(seconds=wait),
            failures=failures,
        )

    def _provenance_wanted(
        self, due: list[_Pair], decisions: dict, verdicts: dict, unrecorded: set[str]
    ) -> dict[str, ImageRef]:
        """The running digests the trusted registry holds whose provenance is not stored, with where to ask."""
        wanted: dict[str, ImageRef] = {}
        for p in due:
            if not p.digest or p.digest not in unrecorded:
                continue
            v = verdicts[id(p)]
            if v.status is Status.VERIFIED or any(f.type == FindingType.TAG_MOVED for f in v.findings):
                wanted.setdefault(p.digest, decisions[id(p)].effective)
        return wanted

    def _write_findings(
        self,
        conn,
        due: list[_Pair],
        decisions: dict,
        verdicts: dict,
        open_findings: dict[str, finding_store.OpenFinding],
    ) -> tuple[int, int]:
        opened = resolved = 0
        by_pair: dict[tuple[str | None, int | None], list[finding_store.OpenFinding]] = defaultdict(list)
        for f in open_findings.values():
            by_pair[(f.cluster_id, f.image_pk)].append(f)
        for p in due:
            v = verdicts[id(p)]
            decision = decisions[id(p)]
            if v.definite:
                settled = set(INTEGRITY_TYPES)
            elif decision is not None and decision.trusted is not False:
                # Unknown or pending integrity still settles trust: the registry is trusted now.
                settled = {FindingType.UNTRUSTED_REGISTRY}
            else:
                continue  # nothing known: what was open stays open, nothing new opens
            present: set[str] = set()
            for spec in v.findings:
                for w in p.workloads:
                    key = store.dedup_key(spec.type, w)
                    present.add(key)
                    obs = finding_store.Observation(
                        dedup_key=key,
                        type=spec.type,
                        severity=spec.severity,
                        subject=f"{w.namespace}/{w.workload_kind}/{w.workload_name} runs {spec.evidence.get('image')}"[
                            :1024
                        ],
                        evidence=spec.evidence,
                        cluster_id=p.cluster_id,
                        namespace=w.namespace,
                        workload_kind=w.workload_kind,
                        workload_name=w.workload_name,
                        image_pk=p.image_pk,
                    )
                    _, change = finding_store.observe(conn, obs, actor=ACTOR)
                    opened += change in ("opened", "reopened")
            if v.status is Status.VERIFIED:
                reason = "condition ended: the registry confirms the running image"
            elif v.definite:
                reason = f"condition ended: verdict is now {v.verdict_name}"
            else:
                reason = f"condition ended: {decision.rule.describe() if decision.rule else 'trust not checked'}"

            for f in by_pair.get((p.cluster_id, p.image_pk), ()):
                if f.type in settled and f.dedup_key not in present and f.dedup_key in open_findings:
                    del open_findings[f.dedup_key]
                    finding_store.set_status(conn, f.id, FindingStatus.RESOLVED, reason, ACTOR)
                    resolved += 1
        return opened, resolved

    def _resolve_stopped(
        self, conn, running: list[store.RunningImage], open_findings: dict[str, finding_store.OpenFinding]
    ) -> int:
        """Resolve open integrity findings whose workload no longer runs their image."""
        live = {r.scope for r in running}
        n = 0
        for f in [f for f in open_findings.values() if f.scope not in live]:
            del open_findings[f.dedup_key]
            finding_store.set_status(
                conn, f.id, FindingStatus.RESOLVED, "the workload no longer runs this image", ACTOR
            )
            n += 1
        return n

    # -- in the background ----------------------------------------------------------------------

    def start(self, tick: float = 2.0, gate: Callable[[], bool] | None = None) -> None:
        """Run passes every ``tick`` seconds in a daemon thread until ``stop``."""
        self._task.start(tick, gate)

    def stop(self) -> None:
        self._task.stop()
        self.provenance.stop()

    @property
    def _thread(self):
        # The background thread while it runs (tests check it is gone after the service stops).
        return self._task._thread
