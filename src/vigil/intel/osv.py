"""OSV records (already decoded JSON/YAML) -> Advisory, checking every field.

Pure: no files here. A record that breaks a rule of the OSV schema raises
RecordError naming the record and the rule, so the caller can list it; a
field we can do without (a malformed CVSS vector, an ECOSYSTEM range in an
ecosystem we cannot order) becomes a warning instead.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from vigil.clock import as_utc

from . import severity as sev
from .advisory import (
    EVENT_KINDS,
    RANGE_TYPES,
    Advisory,
    Affected,
    Event,
    Range,
    Reference,
)
from .ecosystems import UnknownOsvEcosystemError, normalize_name, parse_ecosystem
from .versions import ECOSYSTEM_SCHEMES, SEMVER, InvalidVersionError, VersionScheme

_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})")
_GIT_COMMIT = re.compile(r"0|[0-9a-f]{40}|[0-9a-f]{64}")
# CWE-506 "Embedded Malicious Code": how GitHub's advisories mark malware.
_MALWARE_CWE = "CWE-506"


class RecordError(ValueError):
    """An OSV record that cannot be imported, and why."""

    def __init__(self, record_id: str | None, reason: str) -> None:
        self.record_id = record_id
        self.reason = reason
        super().__init__(f"{record_id or '<no id>'}: {reason}")


def _timestamp(rid: str, name: str, value: Any) -> datetime:
    if isinstance(value, datetime):  # YAML loaders may already have decoded it
        ts = value
    elif isinstance(value, str) and _TIMESTAMP.fullmatch(value):
        ts = datetime.fromisoformat(value)
    else:
        raise RecordError(rid, f"{name} {value!r} is not an RFC 3339 timestamp (YYYY-MM-DDTHH:MM:SSZ)")
    return as_utc(ts).astimezone(UTC)


def _strings(rid: str, name: str, value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RecordError(rid, f"{name} must be a list of strings")
    return tuple(value)


def _text(rid: str, name: str, value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise RecordError(rid, f"{name} must be a string")
    return value


def _object(rid: str, name: str, value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise RecordError(rid, f"{name} must be an object")
    return dict(value)


def _severity_entries(rid: str, where: str, value: Any) -> tuple[dict[str, str], ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise RecordError(rid, f"{where}severity must be a list")
    out = []
    for i, entry in enumerate(value):
        if (
            not isinstance(entry, Mapping)
            or not isinstance(entry.get("type"), str)
            or not isinstance(entry.get("score"), str)
        ):
            raise RecordError(rid, f"{where}severity[{i}] must have string 'type' and 'score'")
        out.append({"type": entry["type"], "score": entry["score"]})
    return tuple(out)


def _check_version(rid: str, where: str, scheme: VersionScheme, version: str) -> None:
    try:
        scheme.validate(version)
    except InvalidVersionError as exc:
        raise RecordError(rid, f"{where}: {exc}") from exc


def _range(rid: str, where: str, value: Any, base: str, warnings: list[str]) -> Range | None:
    if not isinstance(value, Mapping):
        raise RecordError(rid, f"{where} must be an object")
    rtype = value.get("type")
    if rtype not in RANGE_TYPES:
        raise RecordError(rid, f"{where}.type {rtype!r} is not one of {', '.join(RANGE_TYPES)}")
    repo = value.get("repo")
    if rtype == "GIT" and not isinstance(repo, str):
        raise RecordError(rid, f"{where}: GIT ranges require a repo")
    if repo is not None and not isinstance(repo, str):
        raise RecordError(rid, f"{where}.repo must be a string")
    raw_events = value.get("events")
    if not isinstance(raw_events, list) or not raw_events:
        raise RecordError(rid, f"{where}.events must be a non-empty list")
    events = []
    for j, raw in enumerate(raw_events):
        if not isinstance(raw, Mapping) or len(raw) != 1:
            raise RecordError(
                rid,
                f"{where}.events[{j}] must be an object with exactly one of {', '.join(EVENT_KINDS)}",
            )
        ((kind, version),) = raw.items()
        if kind not in EVENT_KINDS:
            raise RecordError(
                rid,
                f"{where}.events[{j}]: {kind!r} is not one of {', '.join(EVENT_KINDS)}",
            )
        if not isinstance(version, str) or not version:
            raise RecordError(rid, f"{where}.events[{j}].{kind} must be a non-empty string")
        events.append(Event(kind, version))
    kinds = {e.kind for e in events}
    if "introduced" not in kinds:
        raise RecordError(rid, f"{where}: events must contain an introduced event")
    if "fixed" in kinds and "last_affected" in kinds:
        raise RecordError(rid, f"{where}: last_affected and fixed events are mutually exclusive")
    if rtype == "GIT":
        for e in events:
            if not _GIT_COMMIT.fullmatch(e.version):
                # GIT ranges are never used for version matching (see matching.py),
                # so a malformed one costs the record nothing: leave the range out.
                warnings.append(
                    f"{rid}: {where}: GIT event {e.kind} {e.version!r} is not a full commit hash; "
                    "this GIT range is left out"
                )
                return None
    else:
        scheme = SEMVER if rtype == "SEMVER" else ECOSYSTEM_SCHEMES.get(base)
        if scheme is None:
            warnings.append(
                f"{rid}: {where}: no version scheme for ecosystem {base!r}; this ECOSYSTEM range "
                "is kept but not matched (explicit versions still are)"
            )
        else:
            for e in events:
                if not (e.kind == "introduced" and e.version == "0"):
                    _check_version(rid, f"{where} {e.kind}", scheme, e.version)
    return Range(
        rtype,
        tuple(events),
        repo,
        _object(rid, f"{where}.database_specific", value.get("database_specific")),
    )


def _affected(rid: str, i: int, value: Any, warnings: list[str]) -> Affected | None:
    where = f"affected[{i}]"
    if not isinstance(value, Mapping):
        raise RecordError(rid, f"{where} must be an object")
    package = value.get("package")
    if package is None:
        warnings.append(f"{rid}: {where} names no package; it cannot be matched and is left out")
        return None
    if not isinstance(package, Mapping):
        raise RecordError(rid, f"{where}.package must be an object")
    ecosystem, name = package.get("ecosystem"), package.get("name")
    if not isinstance(ecosystem, str) or not isinstance(name, str) or not name.strip():
        raise RecordError(rid, f"{where}.package needs a string ecosystem and a non-empty name")
    try:
        key = parse_ecosystem(ecosystem)
    except UnknownOsvEcosystemError as exc:
        raise RecordError(rid, f"{where}.package: {exc}") from exc
    purl = package.get("purl")
    if purl is not None and not isinstance(purl, str):
        raise RecordError(rid, f"{where}.package.purl must be a string")
    raw_ranges = value.get("ranges") or []
    if not isinstance(raw_ranges, list):
        raise RecordError(rid, f"{where}.ranges must be a list")
    ranges = tuple(
        r
        for j, raw in enumerate(raw_ranges)
        if (r := _range(rid, f"{where}.ranges[{j}]", raw, key.base, warnings)) is not None
    )
    versions = _strings(rid, f"{where}.versions", value.get("versions"))
    if not ranges and not versions:
        warnings.append(f"{rid}: {where} ({ecosystem}/{name}) lists no ranges and no versions; it matches nothing")
    return Affected(
        ecosystem=ecosystem,
        name=name,
        key=key,
        normalized_name=normalize_name(key.base, name),
        purl=purl,
        ranges=ranges,
        versions=versions,
        severity_entries=_severity_entries(rid, f"{where}.", value.get("severity")),
        ecosystem_specific=_object(rid, f"{where}.ecosystem_specific", value.get("ecosystem_specific")),
        database_specific=_object(rid, f"{where}.database_specific", value.get("database_specific")),
    )


def _references(rid: str, value: Any) -> tuple[Reference, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise RecordError(rid, "references must be a list")
    out = []
    for i, ref in enumerate(value):
        if not isinstance(ref, Mapping) or not isinstance(ref.get("type"), str) or not isinstance(ref.get("url"), str):
            raise RecordError(rid, f"references[{i}] must have string 'type' and 'url'")
        out.append(Reference(ref["type"], ref["url"]))
    return tuple(out)


def _pick_severity(
    rid: str,
    entries: tuple[dict[str, str], ...],
    affected: tuple[Affected, ...],
    database_specific: dict[str, Any] | None,
    warnings: list[str],
) -> sev.Severity:
    """The most precise rating the record offers: the newest CVSS vector on the
    record, then on its packages (including RUSTSEC's database_specific.cvss),
    then the database's own word (GHSA database_specific.severity, Ubuntu)."""
    vectors: list[tuple[str, str]] = [(e["type"], e["score"]) for e in entries]
    for a in affected:
        vectors.extend((e["type"], e["score"]) for e in a.severity_entries)
        cvss = (a.database_specific or {}).get("cvss")
        if isinstance(cvss, str) and cvss.startswith("CVSS:"):
            vectors.append(("CVSS_V4" if cvss.startswith("CVSS:4") else "CVSS_V3", cvss))
    for kind in sev.CVSS_PREFERENCE:
        best = None
        for vkind, vector in vectors:
            if vkind != kind:
                continue
            try:
                candidate = sev.from_cvss(kind, vector)
            except sev.SeverityError as exc:
                warnings.append(f"{rid}: {exc}; using the next severity source")
                continue
            if best is None or (candidate.score or 0) > (best.score or 0):
                best = candidate
        if best is not None:
            return best
    words: list[tuple[str, str]] = [(v, "Ubuntu") for k, v in vectors if k == "Ubuntu"]
    if database_specific and isinstance(database_specific.get("severity"), str):
        words.insert(0, (database_specific["severity"], "database_specific"))
    for word, source in words:
        try:
            return sev.from_word(word, source)
        except sev.SeverityError as exc:
            warnings.append(f"{rid}: {exc}")
    return sev.UNKNOWN


def _is_malicious(rid: str, aliases: tuple[str, ...], database_specific: dict[str, Any] | None) -> bool:
    if rid.startswith("MAL-") or any(a.startswith("MAL-") for a in aliases):
        return True
    db = database_specific or {}
    # ossf/malicious-packages records carry where each report came from.
    if "malicious-packages-origins" in db:
        return True
    cwes = db.get("cwe_ids")
    return isinstance(cwes, list) and _MALWARE_CWE in cwes


def parse_record(data: Any) -> tuple[Advisory, list[str]]:
    """Advisory from one decoded OSV record, and warnings about fields left out."""
    if not isinstance(data, Mapping):
        raise RecordError(None, f"a record must be an object, not {type(data).__name__}")
    rid = data.get("id")
    if not isinstance(rid, str) or not rid.strip():
        raise RecordError(None, "the record has no string id")
    if "modified" not in data:
        raise RecordError(rid, "modified is required")
    warnings: list[str] = []
    modified = _timestamp(rid, "modified", data["modified"])
    published = _timestamp(rid, "published", data["published"]) if data.get("published") is not None else None
    withdrawn = _timestamp(rid, "withdrawn", data["withdrawn"]) if data.get("withdrawn") is not None else None
    aliases = _strings(rid, "aliases", data.get("aliases"))
    raw_affected = data.get("affected") or []
    if not isinstance(raw_affected, list):
        raise RecordError(rid, "affected must be a list")
    affected = tuple(a for i, raw in enumerate(raw_affected) if (a := _affected(rid, i, raw, warnings)) is not None)
    entries = _severity_entries(rid, "", data.get("severity"))
    if entries and any(a.severity_entries for a in affected):
        raise RecordError(rid, "severity may be given for the record or for its packages, not both")
    database_specific = _object(rid, "database_specific", data.get("database_specific"))
    schema_version = data.get("schema_version")
    if schema_version is not None and not isinstance(schema_version, str):
        raise RecordError(rid, "schema_version must be a string")
    credits = data.get("credits") or []
    if not isinstance(credits, list) or not all(
        isinstance(c, Mapping) and isinstance(c.get("name"), str) for c in credits
    ):
        raise RecordError(rid, "credits must be a list of objects with a string name")
    advisory = Advisory(
        id=rid,
        modified=modified,
        published=published,
        withdrawn=withdrawn,
        aliases=aliases,
        related=_strings(rid, "related", data.get("related")),
        upstream=_strings(rid, "upstream", data.get("upstream")),
        summary=_text(rid, "summary", data.get("summary")),
        details=_text(rid, "details", data.get("details")),
        severity=_pick_severity(rid, entries, affected, database_specific, warnings),
        severity_entries=entries,
        affected=affected,
        references=_references(rid, data.get("references")),
        malicious=_is_malicious(rid, aliases, database_specific),
        schema_version=schema_version,
        credits=tuple(dict(c) for c in credits),
        database_specific=database_specific,
    )
    return advisory, warnings
