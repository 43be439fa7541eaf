"""Which advisories affect a package at a version.

``AdvisoryIndex`` keys every affected entry by (ecosystem base, release,
normalized name), so a lookup costs one dict access and then only the few
advisories about that package are evaluated: matching scales with the number
of packages scanned, not with the size of the database.

Range semantics follow the OSV schema's evaluation: events of a range are
sorted by version and walked; ``introduced`` opens, ``fixed`` closes
(exclusive), ``last_affected`` closes after that version (inclusive), and a
version at or past any ``limit`` is outside the range. SEMVER ranges are
ordered by SemVer whatever the ecosystem; ECOSYSTEM ranges by the ecosystem's
own scheme; explicit ``versions`` lists match exactly (equal under the scheme,
so PyPI ``1.0`` matches a listed ``1.0.0``).

GIT ranges are ignored: their events are commit hashes, and deciding whether
an installed package contains a commit needs the repository's history, which
a package version does not carry. OSV exporters already translate GIT ranges
into the ``versions`` list where they can, and that list is matched.
"""

from __future__ import annotations

import logging
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterable, Sequence, Set
from dataclasses import dataclass
from functools import cmp_to_key, lru_cache
from typing import Any

from vigil.gcpause import paused_gc

from .advisory import Advisory, Affected, Range
from .ecosystems import normalize_name, parse_ecosystem
from .severity import Severity
from .versions import ECOSYSTEM_SCHEMES, SEMVER, VersionScheme, check_version

log = logging.getLogger(__name__)

_EVENT_ORDER = {"introduced": 0, "fixed": 1, "last_affected": 2, "limit": 3}


@dataclass(frozen=True, slots=True)
class Match:
    advisory: Advisory
    affected: Affected  # the package entry that matched
    ranges: tuple[Range, ...]  # the ranges the version is in (empty if matched by the versions list)
    in_versions_list: bool  # the version is listed explicitly
    fixed_versions: tuple[str, ...]  # fixed events above the installed version, oldest first

    @property
    def id(self) -> str:
        return self.advisory.id

    @property
    def malicious(self) -> bool:
        return self.advisory.malicious

    @property
    def severity(self) -> Severity:
        return self.advisory.severity


# (range, scheme ordering it, sorted events as (kind, key), limits' keys,
#  fixed events as (key, version))
_CompiledRange = tuple[
    Range,
    VersionScheme,
    tuple[tuple[str, Any], ...],
    tuple[Any, ...],
    tuple[tuple[Any, str], ...],
]

# A range's fixed versions as (cell of the fixed bound, version).
_FixedCells = tuple[tuple[int, str], ...]
# One row of a scheme group: the cells [lo, hi) in which entry idx's range matches.
_Span = tuple[int, int, int, Range, _FixedCells]
# What a cell answers: (entry index, range, fixed versions above the cell).
_Answer = tuple[int, Range, _FixedCells]
# Per scheme: its sorted distinct bounds, the spans, and the answers computed so far by cell.
_Group = tuple[VersionScheme, list[Any], list[_Span], dict[int, tuple[_Answer, ...]]]
_NO_HITS: tuple[tuple[()], tuple[()], frozenset[str]] = ((), (), frozenset())
# Lookups remembered per index: (ecosystem, name) as asked -> the package tables, and per table
# each version asked -> its answer. Scans ask the same packages and versions over and over; the
# bounds keep an index that sees every name of a large registry from growing without end.
_PACKAGE_MEMO = 1 << 16
_VERSION_MEMO = 1 << 12


class _Entry:
    """One affected entry, compiled for matching on first use: most packages in
    the database are never looked up, so parsing their bounds up front (and
    PyPI's long versions lists) would only slow down loading."""

    __slots__ = ("_ranges", "_versions", "advisory", "affected", "scheme")

    def __init__(self, advisory: Advisory, affected: Affected) -> None:
        self.advisory = advisory
        self.affected = affected
        self.scheme: VersionScheme | None = ECOSYSTEM_SCHEMES.get(affected.key.base)
        self._ranges: tuple[_CompiledRange, ...] | None = None
        self._versions: frozenset[str] | None = None

    @property
    def ranges(self) -> tuple[_CompiledRange, ...]:
        if self._ranges is None:
            compiled = []
            for rng in self.affected.ranges:
                if rng.type == "GIT":
                    continue
                rscheme = SEMVER if rng.type == "SEMVER" else self.scheme
                if rscheme is None:
                    continue  # reported at import: no scheme to order this ecosystem
                events, limits = _sorted_events(rng, rscheme)
                # The fixed versions with their keys, parsed once here rather than
                # again for every cell of the package table that needs them.
                fixed = tuple((rscheme.key(e.version), e.version) for e in rng.events if e.kind == "fixed")
                compiled.append((rng, rscheme, events, limits, fixed))
            self._ranges = tuple(compiled)
        return self._ranges

    @property
    def versions(self) -> frozenset[str]:
        if self._versions is None:
            versions = self.affected.versions
            if self.scheme is not None:
                scheme = self.scheme
                versions = (*versions, *(_canonical(scheme, v) for v in versions))
            self._versions = frozenset(versions)
        return self._versions


def _sorted_events(rng: Range, scheme: VersionScheme) -> tuple[tuple[tuple[str, Any], ...], tuple[Any, ...]]:
    """(kind, version sort key) in walking order, and the limits' sort keys.

    Sort keys (VersionScheme.key) compare with plain operators, in C for the
    schemes whose order maps onto tuples: a package with hundreds of
    advisories (tensorflow) costs microseconds per version, not milliseconds.
    """
    events = []
    limits = []
    for e in rng.events:
        if e.kind == "limit":
            if e.version != "*":
                limits.append(scheme.key(e.version))
            continue
        # "introduced 0" means "from the first version": it sorts before all.
        key = None if (e.kind == "introduced" and e.version == "0") else scheme.key(e.version)
        events.append((e.kind, key))

    def cmp(x: tuple[str, Any], y: tuple[str, Any]) -> int:
        if x[1] is None or y[1] is None:
            c = (x[1] is not None) - (y[1] is not None)
        else:
            c = (x[1] > y[1]) - (x[1] < y[1])
        return c or _EVENT_ORDER[x[0]] - _EVENT_ORDER[y[0]]

    return tuple(sorted(events, key=cmp_to_key(cmp))), tuple(limits)


def _in_range(version: Any, events: tuple[tuple[str, Any], ...], limits: tuple[Any, ...]) -> bool:
    for limit in limits:
        if version >= limit:
            return False
    affected = False
    for kind, bound in events:
        if kind == "introduced":
            if bound is None or version >= bound:
                affected = True
            else:
                break  # sorted: no later event can apply to this version
        elif kind == "fixed":
            if version >= bound:
                affected = False
            else:
                break
        elif kind == "last_affected":
            if version > bound:
                affected = False
            else:
                break
    return affected


class AdvisoryIndex:
    """In-memory index of advisories by package, for matching."""

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str, str], list[_Entry]] = defaultdict(list)
        self._tables: dict[tuple[str, str, str], _PackageTable] = {}
        self._packages: dict[tuple[str, str], tuple[_PackageTable, ...]] = {}
        self.advisories: dict[str, Advisory] = {}
        self.withdrawn: list[str] = []
        self.warnings: list[str] = []

    @classmethod
    def from_advisories(cls, advisories: Iterable[Advisory]) -> AdvisoryIndex:
        index = cls()
        for advisory in advisories:
            index.add(advisory)
        return index

    def __len__(self) -> int:
        return len(self.advisories)

    def add(self, advisory: Advisory) -> None:
        """Index one advisory; a withdrawn one is recorded but never matched."""
        if advisory.is_withdrawn:
            self.withdrawn.append(advisory.id)
            return
        if advisory.id in self.advisories:
            raise ValueError(f"advisory {advisory.id} is already in the index")
        self.advisories[advisory.id] = advisory
        for affected in advisory.affected:
            key = (affected.key.base, affected.key.release, affected.normalized_name)
            self._entries[key].append(_Entry(advisory, affected))
            self._tables.pop(key, None)
        self._packages.clear()

    def packages(self) -> Iterable[tuple[str, str, str]]:
        """Every (ecosystem base, release, normalized name) with advisories."""
        return self._entries.keys()

    def match_many(self, queries: Iterable[tuple[str, str, str]]) -> list[list[Match] | ValueError]:
        """``match`` for each (ecosystem, name, version), in order, with the
        cyclic garbage collector paused for the batch (see ``gcpause``). A
        query that ``match`` would raise for yields its error in its place."""
        out: list[list[Match] | ValueError] = []
        with paused_gc():
            for ecosystem, name, version in queries:
                try:
                    out.append(self.match(ecosystem, name, version))
                except ValueError as exc:
                    out.append(exc)
        return out

    def match(self, ecosystem: str, name: str, version: str) -> list[Match]:
        """Advisories affecting ``name`` at ``version`` in ``ecosystem``, by id.

        A release-scoped ecosystem (``Debian:12``) matches that release's
        advisories and release-less ones (``Debian``); Debian and Ubuntu
        advisories name source packages, so pass the source package name.
        Raises UnknownOsvEcosystemError for a name that is not an OSV
        ecosystem, and InvalidVersionError if ``version`` cannot be ordered
        where a range needs it. In an OSV ecosystem without a version scheme
        here, only SEMVER ranges and explicit versions lists are matched.
        """
        tables = self._packages.get((ecosystem, name))
        if tables is None:
            tables = self._package_tables(ecosystem, name)
        if len(tables) == 1:
            # An answer kept for this version was checked when it was made (same scheme).
            known = tables[0].by_version.get(version)
            if known is not None:
                return list(known)
        # Checked even when no advisory names the package: a version the scheme
        # cannot order must be reported, never ordered as something else.
        check_version(ecosystem, version)
        query = _Query(version)
        results = [(table.match(query), table) for table in tables]
        if len(results) == 1:
            table = results[0][1]
            if len(table.by_version) >= _VERSION_MEMO:
                table.by_version.clear()
            table.by_version[version] = results[0][0]
            return list(results[0][0])
        found: dict[str, Match] = {}
        for matches, table in results:
            for m in matches:
                prev = found.get(m.id)
                if prev is not None:  # a release's entry and a release-less one
                    m = _merge(prev, m, table.scheme)
                found[m.id] = m
        return [found[k] for k in sorted(found)]

    def _package_tables(self, ecosystem: str, name: str) -> tuple[_PackageTable, ...]:
        """The tables of the package (the release's, then the release-less one), made on first use."""
        key = parse_ecosystem(ecosystem)
        norm = normalize_name(key.base, name)
        keys = [(key.base, key.release, norm)]
        if key.release:
            keys.append((key.base, "", norm))
        tables = []
        for k in keys:
            entries = self._entries.get(k)
            if not entries:
                continue
            table = self._tables.get(k)
            if table is None:
                table = self._tables[k] = _PackageTable(entries)
            tables.append(table)
        if len(self._packages) >= _PACKAGE_MEMO:
            self._packages.clear()
        self._packages[(ecosystem, name)] = out = tuple(tables)
        return out


class _PackageTable:
    """All advisories about one package, arranged so a lookup costs a binary search.

    Whether a version is inside a range can only change at the range's bounds.
    So the distinct bounds of every range of the package, sorted, cut the
    versions into cells (below the first bound, equal to it, between it and the
    next, ...) inside which every range gives the same answer. Each range is
    turned once into the spans of cells it covers (integers), so answering a
    cell compares small integers instead of version keys; a lookup finds its
    cell by bisection and computes that cell's answer once, and later versions
    in the same cell reuse it. Explicit versions lists are a dict lookup.
    Ranges are grouped by the scheme that orders them (SEMVER ranges and
    ECOSYSTEM ranges of one package may use different orders).
    """

    __slots__ = ("_groups", "_has_lists", "_listed", "_results", "by_version", "entries", "scheme")

    def __init__(self, entries: list[_Entry]) -> None:
        self.entries = entries
        self.scheme = entries[0].scheme
        groups: dict[str, tuple[VersionScheme, list[tuple[int, _CompiledRange]]]] = {}
        for i, entry in enumerate(entries):
            for compiled in entry.ranges:
                groups.setdefault(compiled[1].name, (compiled[1], []))[1].append((i, compiled))
        self._groups: list[_Group] = []
        for scheme, members in groups.values():
            bounds: list[Any] = []
            for _, (_, _, events, limits, _) in members:
                bounds.extend(b for _, b in events if b is not None)
                bounds.extend(limits)
            bounds.sort()
            distinct = [b for j, b in enumerate(bounds) if j == 0 or bounds[j - 1] != b]
            # One row per span (a range's spans are disjoint, so a cell is in at
            # most one of them): answering a cell is then one flat comprehension.
            spans: list[_Span] = []
            for idx, (rng, _, events, limits, fixed) in members:
                fixed_cells = tuple((_cell_of(distinct, k), v) for k, v in fixed)
                for lo, hi in _cell_spans(events, limits, distinct):
                    spans.append((lo, hi, idx, rng, fixed_cells))
            self._groups.append((scheme, distinct, spans, {}))
        self._listed: dict[str, tuple[int, ...]] | None = None
        self._has_lists = any(e.affected.versions for e in entries)
        self._results: dict[tuple[tuple[int, ...], frozenset[int]], tuple[Match, ...]] = {}
        self.by_version: dict[str, tuple[Match, ...]] = {}  # filled by AdvisoryIndex.match

    def _listed_index(self) -> dict[str, tuple[int, ...]]:
        if self._listed is None:
            listed: dict[str, list[int]] = defaultdict(list)
            for i, entry in enumerate(self.entries):
                for v in entry.versions:
                    listed[v].append(i)
            # Tuples of ints: the collector stops tracking them, so a large
            # index does not lengthen every later garbage collection.
            self._listed = {v: tuple(ids) for v, ids in listed.items()}
        return self._listed

    def match(self, query: _Query) -> tuple[Match, ...]:
        """The matches of this package at the query's version, merged per advisory, by id."""
        cells = []
        for scheme, bounds, members, answers in self._groups:
            key = query.key(scheme)
            i = bisect_left(bounds, key)
            cell = 2 * i + 1 if i < len(bounds) and bounds[i] == key else 2 * i
            if cell not in answers:
                answers[cell] = tuple(
                    (idx, rng, tuple([f for f in fixed if f[0] > cell]) if fixed else ())
                    for lo, hi, idx, rng, fixed in members
                    if lo <= cell < hi
                )
            cells.append(cell)
        listed: set[int] = set()
        if self._has_lists:
            index = self._listed_index()
            listed.update(index.get(query.version, ()))
            if self.scheme is not None:
                listed.update(index.get(query.canonical(self.scheme), ()))
        # Versions in the same cells with the same list hits get the same answer.
        result_key = (tuple(cells), frozenset(listed))
        result = self._results.get(result_key)
        if result is None:
            result = self._results[result_key] = self._build(cells, listed)
        return result

    def _build(self, cells: list[int], listed: set[int]) -> tuple[Match, ...]:
        hits: dict[int, tuple[list[Range], list[tuple[int, str]], set[str]]] = {}
        for (scheme, _, _, answers), cell in zip(self._groups, cells, strict=True):
            for idx, rng, fixed in answers[cell]:
                ranges, fixed_cells, schemes = hits.setdefault(idx, ([], [], set()))
                ranges.append(rng)
                fixed_cells.extend(fixed)
                if fixed:
                    schemes.add(scheme.name)
        found: dict[str, Match] = {}
        for idx in sorted(set(hits) | listed):
            entry = self.entries[idx]
            # An entry that is only listed (no range matched) has no hits.
            hit_ranges: Sequence[Range]
            hit_fixed: Sequence[tuple[int, str]]
            hit_schemes: Set[str]
            hit_ranges, hit_fixed, hit_schemes = hits.get(idx, _NO_HITS)
            order = entry.scheme or SEMVER
            if len(hit_fixed) <= 1:
                fixed_sorted = tuple(v for _, v in hit_fixed)
            elif hit_schemes == {order.name}:
                # Cells of one group are in its scheme's order: no version compares needed.
                fixed_sorted = tuple(dict.fromkeys(v for _, v in sorted(set(hit_fixed))))
            else:
                fixed_sorted = sort_versions(order, {v for _, v in hit_fixed})
            m = Match(
                entry.advisory,
                entry.affected,
                tuple(hit_ranges),
                idx in listed,
                fixed_sorted,
            )
            prev = found.get(entry.advisory.id)
            if prev is not None:  # the same advisory names the package twice
                m = _merge(prev, m, self.scheme)
            found[entry.advisory.id] = m
        return tuple(found[k] for k in sorted(found))


def _cell_of(bounds: list[Any], key: Any) -> int:
    """The cell of a key that is one of ``bounds``: 2i+1 for the i-th bound."""
    return 2 * bisect_left(bounds, key) + 1


def _cell_spans(
    events: tuple[tuple[str, Any], ...], limits: tuple[Any, ...], bounds: list[Any]
) -> tuple[tuple[int, int], ...]:
    """The half-open spans of cells inside a range, replaying ``_in_range``.

    Walking the sorted events, each one that a version has passed sets the
    state (introduced: in, fixed and last_affected: out) and the first one it
    has not passed ends the walk. In cells: ``introduced`` and ``fixed`` at
    bound i are passed from cell 2i+1 (at the bound) on, ``last_affected`` from
    2i+2 (above it); those start cells never decrease along the sorted events,
    so a cell's state is that of the last event starting at or before it.
    A ``limit`` at bound i ends every span at cell 2i+1.
    """
    end = 2 * len(bounds) + 1
    for limit in limits:
        end = min(end, _cell_of(bounds, limit))
    spans: list[tuple[int, int]] = []
    opened: int | None = None
    for kind, bound in events:
        if kind == "introduced":
            start = 0 if bound is None else _cell_of(bounds, bound)
            if opened is None:
                opened = start
        else:
            start = _cell_of(bounds, bound) + (kind == "last_affected")
            if opened is not None:
                if start > opened:
                    spans.append((opened, start))
                opened = None
    if opened is not None:
        spans.append((opened, end))
    out: list[tuple[int, int]] = []
    for lo, hi in spans:
        hi = min(hi, end)
        if lo < hi:
            if out and out[-1][1] == lo:
                out[-1] = (out[-1][0], hi)
            else:
                out.append((lo, hi))
    return tuple(out)


@lru_cache(maxsize=1 << 17)
def _canonical(scheme: VersionScheme, version: str) -> str:
    # Cached across packages: the advisories of one package list the same
    # releases over and over (hundreds of tensorflow advisories, one list each).
    try:
        return scheme.canonical(version)
    except ValueError:
        return version


class _Query:
    """The installed version, parsed at most once per scheme for one match() call."""

    __slots__ = ("_canonical", "_keys", "version")

    def __init__(self, version: str) -> None:
        self.version = version
        self._keys: dict[str, Any] = {}
        self._canonical: dict[str, str] = {}

    def key(self, scheme: VersionScheme) -> Any:
        k = self._keys.get(scheme.name)
        if k is None:
            k = self._keys[scheme.name] = scheme.key(self.version)
        return k

    def canonical(self, scheme: VersionScheme) -> str:
        c = self._canonical.get(scheme.name)
        if c is None:
            c = self._canonical[scheme.name] = _canonical(scheme, self.version)
        return c


def sort_versions(scheme: VersionScheme, versions: Iterable[str]) -> tuple[str, ...]:
    """``versions`` in the scheme's order, equal ones by text so output is stable."""
    versions = list(versions)
    try:
        # Sort keys compare in C; equal under the scheme (PyPI 1.1 and 1.1.0): by text.
        return tuple(sorted(versions, key=lambda v: (scheme.key(v), v)))
    except (ValueError, TypeError):
        pass  # a version the scheme refuses: order what can be ordered, by compare

    def cmp(a: str, b: str) -> int:
        try:
            c = scheme.compare(a, b)
        except ValueError:
            c = 0
        # Equal under the scheme (PyPI 1.1 and 1.1.0): order by text, so output is stable.
        return c or (a > b) - (a < b)

    return tuple(sorted(versions, key=cmp_to_key(cmp)))


def _merge(a: Match, b: Match, scheme: VersionScheme | None) -> Match:
    return Match(
        a.advisory,
        a.affected,
        a.ranges + b.ranges,
        a.in_versions_list or b.in_versions_list,
        sort_versions(scheme or SEMVER, set(a.fixed_versions) | set(b.fixed_versions)),
    )
