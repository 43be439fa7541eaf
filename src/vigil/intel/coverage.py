"""Advisory coverage of a scan: per ecosystem its packages needed, whether any
advisories were loaded, how many and how recent (pure: the counts come from the store).

A scan that needed an ecosystem without advisories has *incomplete* coverage:
"0 vulnerabilities" there means nothing was checked, not that nothing was found.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .advisory import format_timestamp
from .ecosystems import UnknownOsvEcosystemError, parse_ecosystem
from .vulnmatch import PackageLike, lookup_for


@dataclass(frozen=True, slots=True)
class EcosystemCoverage:
    ecosystem: str  # as the scan looked it up, e.g. "Debian:12", "PyPI"
    packages: int  # packages of the scan looked up in it
    records: int  # advisories (not withdrawn) for it: the release's and release-less ones
    as_of: datetime | None  # the newest of those records' modified times

    @property
    def loaded(self) -> bool:
        return self.records > 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "ecosystem": self.ecosystem,
            "packages": self.packages,
            "loaded": self.loaded,
            "records": self.records,
            "as_of": format_timestamp(self.as_of) if self.as_of else None,
        }

    def describe(self) -> str:
        packages = f"{self.packages} package" + ("" if self.packages == 1 else "s")
        if not self.loaded:
            return f"{self.ecosystem}: no advisories loaded ({packages} not checked)"
        when = format_timestamp(self.as_of) if self.as_of else "unknown"
        return f"{self.ecosystem}: {self.records} advisories, as of {when} ({packages})"


@dataclass(frozen=True, slots=True)
class Coverage:
    ecosystems: tuple[EcosystemCoverage, ...]

    @property
    def complete(self) -> bool:
        return all(e.loaded for e in self.ecosystems)

    @property
    def missing(self) -> tuple[str, ...]:
        return tuple(e.ecosystem for e in self.ecosystems if not e.loaded)

    @property
    def status(self) -> str:
        return "complete" if self.complete else "incomplete"

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "ecosystems": [e.to_dict() for e in self.ecosystems]}

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Coverage:
        return cls(
            tuple(
                EcosystemCoverage(
                    e["ecosystem"],
                    int(e["packages"]),
                    int(e["records"]),
                    datetime.fromisoformat(e["as_of"]) if e.get("as_of") else None,
                )
                for e in doc.get("ecosystems", ())
            )
        )


def needed_ecosystems(packages: Iterable[PackageLike]) -> dict[str, int]:
    """Ecosystem -> how many of ``packages`` are looked up in it (packages that
    cannot be looked up are the matcher's warnings, not an ecosystem)."""
    counts: dict[str, int] = {}
    for pkg in packages:
        target = lookup_for(pkg)
        if isinstance(target, str):
            continue
        try:
            key = parse_ecosystem(target.ecosystem)
        except UnknownOsvEcosystemError:
            continue
        name = key.base + (f":{key.release}" if key.release else "")
        counts[name] = counts.get(name, 0) + 1
    return dict(sorted(counts.items()))
