"""Image integrity (pure): what the trusted registry says, turned into a verdict and findings.

The registry is the source of truth. For a container running ``digest`` from
``repository:tag``:

- the tag resolves to the running digest, or to an index listing it -> verified;
- the tag resolves elsewhere but the running digest is in the repository -> ``tag_moved``
  (a mutable tag was overwritten after the pull);
- the tag resolves elsewhere and the running digest is not in the repository ->
  ``digest_mismatch`` (what runs was never in the trusted registry);
- the tag, the repository or (for digest-pinned images) the digest is absent ->
  ``artifact_missing``, with the registry's answer;
- the registry could not answer (unreachable, auth refused, broken) -> ``unknown``,
  never a violation;
- the registry is not trusted -> ``untrusted_registry``; an untrusted registry is
  not asked anything;
- no trust policy is set -> ``unknown``, and no registry is asked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from vigil.model.findings import FindingType, Severity
from vigil.model.image import ImageRef
from vigil.policy.trust import TrustDecision
from vigil.registry.probe import RegistryAnswer


class Status(str, Enum):
    VERIFIED = "verified"
    VIOLATION = "violation"
    UNKNOWN = "unknown"
    UNTRUSTED = "untrusted"
    PENDING = "pending"


# Worst first: an image's summary over clusters shows the worst of its verdicts.
STATUS_ORDER = (Status.VIOLATION, Status.UNTRUSTED, Status.UNKNOWN, Status.PENDING, Status.VERIFIED)


@dataclass(frozen=True, slots=True)
class FindingSpec:
    type: FindingType
    evidence: dict[str, Any]

    @property
    def severity(self) -> Severity:
        return self.type.severity()


@dataclass(frozen=True, slots=True)
class Verdict:
    status: Status
    findings: tuple[FindingSpec, ...] = ()
    evidence: dict[str, Any] = field(default_factory=dict)
    registry_digest: str | None = None

    @property
    def verdict_name(self) -> str:
        """The finding types, or the status when there are none."""
        return ", ".join(f.type for f in self.findings) or self.status.value

    @property
    def definite(self) -> bool:
        """Whether the verdict says something about the image (so findings may open or resolve)."""
        return self.status in (Status.VERIFIED, Status.VIOLATION, Status.UNTRUSTED)


def _repository(ref: ImageRef) -> str:
    return ref.name


def judge(
    running_digest: str | None,
    trust: TrustDecision,
    answer: RegistryAnswer | None,
    *,
    tag_moved_since: str | None = None,
) -> Verdict:
    """The verdict for ``trust.image`` running ``running_digest``, from the registry's ``answer``."""
    base = trust.evidence()
    effective = trust.effective
    if trust.trusted is False:
        spec = FindingSpec(FindingType.UNTRUSTED_REGISTRY, base)
        return Verdict(Status.UNTRUSTED, (spec,), base)
    if answer is not None and answer.error is not None:
        unknown = {
            **base,
            "repository": _repository(effective),
            "tag": effective.tag,
            "runtime_digest": running_digest,
            "registry_answer": answer.error,
            "error_kind": answer.error_kind,
        }
        return Verdict(Status.UNKNOWN, (), unknown)
    if running_digest is None:
        if answer is not None and answer.tag_missing is not None:
            # Nothing to compare, but the tag itself is absent: that is an answer.
            missing = {
                **base,
                "repository": _repository(effective),
                "tag": effective.tag,
                "runtime_digest": None,
                "missing": "tag",
                "registry_answer": answer.tag_missing,
            }
            spec = FindingSpec(FindingType.ARTIFACT_MISSING, missing)
            return Verdict(Status.VIOLATION, (spec,), missing)
        return Verdict(Status.PENDING, (), {**base, "reason": "the runtime has not reported the pulled digest yet"})
    if answer is None:
        raise ValueError(f"image {trust.image}: a trusted image needs the registry's answer")
    evidence = {
        **base,
        "repository": _repository(effective),
        "tag": effective.tag,
        "runtime_digest": running_digest,
    }
    if effective.tag is None:
        # Pinned by digest: the only question is whether the registry holds it.
        if answer.digest_present:
            return Verdict(Status.VERIFIED, (), {**evidence, "registry_digest": running_digest}, running_digest)
        spec = FindingSpec(
            FindingType.ARTIFACT_MISSING, {**evidence, "missing": "digest", "registry_answer": answer.digest_missing}
        )
        return Verdict(Status.VIOLATION, (spec,), spec.evidence)
    if answer.tag_missing is not None:
        missing = {
            **evidence,
            "missing": "tag",
            "registry_answer": answer.tag_missing,
            "runtime_digest_present": answer.digest_present,
        }
        spec = FindingSpec(FindingType.ARTIFACT_MISSING, missing)
        return Verdict(Status.VIOLATION, (spec,), missing)
    tag_digest = answer.tag_digest
    if tag_digest is None:
        raise ValueError(f"image {trust.image}: the answer has neither the tag's digest nor why it is missing")
    evidence["registry_digest"] = tag_digest
    if running_digest == tag_digest or running_digest in answer.tag_artifacts:
        if running_digest != tag_digest:
            evidence["same_artifact"] = "the running digest is a platform manifest of the tag's index"
        return Verdict(Status.VERIFIED, (), evidence, tag_digest)
    if answer.digest_present is None:
        raise ValueError(f"image {trust.image}: the tag moved, and whether the running digest exists was not asked")
    if answer.digest_present:
        moved = {**evidence, "since": tag_moved_since}
        spec = FindingSpec(FindingType.TAG_MOVED, moved)
        return Verdict(Status.VIOLATION, (spec,), moved, tag_digest)
    mismatch = {**evidence, "registry_answer": answer.digest_missing}
    spec = FindingSpec(FindingType.DIGEST_MISMATCH, mismatch)
    return Verdict(Status.VIOLATION, (spec,), mismatch, tag_digest)


def not_asked(running_digest: str | None, trust: TrustDecision) -> Verdict:
    """The verdict while no trust policy is set: unknown, and no registry was asked.

    The registry an image names is its cluster's word; asking it before the operator has said which
    registries to trust would let any cluster credential aim the service at any host.
    """
    reason = (
        f"not checked: no trust policy is set, so the service contacts no registry (this image names "
        f"{trust.effective.registry}); add the registries you trust (vigil trust add, or --trust-file)"
    )
    return Verdict(Status.UNKNOWN, (), {**trust.evidence(), "runtime_digest": running_digest, "reason": reason})


def worst(statuses: list[str]) -> str | None:
    order = [s.value for s in STATUS_ORDER]
    present = [s for s in statuses if s in order]
    return min(present, key=order.index) if present else None
