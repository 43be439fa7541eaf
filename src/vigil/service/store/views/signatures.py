"""An image's signatures as the API and the console show them: each check (who signed, by which named key or
identity, provenance facts) and each workload's verdict under the signature rule that applies to it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select

from vigil.clock import iso
from vigil.policy.signature_checks import SignatureCheck
from vigil.policy.signature_rules import material
from vigil.policy.trust import TrustPolicy
from vigil.service.store import signatures as signature_store
from vigil.service.store.integrity import running_images
from vigil.service.store.policy import load_policy
from vigil.service.store.schema import images
from vigil.service.store.views import images as image_views
from vigil.signatures.outcome import Invalid, Unknown, Verified


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
            provenance=None if o.provenance is None else o.provenance.as_doc(),
        )
    return view


def image_signatures(conn: Connection, image_id: int) -> dict[str, Any] | None:
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
        running_images(conn, image_id),
        key=lambda r: (r.cluster_id, r.namespace, r.workload_kind, r.workload_name),
    ):
        verdict = signature_store.judge(policy, r, current, revision)
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
