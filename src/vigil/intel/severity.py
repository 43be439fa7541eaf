"""Severity of an advisory: from CVSS vectors, or the database's own rating."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from cvss import CVSS2, CVSS3, CVSS4
from cvss.exceptions import CVSSError

from vigil.model.findings import ADVISORY_SEVERITIES, severity_rank

# An advisory's levels, least severe first (no advisory is rated info).
LEVELS = tuple(s.value for s in reversed(ADVISORY_SEVERITIES))

# Ratings written as words by databases (GHSA "MODERATE", Ubuntu priorities,
# RUSTSEC informational notices...), mapped onto our five levels.
_WORDS = {
    "critical": "critical",
    "high": "high",
    "important": "high",
    "moderate": "medium",
    "medium": "medium",
    "low": "low",
    "negligible": "low",
    "none": "low",
    "untriaged": "unknown",
    "unknown": "unknown",
}


@dataclass(frozen=True)
class Severity:
    level: str  # one of LEVELS
    score: float | None = None
    source: str = ""  # CVSS_V4, CVSS_V3, CVSS_V2, database_specific, Ubuntu
    vector: str | None = None

    def rank(self) -> int:
        return severity_rank(self.level)


UNKNOWN = Severity("unknown")


class SeverityError(ValueError):
    pass


def _level_from_score(score: float) -> str:
    # CVSS v3/v4 qualitative bands (v2 uses the same cut-offs up to "high").
    if score >= 9.0:
        return "critical"
    if score >= 7.0:
        return "high"
    if score >= 4.0:
        return "medium"
    return "low"


@lru_cache(maxsize=8192)
def from_cvss(kind: str, vector: str) -> Severity:
    """Severity of a CVSS vector; raise SeverityError naming the vector if malformed."""
    try:
        if kind == "CVSS_V4":
            score = float(CVSS4(vector).base_score)
        elif kind == "CVSS_V3":
            score = float(CVSS3(vector).scores()[0])
        elif kind == "CVSS_V2":
            score = float(CVSS2(vector).scores()[0])
        else:
            raise SeverityError(f"unsupported severity type {kind!r}")
    except CVSSError as exc:
        raise SeverityError(f"malformed {kind} vector {vector!r}: {exc}") from exc
    level = _level_from_score(score)
    if kind == "CVSS_V2" and level == "critical":
        level = "high"  # CVSS v2 has no "critical" band
    return Severity(level, score, kind, vector)


def from_word(word: str, source: str) -> Severity:
    level = _WORDS.get(str(word).strip().lower())
    if level is None:
        raise SeverityError(f"unknown {source} severity rating {word!r}")
    return Severity(level, None, source)


# Which CVSS version wins when a record carries several: the newest.
CVSS_PREFERENCE = ("CVSS_V4", "CVSS_V3", "CVSS_V2")
