"""Which vulnerabilities affect an image's packages (pure: no I/O).

What is looked up per package: its OSV ecosystem and name at its version;
for Debian, Ubuntu and Alpine packages the *source* package at the source
version, because those distributions' advisories name source packages. A
package that cannot be looked up (no ecosystem because the OS is unknown, no
version, a version the ecosystem's scheme refuses) is reported in the
warnings, never dropped silently.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from vigil.model.findings import ADVISORY_SEVERITIES, FindingType, severity_rank

from .aliases import Vulnerability, merge_matches
from .matching import AdvisoryIndex
from .versions import base_ecosystem

# Ecosystems whose advisories are keyed by source package.
SOURCE_KEYED = {"Debian", "Ubuntu", "Alpine", "Wolfi", "Chainguard"}


class PackageLike(Protocol):
    type: str
    name: str
    version: str
    ecosystem: str | None
    source_name: str | None
    source_version: str | None


@dataclass(frozen=True, slots=True)
class Lookup:
    ecosystem: str
    name: str
    version: str


def lookup_for(pkg: PackageLike) -> Lookup | str:
    """What to ask the advisory index about ``pkg``, or why it cannot be asked."""
    if not pkg.ecosystem:
        return "no advisory ecosystem (the image's OS is unknown to Vigil)"
    name, version = pkg.name, pkg.version
    if base_ecosystem(pkg.ecosystem) in SOURCE_KEYED:
        name = pkg.source_name or name
        version = pkg.source_version or version
    if not version:
        return "no version recorded"
    return Lookup(pkg.ecosystem, name, version)


@dataclass(frozen=True, slots=True)
class PackageMatch:
    index: int  # position of the package in the input
    lookup: Lookup
    vulnerabilities: tuple[Vulnerability, ...]


def match_packages(index: AdvisoryIndex, packages: Sequence[PackageLike]) -> tuple[list[PackageMatch], list[str]]:
    """Vulnerabilities (advisories merged by alias) of each package that has any,
    and a warning for each package that could not be matched."""
    lookups: list[tuple[int, Lookup]] = []
    warnings: list[str] = []
    for i, pkg in enumerate(packages):
        target = lookup_for(pkg)
        if isinstance(target, str):
            warnings.append(f"{pkg.type}/{pkg.name} {pkg.version or '(no version)'}: not matched: {target}")
        else:
            lookups.append((i, target))
    results = index.match_many((t.ecosystem, t.name, t.version) for _, t in lookups)
    out = []
    for (i, target), result in zip(lookups, results, strict=True):
        pkg = packages[i]
        if isinstance(result, ValueError):
            warnings.append(f"{pkg.type}/{pkg.name} {pkg.version}: not matched: {result}")
        elif result:
            out.append(PackageMatch(i, target, tuple(merge_matches(result, index.advisories.get))))
    return out, warnings


def key_id(vulnerability: Vulnerability) -> str:
    """The id a finding about ``vulnerability`` is keyed by: the smallest advisory id that
    matched. Unlike the primary id (a CVE alias may be added later), it only changes
    when another advisory about the same vulnerability joins the group."""
    return min(vulnerability.advisory_ids)


def finding_type(vulnerability: Vulnerability) -> FindingType:
    return FindingType.MALICIOUS_PACKAGE if vulnerability.malicious else FindingType.VULNERABLE_PACKAGE


def finding_severity(vulnerability: Vulnerability) -> str:
    """Malicious packages are critical; otherwise the advisory's own level."""
    if vulnerability.malicious:
        return FindingType.MALICIOUS_PACKAGE.severity().value
    return vulnerability.severity.level


# An advisory's levels, least severe first.
SEVERITY_ORDER = tuple(s.value for s in reversed(ADVISORY_SEVERITIES))


def at_least(level: str, threshold: str) -> bool:
    return severity_rank(level) >= severity_rank(threshold)


def trips_gate(level: str, threshold: str, *, ignore_unknown: bool = False) -> bool:
    """Whether a vulnerability at ``level`` fails a ``--fail-on threshold`` gate.

    An unrated vulnerability (``unknown``) might be critical, so it fails every
    threshold unless the caller chose to ignore unrated ones; ``unknown`` as the
    threshold fails on any vulnerability."""
    if level == "unknown":
        return not ignore_unknown or threshold == "unknown"
    return at_least(level, threshold)
