"""The trust policy as a document: the body of GET/PUT /api/v1/policy/trust and the YAML policy file.

    trusted:                      # global: every cluster may run images from these
      - registry.example.com/team
    mirrors:                      # images named `source` are pulled through `mirror`
      - source: docker.io
        mirror: artifactory.example.com/docker-remote
    clusters:                     # per cluster (by id or name), in addition to the global rules
      prod-eu:
        trusted: [registry.example.com/prod]
        mirrors: []

Validation errors name the field (``trusted[1]``, ``clusters.prod-eu.mirrors[0].mirror``)
and the rule the value broke.
"""

from __future__ import annotations

from typing import Annotated

import yaml
from pydantic import AfterValidator, BaseModel, Field, ValidationError, field_validator

from vigil.policy.trust import (
    InvalidPattern,
    MirrorRule,
    Pattern,
    TrustPolicy,
    TrustRule,
)
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


class ScopeDoc(BaseModel):
    model_config = {"extra": "forbid"}
    trusted: list[PatternText] = Field(default_factory=list, max_length=MAX_RULES)
    mirrors: list[MirrorDoc] = Field(default_factory=list, max_length=MAX_RULES)


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
        for cluster, scope in [(None, self), *self.clusters.items()]:
            trusted += [TrustRule(Pattern.parse(p), cluster) for p in scope.trusted]
            mirrors += [MirrorRule(Pattern.parse(m.source), Pattern.parse(m.mirror), cluster) for m in scope.mirrors]
        return TrustPolicy(tuple(dict.fromkeys(trusted)), tuple(dict.fromkeys(mirrors)))

    @classmethod
    def from_policy(cls, policy: TrustPolicy) -> PolicyDoc:
        scopes: dict[str | None, ScopeDoc] = {}
        for rule in sorted(policy.trusted, key=lambda r: (r.cluster or "", r.pattern)):
            scopes.setdefault(rule.cluster, ScopeDoc()).trusted.append(str(rule.pattern))
        for m in sorted(policy.mirrors, key=lambda m: (m.cluster or "", m.source, m.mirror)):
            scopes.setdefault(m.cluster, ScopeDoc()).mirrors.append(
                MirrorDoc(source=str(m.source), mirror=str(m.mirror))
            )
        top = scopes.pop(None, ScopeDoc())
        clusters = {cluster: doc for cluster, doc in scopes.items() if cluster is not None}
        return cls(trusted=top.trusted, mirrors=top.mirrors, clusters=dict(sorted(clusters.items())))


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
