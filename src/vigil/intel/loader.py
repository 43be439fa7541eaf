"""Reading OSV records from files: JSON, YAML, directories (recursively) and zip
archives such as OSV's per-ecosystem ``all.zip`` exports.

The I/O half of the import: decoding is delegated to ``osv.parse_record``.
Nothing is dropped silently: every file that is not read and every record that
is not taken is in the returned ImportReport, and logged.
"""

from __future__ import annotations

import logging
import os
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import yaml

from .advisory import Advisory
from .osv import RecordError, parse_record
from .report import ImportReport, Rejection

log = logging.getLogger(__name__)

RECORD_SUFFIXES = {".json": "json", ".yaml": "yaml", ".yml": "yaml"}
# An archive member larger than this is refused rather than read into memory
# (OSV records are kilobytes; this only stops a hostile or broken archive).
MAX_RECORD_BYTES = 32 * 1024 * 1024


try:
    from yaml import CSafeLoader as _SafeLoader
except ImportError:  # PyYAML built without libyaml: the pure-Python loader, same behaviour
    from yaml import SafeLoader as _SafeLoader  # type: ignore[assignment]


class _OsvYamlLoader(_SafeLoader):
    """YAML without implicit numbers and dates: ``1.10`` must stay the version
    string "1.10", not the float 1.1; timestamps are parsed by the OSV parser."""


_OsvYamlLoader.yaml_implicit_resolvers = {
    first: [
        (tag, rx)
        for tag, rx in resolvers
        if tag
        not in (
            "tag:yaml.org,2002:int",
            "tag:yaml.org,2002:float",
            "tag:yaml.org,2002:timestamp",
        )
    ]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


@dataclass(frozen=True, slots=True)
class Source:
    name: str  # path, or "archive.zip!member"
    kind: str  # "json" or "yaml"
    read: Callable[[], bytes]


def _file_source(path: Path, kind: str) -> Source:
    return Source(str(path), kind, path.read_bytes)


def _zip_sources(path: Path, report: ImportReport) -> Iterator[Source]:
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        _reject(report, str(path), None, f"cannot open zip archive: {exc}")
        return
    for info in archive.infolist():
        name = f"{path}!{info.filename}"
        if info.is_dir():
            continue
        kind = RECORD_SUFFIXES.get(Path(info.filename).suffix.lower())
        if kind is None:
            _skip(report, name, "not a .json, .yaml or .yml file")
            continue
        if info.file_size > MAX_RECORD_BYTES:
            _reject(
                report,
                name,
                None,
                f"member is {info.file_size} bytes, over the {MAX_RECORD_BYTES}-byte limit",
            )
            continue

        def read(archive: zipfile.ZipFile = archive, info: zipfile.ZipInfo = info) -> bytes:
            with archive.open(info) as fh:
                return fh.read(MAX_RECORD_BYTES + 1)

        yield Source(name, kind, read)


def collect_sources(paths: Iterable[str | os.PathLike[str]], report: ImportReport) -> list[Source]:
    """Every record file under the given paths, in a stable order."""
    sources: list[Source] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for root, dirs, files in os.walk(path):
                dirs.sort()
                for fname in sorted(files):
                    sources.extend(_one_path(Path(root) / fname, report, explicit=False))
        elif path.exists():
            sources.extend(_one_path(path, report, explicit=True))
        else:
            _reject(report, str(path), None, "no such file or directory")
    return sources


def _one_path(path: Path, report: ImportReport, explicit: bool) -> Iterator[Source]:
    suffix = path.suffix.lower()
    if suffix == ".zip":
        yield from _zip_sources(path, report)
    elif suffix in RECORD_SUFFIXES:
        yield _file_source(path, RECORD_SUFFIXES[suffix])
    elif explicit:
        _reject(report, str(path), None, "not a .json, .yaml, .yml or .zip file")
    else:
        _skip(report, str(path), "not a .json, .yaml, .yml or .zip file")


def _skip(report: ImportReport, name: str, reason: str) -> None:
    log.warning("skipping %s: %s", name, reason)
    report.skipped.append((name, reason))


def _reject(report: ImportReport, source: str, rid: str | None, reason: str) -> None:
    log.warning("rejected %s (%s): %s", source, rid or "no id", reason)
    report.rejected.append(Rejection(source, rid, reason))


def decode(data: bytes, kind: str) -> Any:
    if kind == "json":
        return orjson.loads(data)
    return yaml.load(data, Loader=_OsvYamlLoader)


def read_source(source: Source, report: ImportReport) -> list[Advisory]:
    """The advisories in one file; what cannot be taken is added to the report."""
    report.files += 1
    try:
        data = source.read()
        if len(data) > MAX_RECORD_BYTES:
            raise ValueError(f"over the {MAX_RECORD_BYTES}-byte limit")
        decoded = decode(data, source.kind)
    except (OSError, ValueError, yaml.YAMLError, zipfile.BadZipFile) as exc:
        _reject(
            report,
            source.name,
            None,
            f"cannot read {source.kind}: {exc}".replace("\n", " "),
        )
        return []
    records = decoded if isinstance(decoded, list) else [decoded]
    out = []
    for record in records:
        report.records += 1
        try:
            advisory, warnings = parse_record(record)
        except RecordError as exc:
            _reject(report, source.name, exc.record_id, exc.reason)
            continue
        for w in warnings:
            log.warning("%s: %s", source.name, w)
        report.warnings.extend(warnings)
        report.accepted += 1
        out.append(advisory)
    return out


def load_osv(
    paths: Iterable[str | os.PathLike[str]],
    progress: Callable[[int, int], None] | None = None,
) -> tuple[list[Advisory], ImportReport]:
    """All advisories under ``paths`` and the report of what was not taken.

    When the same id appears more than once, the record modified last is kept
    (and the others are noted in the report's warnings).
    """
    report = ImportReport()
    sources = collect_sources(paths, report)
    by_id: dict[str, tuple[Advisory, str]] = {}
    for n, source in enumerate(sources, 1):
        for advisory in read_source(source, report):
            seen = by_id.get(advisory.id)
            if seen is not None:
                _, newer = sorted((seen, (advisory, source.name)), key=lambda p: p[0].modified)
                report.warnings.append(
                    f"{advisory.id}: in both {seen[1]} and {source.name}; kept {newer[1]} (modified later or read last)"
                )
                by_id[advisory.id] = newer
            else:
                by_id[advisory.id] = (advisory, source.name)
        if progress is not None:
            progress(n, len(sources))
    return [a for a, _ in by_id.values()], report
