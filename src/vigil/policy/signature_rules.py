"""Signature and provenance requirements of the trust policy (pure): who must have signed an image, which
attestations it must carry, and which sources and builders its provenance may name.

A rule applies to the images under a registry pattern, globally or in one cluster, in every namespace or
one. Where several rules match an image, the most specific one decides (cluster and namespace, cluster,
namespace, global; then the longest path prefix), so a team's namespace can name its own signers.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from functools import cached_property

from vigil.model.image import ImageRef
from vigil.policy.trust import Pattern
from vigil.signatures.certs import IdentityRule
from vigil.signatures.keys import TrustedKey, load_public_key

MAX_KEYS = 32
MAX_IDENTITIES = 32
MAX_VALUES = 64


@dataclass(frozen=True)
class AcceptedKey:
    """A public key whose signatures count, and the name findings and views show it by."""

    name: str
    pem: str

    def __post_init__(self) -> None:
        # Fails here, with the reason, rather than at the first verification.
        self.trusted  # noqa: B018

    @cached_property
    def trusted(self) -> TrustedKey:
        return TrustedKey(self.name, load_public_key(self.pem.encode()))

    @property
    def key_id(self) -> str:
        return self.trusted.key_id

    def describe(self) -> str:
        return f"key {self.name} ({self.key_id})"


def describe_identity(rule: IdentityRule) -> str:
    return f"identity {rule.describe()}"


def normalize_source(uri: str) -> str:
    """A source repository as provenance names it, comparable with what a rule names: SLSA v0.2 writes
    `git+https://github.com/acme/app@refs/heads/main`, v1 `https://github.com/acme/app`."""
    text = uri.strip()
    text = text.removeprefix("git+")
    if "@" in text.split("://", 1)[-1]:
        head, _, _ = text.rpartition("@")
        text = head
    return text.removesuffix(".git").rstrip("/")


@dataclass(frozen=True)
class SignatureRequirement:
    """What an image under the rule must carry. Keys and identities say whose signatures count; the
    attestation, source and builder requirements hold for attestations signed by them."""

    keys: tuple[AcceptedKey, ...] = ()
    identities: tuple[IdentityRule, ...] = ()
    attestations: tuple[str, ...] = ()  # predicate types, e.g. https://slsa.dev/provenance/v1
    source_repositories: tuple[str, ...] = ()
    builder_ids: tuple[str, ...] = ()

    @property
    def requires_signature(self) -> bool:
        return bool(self.keys or self.identities)

    @property
    def requires_provenance(self) -> bool:
        return bool(self.source_repositories or self.builder_ids)

    @cached_property
    def key_names(self) -> dict[str, str]:
        """Accepted key id -> the name the rule gives it."""
        return {k.key_id: k.name for k in self.keys}

    def accepts_identity(self, issuer: str | None, subject: str | None) -> IdentityRule | None:
        if issuer is None or subject is None:
            return None
        return next((r for r in self.identities if r.accepts(issuer, subject)), None)

    def accepts_source(self, uri: str | None) -> bool:
        if not self.source_repositories:
            return True
        return uri is not None and normalize_source(uri) in {normalize_source(s) for s in self.source_repositories}

    def accepts_builder(self, builder_id: str | None) -> bool:
        return not self.builder_ids or builder_id in self.builder_ids

    def signers(self) -> list[str]:
        return [k.describe() for k in self.keys] + [describe_identity(r) for r in self.identities]


def _identity_doc(rule: IdentityRule) -> dict[str, str]:
    return {
        k: v
        for k, v in (
            ("issuer", rule.issuer),
            ("issuer_pattern", rule.issuer_pattern),
            ("subject", rule.subject),
            ("subject_pattern", rule.subject_pattern),
        )
        if v is not None
    }


@dataclass(frozen=True)
class SignatureRule:
    pattern: Pattern
    requirement: SignatureRequirement = field(default_factory=SignatureRequirement)
    cluster: str | None = None  # None: every cluster
    namespace: str | None = None  # None: every namespace

    def describe(self) -> str:
        where = "global" if self.cluster is None else f"cluster {self.cluster}"
        if self.namespace is not None:
            where += f", namespace {self.namespace}"
        return f"signatures for {self.pattern} ({where})"

    def applies(self, ref: ImageRef, cluster_keys: tuple[str, ...], namespace: str | None) -> bool:
        return (
            (self.cluster is None or self.cluster in cluster_keys)
            and (self.namespace is None or self.namespace == namespace)
            and self.pattern.matches(ref.registry, ref.repository)
        )

    def specificity(self) -> tuple[bool, bool, int]:
        return (self.cluster is not None, self.namespace is not None, len(self.pattern.prefix))

    def fingerprint(self) -> list[object]:
        """The rule as plain values, for the trust policy's revision."""
        req = self.requirement
        return [
            str(self.pattern),
            self.cluster or "",
            self.namespace or "",
            sorted(k.key_id for k in req.keys),
            sorted(json.dumps(_identity_doc(r), sort_keys=True) for r in req.identities),
            sorted(req.attestations),
            sorted(req.source_repositories),
            sorted(req.builder_ids),
        ]


def rule_for(
    rules: tuple[SignatureRule, ...], ref: ImageRef, cluster_keys: tuple[str, ...], namespace: str | None
) -> SignatureRule | None:
    """The rule that decides what `ref` (where it is really pulled from) must carry, or None."""
    matching = [r for r in rules if r.applies(ref, cluster_keys, namespace)]
    if not matching:
        return None
    return max(matching, key=SignatureRule.specificity)


@dataclass(frozen=True)
class VerificationMaterial:
    """Everything the rules accept, which is what a digest's signatures are verified against once: the
    verdict of one requirement is then decided from the stored checks, with no further registry request."""

    keys: tuple[TrustedKey, ...]
    keyless: bool

    @property
    def revision(self) -> str:
        doc = {"keys": sorted(k.name for k in self.keys), "keyless": self.keyless}
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]


def material(rules: tuple[SignatureRule, ...]) -> VerificationMaterial:
    """Every accepted key of every rule, named by key id (outcomes then say which key signed)."""
    keys: dict[str, TrustedKey] = {}
    keyless = False
    for rule in rules:
        for k in rule.requirement.keys:
            keys.setdefault(k.key_id, TrustedKey(k.key_id, k.trusted.key))
        keyless = keyless or bool(rule.requirement.identities)
    return VerificationMaterial(tuple(keys[k] for k in sorted(keys)), keyless)


def identity_rule(
    issuer: str | None, subject: str | None, issuer_pattern: str | None = None, subject_pattern: str | None = None
) -> IdentityRule:
    """An IdentityRule; ValueError names what is wrong (a pattern that is not a regular expression)."""
    try:
        return IdentityRule(
            issuer=issuer, subject=subject, issuer_pattern=issuer_pattern, subject_pattern=subject_pattern
        )
    except re.error as exc:
        raise ValueError(f"the pattern is not a regular expression ({exc})") from None
