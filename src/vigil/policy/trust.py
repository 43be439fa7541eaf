"""Registry trust (pure): which registries a cluster may run images from, and which mirror it pulls through.

A pattern is ``host[:port][/path-prefix]``. It matches an image whose registry is
that host (compared case-insensitively, as DNS does) and whose repository is the
prefix or lies below it on a path boundary: ``registry.example.com/team`` matches
``registry.example.com/team/app`` but not ``registry.example.com/teamster/app``.

A mirror rule says images named ``source`` are really pulled through ``mirror``
(a registry-side pull-through cache such as Artifactory's ``docker-remote``), so
trust and integrity are decided where the cluster actually pulls from:
``docker.io`` -> ``artifactory.example.com/docker-remote`` maps
``docker.io/library/nginx:1.25`` to ``artifactory.example.com/docker-remote/library/nginx:1.25``.

Rules are global or scoped to one cluster (by id or name). A cluster's rules add
to the global trusted list; for mirrors, a cluster's rule wins over a global one,
then the longest source prefix wins.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from vigil.model.image import DEFAULT_REGISTRY, LEGACY_DEFAULT_REGISTRY, ImageRef

if TYPE_CHECKING:
    from vigil.policy.signature_rules import SignatureRule

_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_HOST_RE = re.compile(rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])(?::[0-9]{{1,5}})?")
_PATH_COMPONENT_RE = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
PATTERN_RULE = "must be host[:port][/path-prefix], e.g. registry.example.com:5000/team (no scheme, tag or digest)"


class InvalidPattern(ValueError):
    """A trust or mirror pattern that breaks the grammar; the message names the pattern and the rule."""


@dataclass(frozen=True, slots=True, order=True)
class Pattern:
    host: str
    prefix: str = ""

    @classmethod
    def parse(cls, text: str) -> Pattern:
        if not isinstance(text, str) or not text.strip():
            raise InvalidPattern(f"pattern {text!r}: must not be empty; it {PATTERN_RULE}")
        raw = text.strip()
        if "://" in raw:
            raise InvalidPattern(f"pattern {text!r}: has a scheme; it {PATTERN_RULE}")
        if "@" in raw:
            raise InvalidPattern(f"pattern {text!r}: has a digest; it {PATTERN_RULE}")
        raw = raw.rstrip("/")
        host, _, prefix = raw.partition("/")
        if not _HOST_RE.fullmatch(host):
            raise InvalidPattern(f"pattern {text!r}: {host!r} is not a valid host[:port]; the pattern {PATTERN_RULE}")
        port = host.rpartition(":")[2] if ":" in host and not host.endswith("]") else None
        if port is not None and not 0 < int(port) < 65536:
            raise InvalidPattern(f"pattern {text!r}: port {port} is out of range 1-65535")
        for component in prefix.split("/") if prefix else ():
            if ":" in component:
                raise InvalidPattern(f"pattern {text!r}: has a tag; it {PATTERN_RULE}")
            if not _PATH_COMPONENT_RE.fullmatch(component):
                raise InvalidPattern(
                    f"pattern {text!r}: path component {component!r} must be lowercase letters and digits "
                    "separated by '.', '_', '__' or '-'"
                )
        host = host.lower()
        if host == LEGACY_DEFAULT_REGISTRY:
            host = DEFAULT_REGISTRY
        return cls(host, prefix)

    def matches(self, registry: str, repository: str) -> bool:
        if registry.lower() != self.host:
            return False
        if not self.prefix:
            return True
        return repository == self.prefix or repository.startswith(self.prefix + "/")

    def __str__(self) -> str:
        return f"{self.host}/{self.prefix}" if self.prefix else self.host


@dataclass(frozen=True, slots=True)
class TrustRule:
    pattern: Pattern
    cluster: str | None = None  # None: every cluster

    def describe(self) -> str:
        return f"trusted {self.pattern} ({_scope(self.cluster)})"


@dataclass(frozen=True, slots=True)
class MirrorRule:
    source: Pattern
    mirror: Pattern
    cluster: str | None = None

    def rewrite(self, ref: ImageRef) -> ImageRef:
        rest = ref.repository[len(self.source.prefix) :].lstrip("/") if self.source.prefix else ref.repository
        repository = "/".join(p for p in (self.mirror.prefix, rest) if p)
        return ImageRef(self.mirror.host, repository, ref.tag, ref.digest)

    def describe(self) -> str:
        return f"mirror {self.source} -> {self.mirror} ({_scope(self.cluster)})"


def _scope(cluster: str | None) -> str:
    return "global" if cluster is None else f"cluster {cluster}"


@dataclass(frozen=True, slots=True)
class TrustDecision:
    """Where the image is really pulled from and whether that place is trusted.

    ``trusted`` is None when the policy has no trusted registries at all: trust is
    then not checked, and the service asks no registry (``vigil image check``, run by
    the operator, still asks the image's own registry).
    """

    image: ImageRef
    effective: ImageRef
    trusted: bool | None
    rule: TrustRule | None = None
    mirror: MirrorRule | None = None
    consulted: tuple[str, ...] = ()

    def evidence(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "image": str(self.image),
            "registry": self.image.registry,
            "checked_against": self.effective.name,
            "rule": self.rule.describe() if self.rule else None,
            "mirror": self.mirror.describe() if self.mirror else None,
        }
        if self.trusted is False:
            out["rule"] = f"no trusted pattern matches {self.effective.name}"
            out["trusted_patterns"] = list(self.consulted)
        if self.trusted is None:
            out["rule"] = "no trust policy configured: trust not checked"
        return out


@dataclass(frozen=True)
class TrustPolicy:
    trusted: tuple[TrustRule, ...] = ()
    mirrors: tuple[MirrorRule, ...] = ()
    # What images must carry (vigil.policy.signature_rules), decided where they are really pulled from.
    signatures: tuple[SignatureRule, ...] = ()

    @property
    def configured(self) -> bool:
        return bool(self.trusted)

    @property
    def revision(self) -> str:
        """A stable hash of the rules: evaluations made under another revision are redone."""
        doc: dict[str, Any] = {
            "trusted": sorted([str(r.pattern), r.cluster or ""] for r in self.trusted),
            "mirrors": sorted([str(m.source), str(m.mirror), m.cluster or ""] for m in self.mirrors),
        }
        if self.signatures:
            doc["signatures"] = sorted(r.fingerprint() for r in self.signatures)
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]

    def _applies(self, rule_cluster: str | None, cluster_keys: tuple[str, ...]) -> bool:
        return rule_cluster is None or rule_cluster in cluster_keys

    def mirror_for(self, ref: ImageRef, cluster_keys: tuple[str, ...] = ()) -> MirrorRule | None:
        candidates = [
            m
            for m in self.mirrors
            if self._applies(m.cluster, cluster_keys) and m.source.matches(ref.registry, ref.repository)
        ]
        if not candidates:
            return None
        return max(candidates, key=lambda m: (m.cluster is not None, len(m.source.prefix)))

    def decide(self, ref: ImageRef, cluster_keys: tuple[str, ...] = ()) -> TrustDecision:
        """Trust of ``ref`` in the cluster known by ``cluster_keys`` (its id and name)."""
        mirror = self.mirror_for(ref, cluster_keys)
        effective = mirror.rewrite(ref) if mirror else ref
        rules = [r for r in self.trusted if self._applies(r.cluster, cluster_keys)]
        if not self.configured:
            return TrustDecision(ref, effective, None, None, mirror)
        matching = [r for r in rules if r.pattern.matches(effective.registry, effective.repository)]
        if not matching:
            return TrustDecision(ref, effective, False, None, mirror, tuple(sorted(r.describe() for r in rules)))
        # The most specific rule is the one worth showing: cluster-scoped, then longest prefix.
        best = max(matching, key=lambda r: (r.cluster is not None, len(r.pattern.prefix)))
        return TrustDecision(ref, effective, True, best, mirror)


@dataclass(frozen=True, slots=True)
class PullPlan:
    """Where the scanner may pull one digest from: the places trust allows, and the registries it refuses.

    ``sources`` are (registry, repository) after the mirror rule that applies, all trusted;
    ``refused`` are the registries the policy does not trust, which the service never contacts.
    With no trust policy at all nothing is trusted yet, so nothing is pulled: the registries a
    cluster names are the cluster's word, and pulling from them would let a cluster credential
    aim the service at any host (``unconfigured`` says so, apart from a refusal by a rule).
    """

    sources: tuple[tuple[str, str], ...] = ()
    refused: tuple[str, ...] = ()
    unconfigured: bool = False

    @property
    def blocked(self) -> bool:
        """Every registry naming the digest is refused: nothing may be pulled, for a policy reason."""
        return not self.sources and bool(self.refused)

    def refusal(self) -> str:
        hosts = ", ".join(self.refused)
        if self.unconfigured:
            return (
                f"not scanned: no trust policy is set, so the service contacts no registry (this image names {hosts});"
                " add the registries you trust (vigil trust add, or --trust-file)"
            )
        if len(self.refused) == 1:
            return f"not scanned: registry {hosts} is not trusted by the trust policy"
        return f"not scanned: registries {hosts} are not trusted by the trust policy"


def pull_plan(policy: TrustPolicy, named: list[tuple[ImageRef, tuple[str, ...]]]) -> PullPlan:
    """The pull plan of a digest from the references naming it, each with the keys (id, name) of its cluster."""
    sources: set[tuple[str, str]] = set()
    refused: set[str] = set()
    for ref, cluster_keys in named:
        decision = policy.decide(ref, cluster_keys)
        if decision.trusted:
            sources.add((decision.effective.registry, decision.effective.repository))
        else:
            refused.add(decision.effective.registry)
    return PullPlan(tuple(sorted(sources)), tuple(sorted(refused)), unconfigured=not policy.configured)
