"""The webhook's HTTP side: AdmissionReview in, decision out (I/O around the pure decide()).

Routes: ``/validate`` (fail-open policies), ``/validate/fail-closed`` (fail-closed policies, behind
a second webhook whose failurePolicy is Fail), ``/mutate`` (tag to digest pinning), ``/healthz``
and ``/readyz``. Until the first snapshot of the service's feed has arrived the webhook answers
503: the API server then applies each webhook's failurePolicy, which is what the operator chose.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from vigil.admission.decide import AnswerKey, decide, pin_patch, questions, subject
from vigil.admission.knowledge import Knowledge
from vigil.admission.namespaces import NamespaceLabels
from vigil.admission.registry import ColdResolver
from vigil.admission.review import (
    MAX_REVIEW_BYTES,
    ReviewError,
    ReviewRequest,
    error_body,
    parse_review,
    review_response,
)
from vigil.admission.workloads import PodParts, pod_parts, starts_nothing_new
from vigil.policy.enforcement import Decision, Failure, Outcome
from vigil.registry.probe import RegistryAnswer
from vigil.wire.admission import AdmissionDecisionRecord, ViolationRecord

log = logging.getLogger(__name__)

JSON = "application/json"
MAX_CACHED_DECISIONS = 4096
RECORDED = (Outcome.DENIED, Outcome.WARNED, Outcome.AUDITED, Outcome.BREAK_GLASS)


class Link(Protocol):
    """The service's side as the webhook needs it: where decisions go, and why the feed is not there."""

    feed_error: str | None

    def report(self, decision: AdmissionDecisionRecord) -> None: ...


@dataclass
class Webhook:
    cluster: str
    knowledge: Knowledge
    link: Link
    resolver: ColdResolver | None = None
    namespaces: NamespaceLabels | None = None
    cold_budget: float = 0.8
    counts: dict[str, int] = field(default_factory=dict)
    # Decisions by their inputs, with when they stop holding (see _cold).
    _decisions: dict[tuple[object, ...], tuple[Decision, float]] = field(default_factory=dict)
    _decisions_generation: int = -1

    def _count(self, key: str) -> None:
        self.counts[key] = self.counts.get(key, 0) + 1

    async def _namespace_labels(self, namespace: str, failure: Failure) -> dict[str, str]:
        policy = self.knowledge.enforcement[failure]
        if self.namespaces is None or not any(p.scope.namespace_selector for p in policy.policies):
            return {"kubernetes.io/metadata.name": namespace}
        return await self.namespaces.labels(namespace)

    async def _cold(self, parts: PodParts) -> tuple[dict[AnswerKey, RegistryAnswer], float]:
        """The registry's answers for what the feed does not cover, and for how long a decision made from
        them holds: for ever (until the knowledge changes) when the feed covers everything, the answers'
        lifetime when every question was answered, not at all when one is still open or failed."""
        refs = [c.image for c in parts.images]
        asked = questions(self.knowledge, refs, self.cluster)
        if not asked:
            return {}, float("inf")
        if self.resolver is None:
            return {}, 0.0
        answers = await self.resolver.answers(asked, self.cold_budget)
        complete = len(answers) == len(asked) and all(a.error is None for a in answers.values())
        return answers, (self.resolver.ttl if complete else 0.0)

    async def validate(self, review: ReviewRequest, parts: PodParts, failure: Failure) -> bytes:
        if review.operation == "UPDATE" and starts_nothing_new(review.kind, review.object, review.old_object, parts):
            self._count("unchanged")
            return review_response(review.uid, allowed=True)
        policy = self.knowledge.enforcement[failure]
        labels = await self._namespace_labels(review.namespace, failure)
        who = subject(self.knowledge, review, parts, self.cluster, labels)
        # Decisions made from the feed alone depend on nothing else: the same inputs under the same
        # knowledge get the same decision, so the next identical pod (a ReplicaSet's) is a lookup.
        key = (
            self.knowledge.generation,
            failure,
            review.kind,
            who.namespace,
            tuple(sorted(labels.items())),
            tuple(sorted(parts.labels.items())),
            parts.annotations.get(policy.break_glass_annotation),
            tuple(c.image for c in parts.images),
        )
        now = time.monotonic()
        cached = self._decisions.get(key)
        if cached is not None and cached[1] > now:
            decision = cached[0]
        else:
            judged = policy.policies and who.namespace not in policy.exempt_namespaces
            cold, lifetime = await self._cold(parts) if judged else ({}, float("inf"))
            decision = decide(self.knowledge, policy, who, parts, cold)
            if lifetime > 0:
                if len(self._decisions) >= MAX_CACHED_DECISIONS or self._decisions_generation != key[0]:
                    self._decisions.clear()
                    self._decisions_generation = key[0]
                self._decisions[key] = (decision, now + lifetime)
        self._count(decision.outcome.value)
        if decision.outcome in RECORDED and not review.dry_run and self._worth_recording(review, decision):
            self.link.report(self._record(review, parts, decision))
        warnings = list(decision.warnings)
        if decision.outcome is Outcome.BREAK_GLASS:
            warnings.insert(
                0,
                f"admitted by break-glass ({policy.break_glass_annotation}: {decision.break_glass}); "
                f"this use is recorded: {decision.message}",
            )
        return review_response(review.uid, allowed=decision.allowed, message=decision.message, warnings=warnings)

    @staticmethod
    def _worth_recording(review: ReviewRequest, decision: Decision) -> bool:
        # A pod its ReplicaSet makes repeats the warning its Deployment already got; denials always count.
        if decision.outcome in (Outcome.DENIED, Outcome.BREAK_GLASS):
            return True
        owners = (review.object.get("metadata") or {}).get("ownerReferences") or []
        return not any(isinstance(o, dict) and o.get("controller") for o in owners)

    def _record(self, review: ReviewRequest, parts: PodParts, decision: Decision) -> AdmissionDecisionRecord:
        return AdmissionDecisionRecord(
            uid=review.uid,
            at=datetime.now(UTC),
            operation="UPDATE" if review.operation == "UPDATE" else "CREATE",
            kind=review.kind,
            namespace=review.namespace,
            name=review.name or str((review.object.get("metadata") or {}).get("generateName") or ""),
            user=review.user,
            outcome=decision.outcome.value,
            images=list(dict.fromkeys(c.image for c in parts.images)),
            violations=[
                ViolationRecord(
                    policy=v.policy,
                    mode=v.mode.value,
                    rule=v.rule.value,
                    image=v.image,
                    message=v.message,
                    evidence=dict(v.evidence),
                )
                for v in decision.violations
            ],
            warnings=list(decision.warnings),
            break_glass=decision.break_glass,
            enforcement_revision=self.knowledge.enforcement_revision,
        )

    async def mutate(self, review: ReviewRequest, parts: PodParts) -> bytes:
        if review.kind != "Pod" or review.operation != "CREATE":
            return review_response(review.uid, allowed=True)
        cold, _ = await self._cold(parts)
        ops, pinned = pin_patch(self.knowledge, parts, self.cluster, cold)
        if pinned:
            self._count("pinned")
        return review_response(review.uid, allowed=True, patch=ops)


async def _body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_REVIEW_BYTES:
        raise ReviewError(f"AdmissionReview body of {declared} bytes exceeds the limit of {MAX_REVIEW_BYTES}", 413)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_REVIEW_BYTES:
            raise ReviewError(f"AdmissionReview body exceeds the limit of {MAX_REVIEW_BYTES} bytes", 413)
        chunks.append(chunk)
    return b"".join(chunks)


def build_app(webhook: Webhook) -> Starlette:
    async def handle(request: Request, failure: Failure | None) -> Response:
        started = time.perf_counter()
        if request.headers.get("content-type", JSON).split(";")[0].strip() != JSON:
            return Response(error_body("Content-Type must be application/json"), 415, media_type=JSON)
        try:
            body = await _body(request)
            review = parse_review(body)
            if not webhook.knowledge.ready:
                return Response(
                    error_body(f"not ready: {webhook.link.feed_error or 'waiting for the first snapshot'}"),
                    503,
                    media_type=JSON,
                )
            parts = pod_parts(review.kind, review.object) if review.operation in ("CREATE", "UPDATE") else None
            if parts is None:
                # Nothing here runs code (a delete, a kind without pods): nothing to decide.
                out = review_response(review.uid, allowed=True)
            elif failure is None:
                out = await webhook.mutate(review, parts)
            else:
                out = await webhook.validate(review, parts, failure)
        except ReviewError as exc:
            webhook._count("bad_request")
            return Response(error_body(str(exc)), exc.status, media_type=JSON)
        except ClientDisconnect:
            return Response(status_code=499)
        log.debug("review answered", extra={"ms": round((time.perf_counter() - started) * 1000, 2)})
        return Response(out, media_type=JSON)

    async def validate(request: Request) -> Response:
        return await handle(request, Failure.IGNORE)

    async def validate_fail_closed(request: Request) -> Response:
        return await handle(request, Failure.FAIL)

    async def mutate(request: Request) -> Response:
        return await handle(request, None)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        if webhook.knowledge.ready:
            return JSONResponse(
                {
                    "status": "ready",
                    "enforcement_revision": webhook.knowledge.enforcement_revision,
                    "counts": webhook.counts,
                }
            )
        return JSONResponse(
            {"status": "not ready", "reason": webhook.link.feed_error or "waiting for the first snapshot"}, 503
        )

    return Starlette(
        routes=[
            Route("/validate", validate, methods=["POST"]),
            Route("/validate/fail-closed", validate_fail_closed, methods=["POST"]),
            Route("/mutate", mutate, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
        ]
    )
