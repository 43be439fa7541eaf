"""The vulnerability funnel (pure): of an image's (or a workload's) known vulnerabilities, those with a fix,
and of those the ones whose code was observed running.

A vulnerability is one advisory of one package (purl type, name, version): the same advisory of the same
package found at two paths of an image is one; across a workload's images it is still one. Its identity is
spelt as the subject key of its ``running_vulnerability`` finding (``<advisory key>|<type>/<name>@<version>``),
so the running stage is an exact join, not a match of names.

The stages nest, as a funnel does: ``all`` >= ``with_fix`` >= ``running`` (with a fix and running), the
vulnerabilities to fix first. What runs without a fix is counted beside them (``running_without_fix``), so
``running + running_without_fix`` is every running vulnerability the contents know. A running finding whose
vulnerability the contents no longer list (a withdrawn advisory, a newer scan) counts nowhere.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

from vigil.model.findings import ADVISORY_SEVERITIES, Severity, severity_rank

__all__ = ["Funnel", "KnownVulnerability", "Stage", "funnel", "vulnerability_key"]


def vulnerability_key(advisory_key: str, package_type: str, name: str, version: str) -> str:
    """One vulnerability's identity: the subject key its running_vulnerability finding carries."""
    return f"{advisory_key}|{package_type}/{name}@{version}"


@dataclass(frozen=True, slots=True)
class KnownVulnerability:
    """One row of an image's contents: a package's advisory."""

    key: str  # vulnerability_key(...)
    severity: str  # the advisory's level as stored
    malicious: bool  # counted as critical, as its finding is
    has_fix: bool  # the advisory names a fixed version


def _level(severity: str, malicious: bool) -> Severity:
    if malicious:
        return Severity.CRITICAL
    try:
        level = Severity(severity)
    except ValueError:
        return Severity.UNKNOWN
    return level if level in ADVISORY_SEVERITIES else Severity.UNKNOWN


@dataclass(frozen=True, slots=True)
class Stage:
    count: int = 0
    # Every advisory level, most severe first, zeros included.
    severities: dict[str, int] = field(default_factory=lambda: {s.value: 0 for s in ADVISORY_SEVERITIES})

    @classmethod
    def of(cls, levels: Iterable[Severity]) -> Stage:
        counts = {s.value: 0 for s in ADVISORY_SEVERITIES}
        n = 0
        for level in levels:
            counts[level.value] += 1
            n += 1
        return cls(n, counts)


@dataclass(frozen=True, slots=True)
class Funnel:
    all: Stage
    with_fix: Stage
    running: Stage  # with a fix, and observed running
    running_without_fix: Stage

    def as_dict(self) -> dict:
        return {
            name: {"count": stage.count, "severities": dict(stage.severities)}
            for name, stage in (
                ("all", self.all),
                ("with_fix", self.with_fix),
                ("running", self.running),
                ("running_without_fix", self.running_without_fix),
            )
        }


def funnel(known: Iterable[KnownVulnerability], running: Collection[str]) -> Funnel:
    """The funnel of ``known`` (rows, duplicates allowed) given the keys observed ``running``.

    Rows of one key are one vulnerability: its level is the most severe of them, and it has a fix when any
    of them names one (the rows of one advisory and package agree unless the contents were matched twice)."""
    merged: dict[str, tuple[Severity, bool]] = {}
    for v in known:
        level = _level(v.severity, v.malicious)
        seen = merged.get(v.key)
        if seen is not None:
            level = level if severity_rank(level) > severity_rank(seen[0]) else seen[0]
            merged[v.key] = (level, seen[1] or v.has_fix)
        else:
            merged[v.key] = (level, v.has_fix)
    fixed = {k: level for k, (level, has_fix) in merged.items() if has_fix}
    return Funnel(
        all=Stage.of(level for level, _ in merged.values()),
        with_fix=Stage.of(fixed.values()),
        running=Stage.of(level for k, level in fixed.items() if k in running),
        running_without_fix=Stage.of(level for k, (level, has_fix) in merged.items() if not has_fix and k in running),
    )
