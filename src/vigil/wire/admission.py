"""What the admission webhook and the service say to each other.

The service feeds each cluster's webhooks what they decide from (the enforcement policy, the trust
policy, and per-digest and per-tag facts) as one NDJSON stream; the webhooks send back the decisions
that matter (denials, warnings, audits, break-glass uses) in batches.

The two policy documents travel as JSON objects and are read on arrival with the same code that
validated them when they were stored (``vigil.policy``): this layer sits below the policy library.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, TypeAdapter, field_validator

from vigil.model.findings import Severity
from vigil.wire.base import Batch, WireModel, check

DIGEST = re.compile(r"sha256:[0-9a-f]{64}\Z")
# Kept below the service's request-body bound: a decision carries at most a pod's images.
MAX_DECISIONS = 500
MAX_IMAGES = 200

Text = Annotated[str, Field(max_length=4096)]
Name = Annotated[str, Field(max_length=253)]


class VulnerabilityFact(WireModel):
    advisory_id: Annotated[str, Field(min_length=1, max_length=256)]
    package: Annotated[str, Field(min_length=1, max_length=512)]
    severity: Severity
    fixable: bool


class SignatureProvenance(WireModel):
    builder_id: Text | None = None
    source_repository: Text | None = None
    source_revision: Text | None = None
    build_trigger: Text | None = None


class SignatureCheckFact(WireModel):
    """One signature or attestation check of a digest (``vigil.policy.signature_checks.SignatureCheck``)."""

    artifact: Annotated[str, Field(max_length=80)]
    source: Literal["referrer", "tag"]
    kind: Literal["signature", "attestation"]
    result: Literal["verified", "invalid", "absent", "unknown"]
    foreign: bool = False
    why: Text | None = None
    by: Text | None = None
    identity: Text | None = None
    issuer: Text | None = None
    docker_reference: Text | None = None
    signed_at: Annotated[str, Field(max_length=64)] | None = None
    predicate_type: Text | None = None
    provenance: SignatureProvenance | None = None


class SignatureFacts(WireModel):
    """What the digest's signatures prove, checked once by the service; each webhook judges it against
    the trust policy's signature rule for the request's cluster and namespace."""

    checks: list[SignatureCheckFact] = Field(default_factory=list, max_length=64)
    unknown: Text | None = None


class DigestFacts(WireModel):
    """What the service knows about one image digest."""

    digest: str
    # Effective repositories (``registry/path``, after mirror rules) in which the trusted registry was
    # seen to hold this digest.
    repositories: list[Annotated[str, Field(max_length=512)]] = Field(default_factory=list, max_length=MAX_IMAGES)
    scanned: bool = False
    malicious_packages: list[Annotated[str, Field(max_length=512)]] = Field(default_factory=list, max_length=10_000)
    vulnerabilities: list[VulnerabilityFact] = Field(default_factory=list, max_length=100_000)
    signatures: SignatureFacts | None = None  # None: not checked (no signature rule, or not yet)

    @field_validator("digest")
    @classmethod
    def _digest(cls, v: str) -> str:
        return check(DIGEST, v, "digest (sha256:<64 hex>)")


class TagFacts(WireModel):
    """What the trusted registry held for a tag when the service last asked."""

    reference: Annotated[str, Field(min_length=1, max_length=1024)]  # registry/repository:tag, effective
    digest: str | None = None  # None: the tag was absent
    artifacts: list[str] = Field(default_factory=list, max_length=MAX_IMAGES)  # every digest naming it
    checked_at: datetime


class SnapshotEvent(WireModel):
    """The whole state; the first line of every feed, and again whenever the service starts over."""

    kind: Literal["snapshot"] = "snapshot"
    # Trust rules and policy scopes may name the cluster by id or by name: the webhook knows its id.
    cluster_name: Annotated[str, Field(max_length=253)] = ""
    enforcement: dict[str, Any]
    enforcement_revision: str
    trust: dict[str, Any]  # the trust document as GET /api/v1/policy/trust shows it, without revision
    trust_revision: str
    digests: list[DigestFacts] = Field(default_factory=list)
    tags: list[TagFacts] = Field(default_factory=list)


class EnforcementEvent(WireModel):
    kind: Literal["enforcement"] = "enforcement"
    enforcement: dict[str, Any]
    enforcement_revision: str


class TrustEvent(WireModel):
    kind: Literal["trust"] = "trust"
    trust: dict[str, Any]
    trust_revision: str


class FactsEvent(WireModel):
    """Digests and tags learnt or changed since the last line (upserts)."""

    kind: Literal["facts"] = "facts"
    digests: list[DigestFacts] = Field(default_factory=list)
    tags: list[TagFacts] = Field(default_factory=list)


class PingEvent(WireModel):
    """Sent when nothing else was for a while, so both ends see a dead connection."""

    kind: Literal["ping"] = "ping"
    at: datetime


FeedEvent = Annotated[
    SnapshotEvent | EnforcementEvent | TrustEvent | FactsEvent | PingEvent, Field(discriminator="kind")
]
FEED_EVENT: TypeAdapter[FeedEvent] = TypeAdapter(FeedEvent)
FEED_MEDIA_TYPE = "application/x-ndjson"


Outcome = Literal["allowed", "denied", "warned", "audited", "break_glass", "exempt"]


class ViolationRecord(WireModel):
    policy: Annotated[str, Field(max_length=63)]
    mode: Literal["enforce", "warn", "audit"]
    rule: Literal["untrusted_registry", "integrity", "unscanned", "malicious_package", "vulnerabilities", "signatures"]
    image: Annotated[str, Field(max_length=1024)]
    message: Text
    evidence: dict[str, Any] = Field(default_factory=dict)


class AdmissionDecisionRecord(WireModel):
    uid: Annotated[str, Field(min_length=1, max_length=128)]  # the AdmissionReview's request uid
    at: datetime
    operation: Literal["CREATE", "UPDATE"]
    kind: Annotated[str, Field(min_length=1, max_length=63)]  # Pod, Deployment, ... as the request named it
    namespace: Annotated[str, Field(max_length=63)]
    name: Name  # may be empty: a Pod from generateName has none yet
    user: Name  # the requesting user as the API server authenticated it
    outcome: Outcome
    images: list[Annotated[str, Field(max_length=1024)]] = Field(default_factory=list, max_length=MAX_IMAGES)
    violations: list[ViolationRecord] = Field(default_factory=list, max_length=MAX_IMAGES * 5)
    warnings: list[Text] = Field(default_factory=list, max_length=MAX_IMAGES * 5)
    break_glass: Text | None = None  # the reason the break-glass annotation gave
    dry_run: bool = False
    enforcement_revision: str = ""


class AdmissionDecisionBatch(Batch):
    decisions: list[AdmissionDecisionRecord] = Field(max_length=MAX_DECISIONS)


class DecisionsAccepted(WireModel):
    batch_id: str
    accepted: int
    duplicate: bool = False
