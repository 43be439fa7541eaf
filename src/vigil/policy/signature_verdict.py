"""A digest's signature checks against the requirement of the rule that applies (pure): a verdict and the
findings it gives.

- no rule applies -> ``not_required`` (the signatures are still shown);
- the checks are not made yet -> ``pending``; the registry could not be asked -> ``unknown``, never a
  violation (as with integrity);
- the rule names keys or identities and none of them signed: ``signature_invalid`` when a signature is
  present and fails a check (a tampered payload, a payload of another digest, a broken certificate
  chain), else ``unsigned_image`` (nothing signed, or only signers the rule does not accept);
- a required attestation type has no attestation by an accepted signer: ``unsigned_image`` (or
  ``signature_invalid`` when such an attestation is present and fails);
- the rule names source repositories or builder ids, and no provenance by an accepted signer names
  both an accepted source and an accepted builder: ``provenance_mismatch`` (``unsigned_image`` when
  there is no verified provenance at all).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from vigil.model.findings import FindingType
from vigil.policy.integrity import FindingSpec
from vigil.policy.signature_checks import DigestSignatures, SignatureCheck
from vigil.policy.signature_rules import SignatureRequirement, SignatureRule
from vigil.signatures.dsse import SLSA_V02, SLSA_V1
from vigil.signatures.outcome import Invalid, Verified

PROVENANCE_TYPES = (SLSA_V02, SLSA_V1)


class SignatureStatus(str, Enum):
    VERIFIED = "verified"
    VIOLATION = "violation"
    UNKNOWN = "unknown"
    PENDING = "pending"
    NOT_REQUIRED = "not_required"


@dataclass(frozen=True)
class SignatureVerdict:
    status: SignatureStatus
    findings: tuple[FindingSpec, ...] = ()
    evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def definite(self) -> bool:
        """Whether findings may open or resolve on this verdict."""
        return self.status in (SignatureStatus.VERIFIED, SignatureStatus.VIOLATION, SignatureStatus.NOT_REQUIRED)


def signer_of(check: SignatureCheck, req: SignatureRequirement) -> str | None:
    """How the requirement names the signer of a verified check it accepts, else None."""
    o = check.outcome
    if not isinstance(o, Verified):
        return None
    if o.issuer is not None:
        rule = req.accepts_identity(o.issuer, o.identity)
        return f"identity {o.issuer}={o.identity}" if rule is not None else None
    name = req.key_names.get(o.by)
    return f"key {name} ({o.by})" if name is not None else None


def _present(check: SignatureCheck, req: SignatureRequirement) -> str:
    """A check as evidence: who signed (named as the rule names them) or why it fails."""
    o = check.outcome
    if isinstance(o, Verified):
        named = signer_of(check, req)
        if named:
            return f"{check.kind} {check.artifact}: signed by {named}"
        who = f"identity {o.issuer}={o.identity}" if o.issuer is not None else f"key {o.by}"
        return f"{check.kind} {check.artifact}: signed by {who}, which the rule does not accept"
    return f"{check.kind} {check.artifact}: {o.line()}"


def provenance_facts(checks: list[SignatureCheck]) -> list[dict[str, Any]]:
    out = []
    for c in checks:
        o = c.outcome
        if isinstance(o, Verified) and o.provenance is not None:
            p = o.provenance
            out.append(
                {
                    "predicate_type": o.predicate_type,
                    "builder_id": p.builder_id,
                    "source_repository": p.source_repository,
                    "source_revision": p.source_revision,
                    "build_trigger": p.build_trigger,
                }
            )
    return out


def evaluate(
    sigs: DigestSignatures | None, rule: SignatureRule | None, *, image: str = "", digest: str | None = None
) -> SignatureVerdict:
    """The verdict of `sigs` (None: not checked yet) under `rule` (None: nothing required)."""
    base: dict[str, Any] = {
        "image": image,
        "digest": digest or (sigs.digest if sigs else None),
        "rule": rule.describe() if rule else None,
    }
    if sigs is not None:
        base["signatures"] = [_present(c, rule.requirement if rule else SignatureRequirement()) for c in sigs.checks]
    if rule is None:
        return SignatureVerdict(SignatureStatus.NOT_REQUIRED, (), base)
    req = rule.requirement
    base["accepted_signers"] = req.signers()
    if sigs is None:
        return SignatureVerdict(SignatureStatus.PENDING, (), {**base, "reason": "signatures not checked yet"})
    if sigs.unknown is not None:
        return SignatureVerdict(SignatureStatus.UNKNOWN, (), {**base, "reason": sigs.unknown})
    failing: dict[FindingType, list[str]] = {}

    def fail(kind: FindingType, check: str) -> None:
        failing.setdefault(kind, []).append(check)

    signatures = [c for c in sigs.checks if c.kind == "signature"]
    attestations = [c for c in sigs.checks if c.kind == "attestation"]
    signed_by = [s for s in (signer_of(c, req) for c in signatures) if s]
    if req.requires_signature and not signed_by:
        broken = [c for c in signatures if isinstance(c.outcome, Invalid) and not c.foreign]
        if broken:
            fail(FindingType.SIGNATURE_INVALID, f"signature {broken[0].artifact}: {broken[0].outcome.line()}")
        else:
            fail(FindingType.UNSIGNED_IMAGE, "no signature by an accepted key or identity")
    accepted_att = [c for c in attestations if signer_of(c, req)]
    broken_att = [c for c in attestations if isinstance(c.outcome, Invalid) and not c.foreign]
    for predicate_type in req.attestations:
        if not any(
            isinstance(c.outcome, Verified) and c.outcome.predicate_type == predicate_type for c in accepted_att
        ):
            if broken_att:
                fail(
                    FindingType.SIGNATURE_INVALID,
                    f"attestation {broken_att[0].artifact}: {broken_att[0].outcome.line()}",
                )
            else:
                fail(FindingType.UNSIGNED_IMAGE, f"no attestation of type {predicate_type} by an accepted signer")
    facts = provenance_facts(accepted_att)
    if req.requires_provenance:
        if not facts:
            if not any(t in PROVENANCE_TYPES for t in req.attestations):
                fail(FindingType.UNSIGNED_IMAGE, "no SLSA provenance by an accepted signer")
        elif not any(
            req.accepts_source(f["source_repository"]) and req.accepts_builder(f["builder_id"]) for f in facts
        ):
            f = facts[0]
            if not req.accepts_source(f["source_repository"]):
                fail(
                    FindingType.PROVENANCE_MISMATCH,
                    f"source repository {f['source_repository']} is not one of {', '.join(req.source_repositories)}",
                )
            if not req.accepts_builder(f["builder_id"]):
                fail(
                    FindingType.PROVENANCE_MISMATCH,
                    f"builder {f['builder_id']} is not one of {', '.join(req.builder_ids)}",
                )
    evidence = {**base, "signed_by": signed_by, "provenance": facts}
    if not failing:
        return SignatureVerdict(SignatureStatus.VERIFIED, (), evidence)
    specs = tuple(
        FindingSpec(kind, {**evidence, "failing_check": checks[0], "failing_checks": checks})
        for kind, checks in sorted(failing.items(), key=lambda kv: kv[0].value)
    )
    return SignatureVerdict(SignatureStatus.VIOLATION, specs, evidence)
