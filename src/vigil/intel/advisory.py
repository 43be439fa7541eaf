"""Typed advisories (the OSV model inside Vigil) and their export back to OSV JSON."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .ecosystems import EcosystemKey
from .severity import UNKNOWN, Severity

EVENT_KINDS = ("introduced", "fixed", "last_affected", "limit")
RANGE_TYPES = ("ECOSYSTEM", "SEMVER", "GIT")


def format_timestamp(ts: datetime) -> str:
    """RFC 3339 in UTC with a "Z", as the OSV schema requires."""
    return ts.astimezone(UTC).replace(tzinfo=None).isoformat() + "Z"


@dataclass(frozen=True, slots=True)
class Event:
    kind: str  # one of EVENT_KINDS
    version: str


@dataclass(frozen=True, slots=True)
class Range:
    type: str  # one of RANGE_TYPES
    events: tuple[Event, ...]
    repo: str | None = None
    database_specific: dict[str, Any] | None = field(default=None, compare=False)

    def versions_of(self, kind: str) -> tuple[str, ...]:
        return tuple(e.version for e in self.events if e.kind == kind)

    def to_osv(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type}
        if self.repo is not None:
            out["repo"] = self.repo
        out["events"] = [{e.kind: e.version} for e in self.events]
        if self.database_specific is not None:
            out["database_specific"] = self.database_specific
        return out


@dataclass(frozen=True, slots=True)
class Affected:
    """One package entry of an advisory."""

    ecosystem: str  # as written, e.g. "Debian:12"
    name: str  # as written
    key: EcosystemKey  # base and release, normalized
    normalized_name: str
    purl: str | None = None
    ranges: tuple[Range, ...] = ()
    versions: tuple[str, ...] = ()
    severity_entries: tuple[dict[str, str], ...] = field(default=(), compare=False)
    ecosystem_specific: dict[str, Any] | None = field(default=None, compare=False)
    database_specific: dict[str, Any] | None = field(default=None, compare=False)

    def fixed_versions(self) -> tuple[str, ...]:
        return tuple(v for r in self.ranges if r.type != "GIT" for v in r.versions_of("fixed"))

    def to_osv(self) -> dict[str, Any]:
        package: dict[str, Any] = {"ecosystem": self.ecosystem, "name": self.name}
        if self.purl:
            package["purl"] = self.purl
        out: dict[str, Any] = {"package": package}
        if self.severity_entries:
            out["severity"] = [dict(s) for s in self.severity_entries]
        if self.ranges:
            out["ranges"] = [r.to_osv() for r in self.ranges]
        if self.versions:
            out["versions"] = list(self.versions)
        if self.ecosystem_specific is not None:
            out["ecosystem_specific"] = self.ecosystem_specific
        if self.database_specific is not None:
            out["database_specific"] = self.database_specific
        return out


@dataclass(frozen=True, slots=True)
class Reference:
    type: str
    url: str


@dataclass(frozen=True, slots=True)
class Advisory:
    id: str
    modified: datetime
    published: datetime | None = None
    withdrawn: datetime | None = None
    aliases: tuple[str, ...] = ()
    related: tuple[str, ...] = ()
    upstream: tuple[str, ...] = ()
    summary: str = ""
    details: str = ""
    severity: Severity = UNKNOWN
    severity_entries: tuple[dict[str, str], ...] = field(default=(), compare=False)
    affected: tuple[Affected, ...] = ()
    references: tuple[Reference, ...] = ()
    malicious: bool = False
    schema_version: str | None = None
    credits: tuple[dict[str, Any], ...] = field(default=(), compare=False)
    database_specific: dict[str, Any] | None = field(default=None, compare=False)

    @property
    def is_withdrawn(self) -> bool:
        return self.withdrawn is not None

    @property
    def links(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(r.url for r in self.references))

    def all_ids(self) -> tuple[str, ...]:
        """This advisory's id and its aliases: the ids it is known by."""
        return (self.id, *self.aliases)

    def to_osv(self) -> dict[str, Any]:
        """This advisory as an OSV record (a dict that the OSV JSON Schema accepts)."""
        out: dict[str, Any] = {}
        if self.schema_version:
            out["schema_version"] = self.schema_version
        out["id"] = self.id
        out["modified"] = format_timestamp(self.modified)
        if self.published is not None:
            out["published"] = format_timestamp(self.published)
        if self.withdrawn is not None:
            out["withdrawn"] = format_timestamp(self.withdrawn)
        if self.aliases:
            out["aliases"] = list(self.aliases)
        if self.related:
            out["related"] = list(self.related)
        if self.upstream:
            out["upstream"] = list(self.upstream)
        if self.summary:
            out["summary"] = self.summary
        if self.details:
            out["details"] = self.details
        if self.severity_entries:
            out["severity"] = [dict(s) for s in self.severity_entries]
        out["affected"] = [a.to_osv() for a in self.affected]
        if self.references:
            out["references"] = [{"type": r.type, "url": r.url} for r in self.references]
        if self.credits:
            out["credits"] = [dict(c) for c in self.credits]
        if self.database_specific is not None:
            out["database_specific"] = self.database_specific
        return out
