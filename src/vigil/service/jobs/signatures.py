"""The signature verifier: each running digest's signatures checked once, and each workload judged by the
signature rule that applies to it.

A digest is checked (discovery in its trusted registry, then `vigil.policy.signature_checks`) when it
is new, when the accepted keys change, or when its last check may be outdated: a digest with no
verified signature is asked again every reverify interval (a signature may be added after the push),
one the registry could not answer for after a backoff, and a verified digest never (content-addressed:
what signed it cannot change). Judging a workload reads only the stored checks, so a new workload
running a known digest, or a changed rule, costs no registry request.

The verifier runs only while the trust policy has signature rules; it asks only trusted registries,
where integrity asks (after the mirror rule that applies).
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

from sqlalchemy import Engine

from vigil.background import PeriodicTask
from vigil.clock import utcnow
from vigil.model.findings import SIGNATURE_TYPES, Family, FindingStatus
from vigil.model.image import ImageRef, digest_error
from vigil.policy.signature_checks import DigestSignatures, check_discovered, unknown
from vigil.policy.signature_rules import VerificationMaterial, material
from vigil.policy.signature_verdict import SignatureStatus
from vigil.policy.trust import TrustPolicy
from vigil.registry import RegistryClient
from vigil.registry.errors import RegistryError, Unreachable
from vigil.registry.signatures import discover
from vigil.service.store import findings as finding_store
from vigil.service.store import signatures as store
from vigil.service.store.integrity import RunningImage, running_images
from vigil.service.store.policy import load_policy
from vigil.service.store.signatures import effective_ref, judge
from vigil.signatures.trustroot import TrustedRoot, parse_trusted_root, public_good_root

log = logging.getLogger(__name__)

DEFAULT_REVERIFY_INTERVAL = 300.0
DEFAULT_RETRY_BASE = 15.0
ACTOR = "signatures"


@dataclass
class PassReport:
    due: int = 0
    checked: int = 0
    statuses: Counter = field(default_factory=Counter)
    judged: int = 0
    opened: int = 0
    resolved: int = 0
    requests: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return {
            "due": self.due,
            "checked": self.checked,
            "statuses": dict(self.statuses),
            "judged": self.judged,
            "opened": self.opened,
            "resolved": self.resolved,
            "requests": self.requests,
            "seconds": round(self.seconds, 4),
        }


class SignatureVerifier:
    def __init__(
        self,
        engine: Engine,
        client: RegistryClient,
        *,
        reverify_interval: float = DEFAULT_REVERIFY_INTERVAL,
        retry_base: float = DEFAULT_RETRY_BASE,
        workers: int = 4,
        trusted_root: bytes | None = None,
    ) -> None:
        if reverify_interval <= 0:
            raise ValueError(f"reverify interval {reverify_interval} must be positive")
        self.engine = engine
        self.client = client
        self.reverify_interval = reverify_interval
        self.retry_base = min(retry_base, reverify_interval)
        self.workers = workers
        self._root_bytes = trusted_root
        self._root: TrustedRoot | None = None
        self._lock = threading.Lock()
        self._task = PeriodicTask("vigil-signatures", self.run_pass, "signature pass")
        # scope -> (policy revision, checked_at of the digest) it was last judged under
        self._judged: dict[str, tuple[str, datetime | None]] = {}
        self.last_report: PassReport | None = None

    def root(self) -> TrustedRoot:
        if self._root is None:
            self._root = parse_trusted_root(self._root_bytes or public_good_root())
        return self._root

    # -- one pass -------------------------------------------------------------------------------

    def run_pass(self, *, force: bool = False) -> PassReport:
        """Check the digests that are due (every running one with ``force``), then judge the workloads
        whose digest or policy changed."""
        with self._lock:
            started = time.perf_counter()
            before = self.client.stats.requests
            report = self._run(force)
            report.requests = self.client.stats.requests - before
            report.seconds = time.perf_counter() - started
            self.last_report = report
            if report.checked or report.opened or report.resolved:
                log.info("signature pass", extra=report.as_dict())
            return report

    def _run(self, force: bool) -> PassReport:
        now = utcnow()
        with self.engine.connect() as conn:
            policy = load_policy(conn)
            running = running_images(conn)
            schedule = store.load_schedule(conn) if policy.signatures else {}
        report = PassReport()
        if not policy.signatures:
            with self.engine.begin() as conn:
                report.resolved = self._settle(conn, running, all_scopes=True)
            return report
        mat = material(policy.signatures)
        wanted: dict[str, ImageRef] = {}
        for r in running:
            eff, trusted = effective_ref(policy, r)
            if eff is None or trusted is not True or not r.digest or digest_error(r.digest):
                continue
            wanted.setdefault(r.digest, eff)
        due = {d: ref for d, ref in wanted.items() if force or self._is_due(schedule.get(d), mat, now)}
        report.due = len(due)
        checked = self._check(due, mat)
        unknown_before = [d for d, sigs in checked.items() if sigs.unknown is not None and d in schedule]
        if unknown_before:
            with self.engine.connect() as conn:
                kept = store.load_states(conn, unknown_before)
        else:
            kept = {}
        rows = []
        for digest, sigs in checked.items():
            previous = kept.get(digest)
            failures = (schedule[digest].failures + 1 if digest in schedule else 1) if sigs.unknown is not None else 0
            if sigs.status == "verified":
                next_at: datetime | None = None
            elif sigs.unknown is not None:
                next_at = now + timedelta(seconds=min(self.retry_base * 2 ** (failures - 1), self.reverify_interval))
            else:
                next_at = now + timedelta(seconds=self.reverify_interval)
            if sigs.unknown is not None and previous is not None and previous.material_revision == mat.revision:
                # An unreachable registry says nothing about the signatures: keep the last checks.
                sigs = DigestSignatures(
                    digest, previous.signatures.checks, sigs.unknown, previous.signatures.referrers_api
                )
            rows.append(store.state_row(sigs, mat.revision, now, next_at, failures))
            report.statuses[sigs.status] += 1
        report.checked = len(rows)
        with self.engine.begin() as conn:
            store.upsert_states(conn, rows)
            schedule = store.load_schedule(conn) if rows else schedule
            marks = {r.scope: (policy.revision, self._checked_at(schedule.get(r.digest), mat)) for r in running}
            stale = [r for r in running if self._judged.get(r.scope) != marks[r.scope]]
            if stale:
                states = store.load_states(conn, {r.digest for r in stale if r.digest})
                report.judged, report.opened, report.resolved = self._judge_all(conn, policy, stale, states, marks, mat)
            report.resolved += self._settle(conn, running)
        return report

    @staticmethod
    def _checked_at(state: store.Schedule | None, mat: VerificationMaterial) -> datetime | None:
        return state.checked_at if state is not None and state.material_revision == mat.revision else None

    def _is_due(self, state: store.Schedule | None, mat: VerificationMaterial, now: datetime) -> bool:
        if state is None or state.material_revision != mat.revision:
            return True
        return state.next_check_at is not None and state.next_check_at <= now

    def _check(self, due: dict[str, ImageRef], mat: VerificationMaterial) -> dict[str, DigestSignatures]:
        if not due:
            return {}
        root = self.root() if mat.keyless else None
        down: dict[str, str] = {}
        down_lock = threading.Lock()

        def check(item: tuple[str, ImageRef]) -> tuple[str, DigestSignatures]:
            digest, ref = item
            with down_lock:
                known = down.get(ref.registry)
            if known is not None:
                return digest, unknown(digest, known)
            try:
                found = discover(self.client, ref, [digest])
            except Unreachable as e:
                with down_lock:
                    down.setdefault(ref.registry, f"signatures could not be fetched: {e}")
                return digest, unknown(digest, f"signatures could not be fetched: {e}")
            except RegistryError as e:
                return digest, unknown(digest, f"signatures could not be fetched: {e}")
            return digest, check_discovered(found, digest, mat.keys, root)

        items = sorted(due.items())
        if self.workers <= 1 or len(items) == 1:
            return dict(check(i) for i in items)
        with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="vigil-signatures") as pool:
            return dict(pool.map(check, items))

    def _judge_all(
        self,
        conn,
        policy: TrustPolicy,
        stale: list[RunningImage],
        states: dict[str, store.SignatureState],
        marks: dict[str, tuple[str, datetime | None]],
        mat: VerificationMaterial,
    ) -> tuple[int, int, int]:
        """Open and resolve findings of the workloads whose digest was checked again or whose policy changed."""
        open_by_scope: dict[str, list[finding_store.OpenFinding]] = defaultdict(list)
        for f in finding_store.open_findings(conn, Family.SIGNATURES).values():
            open_by_scope[f.scope].append(f)
        judged = opened = resolved = 0
        for r in stale:
            mark = marks[r.scope]
            verdict = judge(policy, r, states.get(r.digest), mat.revision)
            judged += 1
            if not verdict.definite:
                self._judged[r.scope] = mark
                continue  # pending or unknown: what was open stays open, nothing new opens
            present: set[str] = set()
            for spec in verdict.findings:
                key = store.dedup_key(spec.type, r)
                present.add(key)
                obs = finding_store.Observation(
                    dedup_key=key,
                    type=spec.type,
                    severity=spec.severity,
                    subject=f"{r.namespace}/{r.workload_kind}/{r.workload_name} runs {spec.evidence.get('image')}"[
                        :1024
                    ],
                    evidence=spec.evidence,
                    cluster_id=r.cluster_id,
                    namespace=r.namespace,
                    workload_kind=r.workload_kind,
                    workload_name=r.workload_name,
                    image_pk=r.image_pk,
                )
                _, change = finding_store.observe(conn, obs, actor=ACTOR)
                opened += change in ("opened", "reopened")
            if verdict.status is SignatureStatus.VERIFIED:
                signed = ", ".join(verdict.evidence.get("signed_by") or []) or "the required attestations"
                reason = f"condition ended: signed by {signed}"
            elif verdict.status is SignatureStatus.NOT_REQUIRED:
                reason = "condition ended: no signature rule applies"
            else:
                reason = f"condition ended: verdict is now {', '.join(f.type for f in verdict.findings)}"
            for f in open_by_scope.get(r.scope, ()):
                if f.type in SIGNATURE_TYPES and f.dedup_key not in present:
                    finding_store.set_status(conn, f.id, FindingStatus.RESOLVED, reason, ACTOR)
                    resolved += 1
            self._judged[r.scope] = mark
        return judged, opened, resolved

    def _settle(self, conn, running: list[RunningImage], *, all_scopes: bool = False) -> int:
        """Resolve open signature findings of workloads that stopped running their image (every open one
        when the policy has no signature rule left)."""
        live = {r.scope for r in running}
        n = 0
        for f in finding_store.open_findings(conn, Family.SIGNATURES).values():
            if all_scopes:
                reason = "condition ended: no signature rule applies"
            elif f.scope not in live:
                reason = "the workload no longer runs this image"
            else:
                continue
            finding_store.set_status(conn, f.id, FindingStatus.RESOLVED, reason, ACTOR)
            n += 1
        if all_scopes:
            self._judged.clear()
        return n

    # -- in the background ----------------------------------------------------------------------

    def start(self, tick: float = 2.0, gate: Callable[[], bool] | None = None) -> None:
        self._task.start(tick, gate)

    def stop(self) -> None:
        self._task.stop()
