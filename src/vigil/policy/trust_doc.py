"""The trust policy as a document: the body of GET/PUT /api/v1/policy/trust and the YAML policy file.

    trusted:                      # global: every cluster may run images from these
      - registry.example.com/team
    mirrors:                      # images named `source` are pulled through `mirror`
      - source: docker.io
        mirror: artifactory.example.com/docker-remote
    signatures:                   # what images under a pattern must carry (vigil.policy.signature_rules)
      - pattern: registry.example.com/team
        namespace: payments       # optional: only there
        keys:
          - name: ci
            pem: "-----BEGIN PUBLIC KEY-----\n..."
        identities:
          - issuer: https://token.actions.githubusercontent.com
            subject_pattern: https://github.com/acme/.*
        attestations: [https://slsa.dev/provenance/v1]
        source_repositories: [https://github.com/acme/app]
        builder_ids: [https://github.com/actions/runner/github-hosted]
    clusters:                     # per cluster (by id or name), in addition to the global rules
      prod-eu:
        trusted: [registry.example.com/prod]
        mirrors: []
        signatures: []

Validation errors name the field (``trusted[1]``, ``clusters.prod-eu.mirrors[0].mirror``)
and the rule the value broke.
"""

from __future__ import annotations

from typing import Annotated

import yaml
from pydantic import AfterValidator, BaseModel, Field, ValidationError, field_validator, model_validator

from vigil.policy.signature_rules import (
    MAX_IDENTITIES,
    MAX_KEYS,
    MAX_VALUES,
    AcceptedKey,
    SignatureRequirement,
    SignatureRule,
    identity_rule,
)
from vigil.policy.trust import (
    InvalidPattern,
    MirrorRule,
    Pattern,
    TrustPolicy,
    TrustRule,
)
from vigil.signatures.keys import MAX_KEY_BYTES, BadKey
from vigil.yaml_errors import yaml_error_message

MAX_RULES = 1000


def _pattern(value: str) -> str:
    try:
        return str(Pattern.parse(value))
    except InvalidPattern as exc:
        raise ValueError(str(exc)) from None


PatternText = Annotated[
    str,
    Field(min_length=1, max_length=512, description="host[:port][/path-prefix]"),
    AfterValidator(_pattern),
]


class MirrorDoc(BaseModel):
    model_config = {"extra": "forbid"}
    source: PatternText = Field(description="images named under this pattern ...")
    mirror: PatternText = Field(description="... are pulled through this registry path")


class KeyDoc(BaseModel):
    model_config = {"extra": "forbid"}
    name: str = Field(min_length=1, max_length=128, description="how findings and views name the key")
    pem: str = Field(min_length=1, max_length=MAX_KEY_BYTES, description="the PEM public key (cosign.pub)")

    @field_validator("pem")
    @classmethod
    def _public_key(cls, v: str) -> str:
        try:
            AcceptedKey("check", v)
        except BadKey as exc:
            raise ValueError(str(exc)) from None
        return v


class IdentityDoc(BaseModel):
    """A keyless signer: the OIDC issuer and the certificate's subject, each exact or a full-match pattern."""

    model_config = {"extra": "forbid"}
    issuer: str | None = Field(None, min_length=1, max_length=1024)
    issuer_pattern: str | None = Field(None, min_length=1, max_length=1024)
    subject: str | None = Field(None, min_length=1, max_length=1024)
    subject_pattern: str | None = Field(None, min_length=1, max_length=1024)

    @model_validator(mode="after")
    def _one_of_each(self) -> IdentityDoc:
        if (self.issuer is None) == (self.issuer_pattern is None):
            raise ValueError("name exactly one of issuer and issuer_pattern")
        if (self.subject is None) == (self.subject_pattern is None):
            raise ValueError("name exactly one of subject and subject_pattern")
        identity_rule(self.issuer, self.subject, self.issuer_pattern, self.subject_pattern)
        return self


Values = Annotated[list[Annotated[str, Field(min_length=1, max_length=1024)]], Field(max_length=MAX_VALUES)]


class SignatureRuleDoc(BaseModel):
    model_config = {"extra": "forbid"}
    pattern: PatternText = Field(description="the images the rule is about: host[:port][/path-prefix]")
    namespace: str | None = Field(None, min_length=1, max_length=253, description="only in this namespace")
    keys: list[KeyDoc] = Field(default_factory=list, max_length=MAX_KEYS)
    identities: list[IdentityDoc] = Field(default_factory=list, max_length=MAX_IDENTITIES)
    attestations: Values = Field(default_factory=list, description="required predicate types")
    source_repositories: Values = Field(default_factory=list, description="accepted provenance sources")
    builder_ids: Values = Field(default_factory=list, description="accepted provenance builder ids")

    @model_validator(mode="after")
    def _says_whose(self) -> SignatureRuleDoc:
        if not (self.keys or self.identities):
            raise ValueError(
                "name keys or identities: whose signatures count (attestations, source_repositories and "
                "builder_ids hold for attestations signed by them)"
            )
        names = [k.name for k in self.keys]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"key names must be unique: {', '.join(twice)} appear more than once")
        return self

    def to_rule(self, cluster: str | None) -> SignatureRule:
        requirement = SignatureRequirement(
            keys=tuple(AcceptedKey(k.name, k.pem) for k in self.keys),
            identities=tuple(
                identity_rule(i.issuer, i.subject, i.issuer_pattern, i.subject_pattern) for i in self.identities
            ),
            attestations=tuple(dict.fromkeys(self.attestations)),
            source_repositories=tuple(dict.fromkeys(self.source_repositories)),
            builder_ids=tuple(dict.fromkeys(self.builder_ids)),
        )
        return SignatureRule(Pattern.parse(self.pattern), requirement, cluster, self.namespace)

    @classmethod
    def from_rule(cls, rule: SignatureRule) -> SignatureRuleDoc:
        req = rule.requirement
        return cls(
            pattern=str(rule.pattern),
            namespace=rule.namespace,
            keys=[KeyDoc(name=k.name, pem=k.pem) for k in req.keys],
            identities=[
                IdentityDoc(
                    issuer=i.issuer,
                    issuer_pattern=i.issuer_pattern,
                    subject=i.subject,
                    subject_pattern=i.subject_pattern,
                )
                for i in req.identities
            ],
            attestations=list(req.attestations),
            source_repositories=list(req.source_repositories),
            builder_ids=list(req.builder_ids),
        )


class ScopeDoc(BaseModel):
    model_config = {"extra": "forbid"}
    trusted: list[PatternText] = Field(default_factory=list, max_length=MAX_RULES)
    mirrors: list[MirrorDoc] = Field(default_factory=list, max_length=MAX_RULES)
    signatures: list[SignatureRuleDoc] = Field(default_factory=list, max_length=MAX_RULES)

    @field_validator("signatures")
    @classmethod
    def _one_rule_per_place(cls, v: list[SignatureRuleDoc]) -> list[SignatureRuleDoc]:
        places = [(r.pattern, r.namespace or "") for r in v]
        twice = sorted({f"{p}{' in ' + n if n else ''}" for p, n in places if places.count((p, n)) > 1})
        if twice:
            raise ValueError(f"one rule per pattern and namespace: {', '.join(twice)} appear more than once")
        return v


class PolicyDoc(ScopeDoc):
    clusters: dict[str, ScopeDoc] = Field(
        default_factory=dict, description="rules for one cluster, by cluster id or name"
    )

    @field_validator("clusters")
    @classmethod
    def _cluster_names(cls, v: dict[str, ScopeDoc]) -> dict[str, ScopeDoc]:
        for name in v:
            if not name or len(name) > 253:
                raise ValueError(f"cluster key {name!r} must be a cluster id or name of 1-253 characters")
        return v

    def to_policy(self) -> TrustPolicy:
        trusted: list[TrustRule] = []
        mirrors: list[MirrorRule] = []
        signatures: list[SignatureRule] = []
        for cluster, scope in [(None, self), *self.clusters.items()]:
            trusted += [TrustRule(Pattern.parse(p), cluster) for p in scope.trusted]
            mirrors += [MirrorRule(Pattern.parse(m.source), Pattern.parse(m.mirror), cluster) for m in scope.mirrors]
            signatures += [r.to_rule(cluster) for r in scope.signatures]
        return TrustPolicy(tuple(dict.fromkeys(trusted)), tuple(dict.fromkeys(mirrors)), tuple(signatures))

    @classmethod
    def from_policy(cls, policy: TrustPolicy) -> PolicyDoc:
        scopes: dict[str | None, ScopeDoc] = {}
        for rule in sorted(policy.trusted, key=lambda r: (r.cluster or "", r.pattern)):
            scopes.setdefault(rule.cluster, ScopeDoc()).trusted.append(str(rule.pattern))
        for m in sorted(policy.mirrors, key=lambda m: (m.cluster or "", m.source, m.mirror)):
            scopes.setdefault(m.cluster, ScopeDoc()).mirrors.append(
                MirrorDoc(source=str(m.source), mirror=str(m.mirror))
            )
        for r in sorted(policy.signatures, key=lambda r: (r.cluster or "", r.pattern, r.namespace or "")):
            scopes.setdefault(r.cluster, ScopeDoc()).signatures.append(SignatureRuleDoc.from_rule(r))
        top = scopes.pop(None, ScopeDoc())
        clusters = {cluster: doc for cluster, doc in scopes.items() if cluster is not None}
        return cls(
            trusted=top.trusted,
            mirrors=top.mirrors,
            signatures=top.signatures,
            clusters=dict(sorted(clusters.items())),
        )


class PolicyFileError(ValueError):
    """A policy file that cannot be read or breaks a rule; names the file and the field."""


def field_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(document)"


def parse_policy_text(text: str, source: str) -> TrustPolicy:
    """The trust policy in a YAML document; ``source`` names it in every error (a file's path)."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PolicyFileError(yaml_error_message(f"trust policy file {source}", exc)) from None
    if data is None:
        data = {}
    try:
        return PolicyDoc.model_validate(data).to_policy()
    except ValidationError as exc:
        problems = "; ".join(
            f"{field_path(tuple(e['loc']))}: {e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors(include_url=False)[:5]
        )
        raise PolicyFileError(f"trust policy file {source}: {problems}") from None
