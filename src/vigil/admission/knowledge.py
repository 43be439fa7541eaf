"""What the webhook decides from: the service's policies and facts, as the feed last gave them (pure).

The feed is the only writer; requests read. Replacing whole fields (never mutating a shared dict in
place) keeps a request that runs while an event is applied from seeing half of a change.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from vigil.policy.enforcement import EnforcementPolicy, EnforcementPolicyError, Failure, parse_enforcement
from vigil.policy.trust import InvalidPattern, TrustPolicy
from vigil.policy.trust_doc import PolicyDoc
from vigil.wire.admission import (
    DigestFacts,
    EnforcementEvent,
    FactsEvent,
    FeedEvent,
    PingEvent,
    SnapshotEvent,
    TagFacts,
    TrustEvent,
)

log = logging.getLogger(__name__)


class FeedContentError(ValueError):
    """A policy document in the feed that this webhook cannot read: the previous one stays in force."""


def _enforcement(doc: dict[str, Any], revision: str) -> EnforcementPolicy:
    try:
        return parse_enforcement(doc, f"from the service (revision {revision})")
    except EnforcementPolicyError as exc:
        raise FeedContentError(str(exc)) from None


def _trust(doc: dict[str, Any], revision: str) -> TrustPolicy:
    try:
        return PolicyDoc.model_validate(doc).to_policy()
    except (ValidationError, InvalidPattern) as exc:
        raise FeedContentError(f"trust policy from the service (revision {revision}): {exc}") from None


def split_by_failure(policy: EnforcementPolicy) -> dict[Failure, EnforcementPolicy]:
    """The policy as each webhook sees it: fail-open policies go to /validate, fail-closed to their own."""
    return {
        failure: policy.model_copy(update={"policies": tuple(p for p in policy.policies if p.failure is failure)})
        for failure in Failure
    }


@dataclass
class Knowledge:
    enforcement: dict[Failure, EnforcementPolicy] = field(default_factory=dict)
    enforcement_revision: str = ""
    trust: TrustPolicy = field(default_factory=TrustPolicy)
    trust_revision: str = ""
    digests: dict[str, DigestFacts] = field(default_factory=dict)
    tags: dict[str, TagFacts] = field(default_factory=dict)
    cluster_name: str = ""
    ready: bool = False  # a snapshot has arrived
    generation: int = 0  # bumped by every change, so derived caches know when to forget

    def apply(self, event: FeedEvent) -> None:
        """Take in one feed event; a FeedContentError leaves everything as it was."""
        if isinstance(event, PingEvent):
            return
        if isinstance(event, SnapshotEvent):
            enforcement = split_by_failure(_enforcement(event.enforcement, event.enforcement_revision))
            trust = _trust(event.trust, event.trust_revision)
            self.enforcement, self.enforcement_revision = enforcement, event.enforcement_revision
            self.trust, self.trust_revision = trust, event.trust_revision
            self.digests = {d.digest: d for d in event.digests}
            self.tags = {t.reference: t for t in event.tags}
            self.cluster_name = event.cluster_name
            self.ready = True
        elif isinstance(event, EnforcementEvent):
            self.enforcement = split_by_failure(_enforcement(event.enforcement, event.enforcement_revision))
            self.enforcement_revision = event.enforcement_revision
        elif isinstance(event, TrustEvent):
            self.trust, self.trust_revision = _trust(event.trust, event.trust_revision), event.trust_revision
        elif isinstance(event, FactsEvent):
            if event.digests:
                self.digests = {**self.digests, **{d.digest: d for d in event.digests}}
            if event.tags:
                self.tags = {**self.tags, **{t.reference: t for t in event.tags}}
        self.generation += 1
