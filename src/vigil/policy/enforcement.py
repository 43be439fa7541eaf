"""The enforcement policy (pure): what admission, and later runtime prevention, refuse, warn about or record.

A policy document holds named policies; each has a scope (clusters, namespaces by name or label selector,
workloads by labels), a mode and rules. Every policy whose scope matches a request applies, so a narrow
``enforce`` policy and a cluster-wide ``audit`` one can hold together. Exempt namespaces (Vigil's own and
Kubernetes' system namespaces by default) are never judged, and a break-glass annotation with a reason admits
what enforce mode would deny, recorded as such.

The facts about an image (its integrity verdict, whether it was scanned, its malicious packages and
vulnerabilities) come from the caller: the webhook's cache of the service's verdicts, or `vigil image check`'s
own registry probe, so both give the same answer for the same facts.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)

from vigil.model.findings import Severity
from vigil.model.image import ImageRef
from vigil.policy.integrity import Status, Verdict
from vigil.policy.signature_checks import DigestSignatures
from vigil.policy.signature_rules import rule_for
from vigil.policy.signature_verdict import SignatureStatus
from vigil.policy.signature_verdict import evaluate as signature_verdict
from vigil.policy.trust import TrustPolicy
from vigil.policy.trust_doc import field_path
from vigil.yaml_errors import yaml_error_message

DEFAULT_EXEMPT_NAMESPACES = ("kube-system", "kube-public", "kube-node-lease")
DEFAULT_BREAK_GLASS_ANNOTATION = "vigil.dev/break-glass"
_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


class Mode(StrEnum):
    ENFORCE = "enforce"  # deny
    WARN = "warn"  # admit with a warning the client prints
    AUDIT = "audit"  # admit and record what would have been denied


class Unscanned(StrEnum):
    ALLOW = "allow"
    WARN = "warn"
    DENY = "deny"


class Failure(StrEnum):
    IGNORE = "ignore"  # fail-open: the webhook being unreachable admits
    FAIL = "fail"  # fail-closed, through the second webhook


class Outcome(StrEnum):
    ALLOWED = "allowed"
    DENIED = "denied"
    WARNED = "warned"
    AUDITED = "audited"
    BREAK_GLASS = "break_glass"
    EXEMPT = "exempt"


class Rule(StrEnum):
    UNTRUSTED_REGISTRY = "untrusted_registry"
    INTEGRITY = "integrity"
    UNSCANNED = "unscanned"
    MALICIOUS_PACKAGE = "malicious_package"
    VULNERABILITIES = "vulnerabilities"
    SIGNATURES = "signatures"


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Requirement(_Doc):
    key: str = Field(min_length=1)
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    values: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _values_fit_operator(self) -> Requirement:
        if self.operator in ("In", "NotIn") and not self.values:
            raise ValueError(f"operator {self.operator} needs values")
        if self.operator in ("Exists", "DoesNotExist") and self.values:
            raise ValueError(f"operator {self.operator} takes no values")
        return self

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.operator == "Exists":
            return self.key in labels
        if self.operator == "DoesNotExist":
            return self.key not in labels
        inside = self.key in labels and labels[self.key] in self.values
        return inside if self.operator == "In" else not inside


class LabelSelector(_Doc):
    """Kubernetes' label selector: every label and every expression must match (an empty selector matches all)."""

    matchLabels: dict[str, str] = Field(default_factory=dict)  # noqa: N815 (Kubernetes' spelling)
    matchExpressions: tuple[Requirement, ...] = ()  # noqa: N815

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(labels.get(k) == v for k, v in self.matchLabels.items()) and all(
            r.matches(labels) for r in self.matchExpressions
        )


class Scope(_Doc):
    clusters: tuple[str, ...] = ()
    namespaces: tuple[str, ...] = ()
    namespace_selector: LabelSelector | None = None
    workload_selector: LabelSelector | None = None

    def matches(self, subject: AdmissionSubject) -> bool:
        return (
            (not self.clusters or any(k in self.clusters for k in subject.cluster_keys))
            and (not self.namespaces or subject.namespace in self.namespaces)
            and (self.namespace_selector is None or self.namespace_selector.matches(subject.namespace_labels))
            and (self.workload_selector is None or self.workload_selector.matches(subject.workload_labels))
        )


class VulnerabilityRule(_Doc):
    severity: Severity
    fixable_only: bool = False
    # A vulnerability no source rated (no CVSS vector, no rating of its own or of an alias record) counts at
    # any floor, as under `vigil scan --fail-on`: a missing rating is not a low one. True leaves those out.
    ignore_unrated: bool = False

    @field_validator("severity")
    @classmethod
    def _rated(cls, v: Severity) -> Severity:
        if v in (Severity.UNKNOWN, Severity.INFO):
            raise ValueError("severity must be one of critical, high, medium, low")
        return v


class Rules(_Doc):
    untrusted_registry: bool = True
    integrity: bool = True
    unscanned: Unscanned = Unscanned.ALLOW
    malicious_package: bool = True
    vulnerabilities: VulnerabilityRule | None = None
    # Refuse what the trust policy's signature rules find unsigned, invalid or of the wrong provenance.
    signatures: bool = False

    # No return annotation: pydantic then documents the serialized form as this model (a dict annotation would
    # make it a bare object in the OpenAPI document, whose PolicyEntry then differs between request and answer).
    @model_serializer(mode="wrap")
    def _without_unused_signatures(self, handler: SerializerFunctionWrapHandler):  # type: ignore[no-untyped-def]
        # A policy that does not ask for signatures serializes (and hashes to its revision) as before
        # the rule existed.
        data: dict[str, Any] = handler(self)
        if not self.signatures:
            data.pop("signatures", None)
        return data


class RuntimeMode(StrEnum):
    """A runtime prevention rule's mode: kill in the kernel, report what would have been killed, or nothing."""

    OFF = "off"
    AUDIT = "audit"
    ENFORCE = "enforce"

    @property
    def rank(self) -> int:
        return _RUNTIME_RANK[self]


_RUNTIME_RANK = {RuntimeMode.OFF: 0, RuntimeMode.AUDIT: 1, RuntimeMode.ENFORCE: 2}


class RuntimeRules(_Doc):
    """Runtime prevention in the containers this policy scopes; one field per ``vigil.wire.prevention``
    PreventionRule, decided in the node's kernel (see ``vigil.policy.prevention``)."""

    drift: RuntimeMode = RuntimeMode.OFF  # exec of a file written after the container started
    memfd_exec: RuntimeMode = RuntimeMode.OFF
    deleted_exec: RuntimeMode = RuntimeMode.OFF
    tmp_exec: RuntimeMode = RuntimeMode.OFF  # under /tmp, /dev/shm or /var/tmp
    deny_listed: RuntimeMode = RuntimeMode.OFF  # a file whose sha256 is on the deny list
    escape: RuntimeMode = RuntimeMode.OFF  # the escape-attempt syscalls (the syscall itself completes)

    def on(self) -> dict[str, RuntimeMode]:
        """The rules that are not off, by field name."""
        return {k: v for k, v in self.__dict__.items() if v is not RuntimeMode.OFF}


class PolicyEntry(_Doc):
    name: str
    mode: Mode = Mode.ENFORCE
    failure: Failure = Failure.IGNORE
    scope: Scope = Field(default_factory=Scope)
    rules: Rules = Field(default_factory=Rules)
    runtime: RuntimeRules = Field(default_factory=RuntimeRules)

    @field_validator("name")
    @classmethod
    def _dns_label(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError(f"{v!r} must be lower-case letters, digits and '-', at most 63 characters")
        return v


class EnforcementPolicy(_Doc):
    exempt_namespaces: tuple[str, ...] = DEFAULT_EXEMPT_NAMESPACES
    break_glass_annotation: str = Field(DEFAULT_BREAK_GLASS_ANNOTATION, min_length=1)
    policies: tuple[PolicyEntry, ...] = ()

    @field_validator("policies")
    @classmethod
    def _unique_names(cls, v: tuple[PolicyEntry, ...]) -> tuple[PolicyEntry, ...]:
        names = [p.name for p in v]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"policy names must be unique: {', '.join(twice)} appear more than once")
        return v

    @property
    def revision(self) -> str:
        """A stable hash of the document: decisions cached under another revision are made again."""
        data = self.model_dump(mode="json")
        for entry in data["policies"]:
            # Runtime rules all off hash as a document written before runtime rules existed, so a stored
            # revision stays the revision of the policy it names.
            if not any(mode != RuntimeMode.OFF for mode in entry["runtime"].values()):
                del entry["runtime"]
        doc = json.dumps(data, sort_keys=True)
        return hashlib.sha256(doc.encode()).hexdigest()[:16]


class EnforcementPolicyError(ValueError):
    """A policy document that cannot be read or breaks a rule; names the source and the field."""


def parse_enforcement(data: object, source: str) -> EnforcementPolicy:
    try:
        return EnforcementPolicy.model_validate({} if data is None else data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{field_path(tuple(e['loc']))}: {e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors(include_url=False)[:5]
        )
        raise EnforcementPolicyError(f"enforcement policy {source}: {problems}") from None


def load_enforcement_yaml(text: str, source: str) -> EnforcementPolicy:
    """The policy in a YAML (or JSON) document; ``source`` names it in every error (a file's path)."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise EnforcementPolicyError(yaml_error_message(f"enforcement policy {source}", exc)) from None
    return parse_enforcement(data, source)


@dataclass(frozen=True, slots=True)
class AdmissionSubject:
    """What is being admitted: where, by whom, with which labels and annotations."""

    cluster: str
    namespace: str
    kind: str = "Pod"
    name: str = ""
    user: str = ""
    namespace_labels: Mapping[str, str] = field(default_factory=dict)
    workload_labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    cluster_name: str = ""  # scopes and trust rules may name a cluster by id or by name

    @property
    def cluster_keys(self) -> tuple[str, ...]:
        return tuple(k for k in (self.cluster, self.cluster_name) if k)


@dataclass(frozen=True, slots=True)
class VulnerabilityFact:
    advisory_id: str
    package: str
    severity: Severity
    fixable: bool


@dataclass(frozen=True, slots=True)
class ImageFacts:
    """What is known about one image of the request. ``integrity`` None: not known yet (no verdict)."""

    reference: str  # as written in the object
    image: ImageRef
    integrity: Verdict | None = None
    scanned: bool = False
    malicious_packages: tuple[str, ...] = ()
    vulnerabilities: tuple[VulnerabilityFact, ...] = ()
    # What the digest's signatures prove (None: not checked yet, never a violation).
    signatures: DigestSignatures | None = None


@dataclass(frozen=True, slots=True)
class Violation:
    policy: str
    mode: Mode
    rule: Rule
    image: str
    message: str
    evidence: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Decision:
    outcome: Outcome
    violations: tuple[Violation, ...] = ()
    warnings: tuple[str, ...] = ()
    exempt: str | None = None
    break_glass: str | None = None  # the reason given in the annotation

    @property
    def allowed(self) -> bool:
        return self.outcome is not Outcome.DENIED

    @property
    def message(self) -> str:
        """Why it was denied (every enforce-mode violation), or empty."""
        return "; ".join(v.message for v in self.violations if v.mode is Mode.ENFORCE)


def _digest_text(digest: str | None) -> str:
    # In full: whoever reads a denial compares it with their registry's digest character by character.
    return digest or "none"


def _integrity_violation(facts: ImageFacts) -> tuple[str, dict[str, Any]] | None:
    verdict = facts.integrity
    if verdict is None or verdict.status is not Status.VIOLATION or not verdict.findings:
        return None
    finding = verdict.findings[0]
    ev = finding.evidence
    running, registry = ev.get("runtime_digest"), ev.get("registry_digest")
    kind = str(finding.type)
    if kind == "digest_mismatch":
        text = (
            f"digest {_digest_text(running)} is not in the trusted registry {ev.get('checked_against')}, "
            f"whose tag {ev.get('tag')} is {_digest_text(registry)}"
        )
    elif kind == "tag_moved":
        text = (
            f"tag {ev.get('tag')} moved: the image runs {_digest_text(running)}, "
            f"the registry's tag is {_digest_text(registry)}"
        )
    else:
        missing = ev.get("missing") or "artifact"
        text = f"the trusted registry {ev.get('checked_against')} has no such {missing}"
    return f"{kind}: {text}", {"finding": kind, "runtime_digest": running, "registry_digest": registry}


def _signature_violation(
    trust: TrustPolicy, effective: ImageRef, cluster_keys: tuple[str, ...], namespace: str | None, facts: ImageFacts
) -> tuple[str, dict[str, Any]] | None:
    """The trust policy's signature verdict for the image, as admission text, when it is a violation."""
    rule = rule_for(trust.signatures, effective, cluster_keys, namespace)
    if rule is None or facts.signatures is None:
        return None
    verdict = signature_verdict(facts.signatures, rule, image=facts.reference)
    if verdict.status is not SignatureStatus.VIOLATION:
        return None
    text = "; ".join(f"{f.type}: {', '.join(f.evidence['failing_checks'])}" for f in verdict.findings)
    evidence = {
        "findings": [str(f.type) for f in verdict.findings],
        "rule": rule.describe(),
        "failing_checks": [c for f in verdict.findings for c in f.evidence["failing_checks"]],
        "signatures": verdict.evidence.get("signatures", []),
    }
    return f"{text} ({rule.describe()})", evidence


def _hits(
    entry: PolicyEntry,
    trust: TrustPolicy,
    cluster_keys: tuple[str, ...],
    facts: ImageFacts,
    namespace: str | None = None,
) -> list[tuple[Rule, str, dict[str, Any], bool]]:
    """Each rule ``facts`` breaks under ``entry``: (rule, text, evidence, only a warning)."""
    rules = entry.rules
    out: list[tuple[Rule, str, dict[str, Any], bool]] = []
    decision = trust.decide(facts.image, cluster_keys)
    if rules.untrusted_registry and decision.trusted is False:
        patterns = "; ".join(decision.consulted) or "no trusted pattern"
        text = f"registry {decision.effective.registry} is not trusted (consulted: {patterns})"
        out.append((Rule.UNTRUSTED_REGISTRY, text, {"checked_against": decision.effective.name}, False))
        return out  # an untrusted image is asked nothing more
    if rules.integrity:
        hit = _integrity_violation(facts)
        if hit is not None:
            out.append((Rule.INTEGRITY, hit[0], hit[1], False))
    if rules.signatures:
        signed = _signature_violation(trust, decision.effective, cluster_keys, namespace, facts)
        if signed is not None:
            out.append((Rule.SIGNATURES, signed[0], signed[1], False))
    if not facts.scanned:
        if rules.unscanned is not Unscanned.ALLOW:
            out.append(
                (Rule.UNSCANNED, "not scanned by Vigil yet", {}, rules.unscanned is Unscanned.WARN),
            )
        return out
    if rules.malicious_package and facts.malicious_packages:
        names = ", ".join(sorted(facts.malicious_packages))
        out.append(
            (
                Rule.MALICIOUS_PACKAGE,
                f"malicious packages: {names}",
                {"packages": sorted(facts.malicious_packages)},
                False,
            )
        )
    if rules.vulnerabilities is not None:
        floor = rules.vulnerabilities.severity.rank
        counts_unrated = not rules.vulnerabilities.ignore_unrated
        found = sorted(
            (
                v
                for v in facts.vulnerabilities
                if (v.severity.rank >= floor or (counts_unrated and v.severity is Severity.UNKNOWN))
                and (v.fixable or not rules.vulnerabilities.fixable_only)
            ),
            key=lambda v: (-v.severity.rank, v.advisory_id),
        )
        if found:
            fixable = " with a fix" if rules.vulnerabilities.fixable_only else ""
            unrated = sum(v.severity is Severity.UNKNOWN for v in found)
            floor_text = f"at {rules.vulnerabilities.severity} or above" + (
                f" or unrated ({unrated} unknown)" if unrated else ""
            )
            shown = ", ".join(f"{v.advisory_id} ({v.package}, {v.severity})" for v in found[:3])
            more = f" and {len(found) - 3} more" if len(found) > 3 else ""
            text = f"{len(found)} vulnerabilities {floor_text}{fixable}: {shown}{more}"
            out.append((Rule.VULNERABILITIES, text, {"advisories": [v.advisory_id for v in found]}, False))
    return out


def evaluate(
    policy: EnforcementPolicy, trust: TrustPolicy, subject: AdmissionSubject, images: Sequence[ImageFacts]
) -> Decision:
    """The decision for ``subject`` running ``images``: the strictest of every policy whose scope matches."""
    if subject.namespace in policy.exempt_namespaces:
        return Decision(Outcome.EXEMPT, exempt=f"namespace {subject.namespace} is exempt")
    violations: list[Violation] = []
    warnings: list[str] = []
    for entry in policy.policies:
        if not entry.scope.matches(subject):
            continue
        for facts in images:
            for rule, text, evidence, warn_only in _hits(entry, trust, subject.cluster_keys, facts, subject.namespace):
                mode = Mode.WARN if warn_only and entry.mode is Mode.ENFORCE else entry.mode
                message = f'policy "{entry.name}" rule {rule}: image {facts.reference}: {text}'
                violations.append(Violation(entry.name, mode, rule, facts.reference, message, evidence))
                if mode is Mode.WARN:
                    warnings.append(message)
    enforced = [v for v in violations if v.mode is Mode.ENFORCE]
    if enforced:
        reason = (subject.annotations.get(policy.break_glass_annotation) or "").strip()
        if reason:
            return Decision(Outcome.BREAK_GLASS, tuple(violations), tuple(warnings), break_glass=reason)
        return Decision(Outcome.DENIED, tuple(violations), tuple(warnings))
    if warnings:
        return Decision(Outcome.WARNED, tuple(violations), tuple(warnings))
    if violations:
        return Decision(Outcome.AUDITED, tuple(violations))
    return Decision(Outcome.ALLOWED)
