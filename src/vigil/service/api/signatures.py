"""Image signatures and provenance: what signs each image, each workload's verdict, and an on-demand pass."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from vigil.clock import iso
from vigil.policy.signature_checks import SignatureCheck
from vigil.policy.signature_rules import material
from vigil.policy.trust import TrustPolicy
from vigil.service.api.deps import admin, reader, signature_verifier
from vigil.service.api.errors import not_found
from vigil.service.api.query import RowId
from vigil.service.api.responses import ViewRoute
from vigil.service.jobs.signatures import SignatureVerifier, judge
from vigil.service.store import signatures as signature_store
from vigil.service.store.integrity import running_images
from vigil.service.store.policy import load_policy
from vigil.service.store.schema import images
from vigil.service.store.tokens import Principal
from vigil.service.store.views import images as image_views
from vigil.signatures.outcome import Invalid, Unknown, Verified
from vigil.wire.views import ImageSignatures, SignaturePassReport

router = APIRouter(prefix="/api/v1", tags=["signatures"], route_class=ViewRoute)


def key_names(policy: TrustPolicy) -> dict[str, str]:
    """Key id -> the names the rules give it ("ci" or "ci, release" when rules disagree)."""
    names: dict[str, list[str]] = {}
    for rule in policy.signatures:
        for k in rule.requirement.keys:
            if k.name not in names.setdefault(k.key_id, []):
                names[k.key_id].append(k.name)
    return {kid: ", ".join(n) for kid, n in names.items()}


def check_view(check: SignatureCheck, names: dict[str, str]) -> dict[str, Any]:
    o = check.outcome
    view: dict[str, Any] = {
        "artifact": check.artifact,
        "source": check.source,
        "kind": check.kind,
        "result": o.kind,
        "signer": None,
        "key_id": None,
        "issuer": None,
        "identity": None,
        "why": o.why if isinstance(o, Invalid | Unknown) else None,
        "docker_reference": None,
        "signed_at": None,
        "predicate_type": None,
        "provenance": None,
    }
    if isinstance(o, Verified):
        if o.issuer is not None:
            view.update(signer=f"identity {o.issuer}={o.identity}", issuer=o.issuer, identity=o.identity)
        else:
            name = names.get(o.by)
            view.update(signer=f"key {name} ({o.by})" if name else f"key {o.by}", key_id=o.by)
        view.update(
            docker_reference=o.docker_reference,
            signed_at=iso(o.signed_at) if o.signed_at else None,
            predicate_type=o.predicate_type,
            provenance=None
            if o.provenance is None
            else {
                "builder_id": o.provenance.builder_id,
                "source_repository": o.provenance.source_repository,
                "source_revision": o.provenance.source_revision,
                "build_trigger": o.provenance.build_trigger,
            },
        )
    return view


def image_signatures(conn, image_id: int) -> dict[str, Any] | None:
    """The signatures of one image and the verdict of every workload running it."""
    row = conn.execute(select(images).where(images.c.id == image_id)).first()
    if row is None:
        return None
    policy = load_policy(conn)
    revision = material(policy.signatures).revision
    digest = row.digest or None
    state = signature_store.load_states(conn, [digest]).get(digest) if digest else None
    current = state if state is not None and state.material_revision == revision else None
    names = key_names(policy)
    workloads = []
    for r in sorted(
        (r for r in running_images(conn) if r.image_pk == image_id),
        key=lambda r: (r.cluster_id, r.namespace, r.workload_kind, r.workload_name),
    ):
        verdict = judge(policy, r, current, revision)
        failing = [c for f in verdict.findings for c in f.evidence.get("failing_checks", [])]
        workloads.append(
            {
                "cluster_id": r.cluster_id,
                "namespace": r.namespace,
                "workload_kind": r.workload_kind,
                "workload_name": r.workload_name,
                "status": verdict.status.value,
                "rule": verdict.evidence.get("rule"),
                "findings": [str(f.type) for f in verdict.findings],
                "signed_by": list(verdict.evidence.get("signed_by") or []),
                "failing_checks": failing,
            }
        )
    sigs = current.signatures if current else None
    return {
        "image": image_views.image_dict(row),
        "digest": digest,
        "status": sigs.status if sigs else "pending",
        "checked_at": iso(current.checked_at) if current else None,
        "next_check_at": iso(current.next_check_at) if current and current.next_check_at else None,
        "referrers_api": sigs.referrers_api if sigs else None,
        "reason": sigs.unknown if sigs else None,
        "checks": [check_view(c, names) for c in sigs.checks] if sigs else [],
        "workloads": workloads,
    }


@router.get(
    "/images/{image_id}/signatures",
    response_model=ImageSignatures,
    summary="One image's signatures and attestations (who signed, provenance) and each workload's verdict",
)
def get_image_signatures(image_id: RowId, request: Request, who: Principal = Depends(reader)) -> dict:
    with request.app.state.engine.connect() as conn:
        answer = image_signatures(conn, image_id)
    if answer is None:
        raise not_found(f"image {image_id} does not exist")
    return answer


@router.post(
    "/signatures/verify",
    response_model=SignaturePassReport,
    summary="Check the signatures of running digests that are due now (admin); ?all=true checks every one again",
)
async def verify(
    all: bool = Query(False),
    who: Principal = Depends(admin),
    verifier: SignatureVerifier = Depends(signature_verifier),
) -> dict:
    report = await run_in_threadpool(verifier.run_pass, force=all)
    return report.as_dict()
