"""One vulnerability, many ids: group advisories that are aliases of each other.

PYSEC-2021-66 and GHSA-... both describe CVE-2020-28493; a package matched by
both must be reported once, with every id. Advisories are grouped by the
transitive closure of "shares an id or alias" (``related`` is not an alias).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from .advisory import Advisory
from .matching import Match, sort_versions
from .severity import Severity
from .versions import ECOSYSTEM_SCHEMES, SEMVER


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, x: str) -> str:
        parent = self.parent.setdefault(x, x)
        if parent != x:
            parent = self.parent[x] = self.find(parent)
        return parent

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def _groups(advisories: list[Advisory]) -> list[list[Advisory]]:
    uf = _UnionFind()
    for adv in advisories:
        for alias in adv.aliases:
            uf.union(adv.id, alias)
        uf.find(adv.id)
    grouped: dict[str, list[Advisory]] = {}
    for adv in advisories:
        grouped.setdefault(uf.find(adv.id), []).append(adv)
    return [sorted(g, key=lambda a: a.id) for _, g in sorted(grouped.items())]


def group_by_aliases(advisories: Iterable[Advisory]) -> list[list[Advisory]]:
    """Advisories partitioned into groups that describe the same vulnerability."""
    return _groups(list(advisories))


def primary_id(ids: Iterable[str]) -> str:
    """The id to show first: the CVE when there is one, else the smallest id."""
    ids = sorted(set(ids))
    cves = [i for i in ids if i.startswith("CVE-")]
    return cves[0] if cves else ids[0]


@dataclass(frozen=True, slots=True)
class Vulnerability:
    """Matches of one package that are the same vulnerability under several ids."""

    id: str  # primary_id of all the ids below
    advisory_ids: tuple[str, ...]  # the advisories that matched
    aliases: tuple[str, ...]  # every id it is known by (advisories and their aliases)
    matches: tuple[Match, ...]
    fixed_versions: tuple[str, ...]
    severity: Severity
    severity_from: str  # the advisory whose rating this is ("" when none is rated)
    malicious: bool
    summary: str
    links: tuple[str, ...]


def merge_matches(
    matches: Iterable[Match], alias_record: Callable[[str], Advisory | None] | None = None
) -> list[Vulnerability]:
    """One Vulnerability per alias group among the matches of one package.

    ``alias_record`` finds a record by id among those loaded, so that a rating held only by an
    alias that did not match this package (a CVE record with no packages, a GHSA filed under
    another ecosystem) still rates the vulnerability.
    """
    matches = list(matches)
    by_id = {m.id: m for m in matches}
    out = []
    for group in _groups([m.advisory for m in matches]):
        group_matches = tuple(by_id[a.id] for a in group)
        all_ids = sorted({i for a in group for i in a.all_ids()})
        scheme = ECOSYSTEM_SCHEMES.get(group_matches[0].affected.key.base) or SEMVER
        fixed = sort_versions(scheme, {v for m in group_matches for v in m.fixed_versions})
        # Each record's own best rating (CVSS vector, else its database's word) is
        # picked at import; across the aliases (PYSEC without a score, its GHSA or CVE
        # record with one, matched or not) the worst of the rated ones stands for the
        # vulnerability. Ties keep the matched record.
        in_group = {a.id for a in group}
        aliased = [r for i in all_ids if i not in in_group and alias_record and (r := alias_record(i)) is not None]
        rated = max([*group, *aliased], key=lambda a: (a.severity.rank(), a.severity.score or 0.0))
        worst = rated.severity
        out.append(
            Vulnerability(
                id=primary_id(all_ids),
                advisory_ids=tuple(a.id for a in group),
                aliases=tuple(all_ids),
                matches=group_matches,
                fixed_versions=tuple(fixed),
                severity=worst,
                severity_from=rated.id if worst.source else "",
                malicious=any(a.malicious for a in group),
                summary=next(
                    (a.summary for a in group if a.summary),
                    group[0].details.split("\n", 1)[0],
                ),
                links=tuple(dict.fromkeys(link for a in group for link in a.links)),
            )
        )
    return sorted(out, key=lambda v: v.id)
