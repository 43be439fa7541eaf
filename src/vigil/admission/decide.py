"""From a review to a decision and, for the mutating webhook, a patch (pure).

The facts about each image come from the feed's knowledge; what it does not know yet the caller
may ask the registry (``questions``) within its budget and pass the answers back in (``cold``).
An image nobody could answer for in time gets no integrity verdict and counts as not scanned, so
the policy's rule for unknown images decides.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from vigil.admission.knowledge import Knowledge
from vigil.admission.review import ReviewRequest
from vigil.admission.workloads import PodParts
from vigil.model.image import ImageRef, InvalidReference, parse_image_ref
from vigil.policy.enforcement import (
    AdmissionSubject,
    Decision,
    EnforcementPolicy,
    ImageFacts,
    Mode,
    Outcome,
    Rule,
    Violation,
    VulnerabilityFact,
    evaluate,
)
from vigil.policy.integrity import Verdict, judge
from vigil.policy.signature_checks import DigestSignatures
from vigil.policy.trust import TrustDecision
from vigil.registry.probe import RegistryAnswer

# (effective repository with tag, running digest): one question to the trusted registry.
AnswerKey = tuple[str, str | None]


@dataclass(frozen=True)
class RegistryQuestion:
    effective: ImageRef  # where the image is really pulled from, without digest
    digest: str | None  # the digest the object names, if any

    @property
    def key(self) -> AnswerKey:
        return (str(self.effective), self.digest)


def _plain(ref: ImageRef) -> ImageRef:
    return ImageRef(ref.registry, ref.repository, ref.tag, None)


def known_answer(knowledge: Knowledge, effective: ImageRef, digest: str | None) -> RegistryAnswer | None:
    """The registry's answer as the service last saw it, when it answers every question ``judge`` asks."""
    tag_digest: str | None = None
    artifacts: frozenset[str] = frozenset()
    tag_missing: str | None = None
    if effective.tag is not None:
        tag = knowledge.tags.get(str(_plain(effective)))
        if tag is None:
            return None
        if tag.digest is None:
            tag_missing = f"tag {effective.tag} was absent when the service checked at {tag.checked_at.isoformat()}"
        else:
            tag_digest = tag.digest
            artifacts = frozenset(tag.artifacts) | {tag.digest}
        if digest is None or digest in artifacts:
            return RegistryAnswer(tag_digest, artifacts, tag_missing)
    facts = knowledge.digests.get(digest) if digest else None
    if facts is None or effective.name not in facts.repositories:
        # Absence is never inferred from what the service has not seen: ask the registry.
        return None
    return RegistryAnswer(tag_digest, artifacts, tag_missing, digest_present=True)


def _parse(reference: str) -> ImageRef | None:
    try:
        return parse_image_ref(reference)
    except InvalidReference:
        return None


def _trust(knowledge: Knowledge, image: ImageRef, cluster: str) -> TrustDecision:
    return knowledge.trust.decide(image, tuple(k for k in (cluster, knowledge.cluster_name) if k))


def questions(knowledge: Knowledge, references: Sequence[str], cluster: str) -> list[RegistryQuestion]:
    """What the trusted registry must be asked about ``references`` that the feed has not answered.

    Only trusted registries are asked (none when the trust policy trusts nothing): the webhook
    contacts no registry an object merely names.
    """
    out: dict[AnswerKey, RegistryQuestion] = {}
    for reference in references:
        image = _parse(reference)
        if image is None:
            continue
        trust = _trust(knowledge, image, cluster)
        if trust.trusted is not True:
            continue
        effective = _plain(trust.effective)
        if known_answer(knowledge, effective, image.digest) is None:
            q = RegistryQuestion(effective, image.digest)
            out[q.key] = q
    return list(out.values())


def _running_digest(image: ImageRef, trust: TrustDecision, answer: RegistryAnswer | None) -> str | None:
    """The digest the node will run: the one named, else the tag's when the node pulls from the registry asked."""
    if image.digest is not None:
        return image.digest
    if answer is not None and answer.tag_digest is not None and trust.mirror is None:
        return answer.tag_digest
    return None


def image_facts(
    knowledge: Knowledge, reference: str, image: ImageRef, cluster: str, cold: Mapping[AnswerKey, RegistryAnswer]
) -> ImageFacts:
    trust = _trust(knowledge, image, cluster)
    if trust.trusted is False:
        return ImageFacts(reference, image)
    effective = _plain(trust.effective)
    answer = known_answer(knowledge, effective, image.digest) or cold.get((str(effective), image.digest))
    running = _running_digest(image, trust, answer)
    verdict: Verdict | None = None
    if answer is not None and not (running is not None and answer.error is None and _needs_presence(answer, running)):
        verdict = judge(running, trust, answer)
    content_digest = running or (answer.tag_digest if answer is not None else None)
    facts = knowledge.digests.get(content_digest) if content_digest else None
    if facts is None:
        return ImageFacts(reference, image, verdict)
    return ImageFacts(
        reference,
        image,
        verdict,
        scanned=facts.scanned,
        malicious_packages=tuple(facts.malicious_packages),
        vulnerabilities=tuple(
            VulnerabilityFact(v.advisory_id, v.package, v.severity, v.fixable) for v in facts.vulnerabilities
        ),
        signatures=None
        if facts.signatures is None
        else DigestSignatures.from_doc({"digest": facts.digest, **facts.signatures.model_dump()}),
    )


def _needs_presence(answer: RegistryAnswer, running: str) -> bool:
    """Whether ``judge`` would need to know if ``running`` exists, and the answer does not say."""
    if answer.digest_present is not None or answer.tag_missing is not None:
        return False
    return running != answer.tag_digest and running not in answer.tag_artifacts


def subject(
    knowledge: Knowledge, request: ReviewRequest, parts: PodParts, cluster: str, namespace_labels: Mapping[str, str]
) -> AdmissionSubject:
    return AdmissionSubject(
        cluster=cluster,
        namespace=request.namespace,
        kind=request.kind,
        name=request.name or str((request.object.get("metadata") or {}).get("generateName") or ""),
        user=request.user,
        cluster_name=knowledge.cluster_name,
        namespace_labels=namespace_labels,
        workload_labels=parts.labels,
        annotations=parts.annotations,
    )


def decide(
    knowledge: Knowledge,
    policy: EnforcementPolicy,
    who: AdmissionSubject,
    parts: PodParts,
    cold: Mapping[AnswerKey, RegistryAnswer],
) -> Decision:
    """The decision for ``who`` running ``parts``' images under ``policy``."""
    if who.namespace in policy.exempt_namespaces:
        return Decision(Outcome.EXEMPT, exempt=f"namespace {who.namespace} is exempt")
    references = list(dict.fromkeys(c.image for c in parts.images))
    invalid = [r for r in references if _parse(r) is None]
    if invalid and any(p.scope.matches(who) for p in policy.policies):
        # The kubelet could not pull it either; refusing says so now rather than as ErrImagePull later.
        violations = tuple(
            Violation(
                "(admission)", Mode.ENFORCE, Rule.UNTRUSTED_REGISTRY, r, f"image {r!r} is not a valid image reference"
            )
            for r in invalid
        )
        return Decision(Outcome.DENIED, violations)
    facts = [image_facts(knowledge, r, ref, who.cluster, cold) for r in references if (ref := _parse(r)) is not None]
    return evaluate(policy, knowledge.trust, who, facts)


def pin_patch(
    knowledge: Knowledge, parts: PodParts, cluster: str, cold: Mapping[AnswerKey, RegistryAnswer]
) -> tuple[list[dict[str, str]], list[str]]:
    """JSONPatch operations pinning each tag to the digest its trusted registry holds, and what was pinned.

    Only images pulled straight from a trusted registry are pinned: through a mirror, the digest the
    node gets from the source is not the one the mirror was asked about.
    """
    ops: list[dict[str, str]] = []
    pinned: list[str] = []
    for container in parts.images:
        image = _parse(container.image)
        if image is None or image.digest is not None or image.tag is None:
            continue
        trust = _trust(knowledge, image, cluster)
        if trust.trusted is not True or trust.mirror is not None:
            continue
        effective = _plain(trust.effective)
        answer = known_answer(knowledge, effective, None) or cold.get((str(effective), None))
        if answer is None or answer.tag_digest is None or answer.error is not None:
            continue
        value = f"{container.image}@{answer.tag_digest}"
        ops.append({"op": "replace", "path": container.pointer, "value": value})
        pinned.append(value)
    return ops, pinned
