"""Independent answers for the scanner tests: which advisories affect a package,
computed straight from the OSV records on disk (YAML read as plain strings,
PEP 440 and SemVer ordering written out here), not through vigil.intel."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from packaging.version import Version

SHARED_DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
PYPA = SHARED_DATA / "osv" / "pypa"
GO = SHARED_DATA / "osv" / "go"
_LOADER = getattr(yaml, "CBaseLoader", yaml.BaseLoader)


def _pep503(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _in_events(version, events, parse) -> bool:
    """The OSV evaluation: sorted events, introduced opens, fixed closes, last_affected closes after."""
    points = []
    for e in events:
        ((kind, value),) = e.items()
        if kind == "limit":
            continue
        points.append((kind, None if (kind == "introduced" and value == "0") else parse(value)))
    order = {"introduced": 0, "fixed": 1, "last_affected": 2}
    points.sort(key=lambda p: (0,) if p[1] is None else (1, p[1], order[p[0]]))
    affected = False
    for kind, bound in points:
        if kind == "introduced" and (bound is None or version >= bound):
            affected = True
        elif kind == "fixed" and bound is not None and version >= bound:
            affected = False
        elif kind == "last_affected" and version > bound:
            affected = False
    return affected


def pypi_advisories(name: str, version: str) -> dict[str, set[str]]:
    """{advisory id: its aliases} of the PyPA records affecting ``name`` at ``version``."""
    want = _pep503(name)
    v = Version(version)
    out: dict[str, set[str]] = {}
    # The PyPA database keeps each package's records in a directory named after it.
    dirs = [d for d in PYPA.iterdir() if d.is_dir() and _pep503(d.name) == want]
    for path in sorted(f for d in dirs for f in d.glob("*.yaml")):
        record = yaml.load(path.read_text(), Loader=_LOADER)  # every scalar a string
        if record.get("withdrawn"):
            continue
        for affected in record.get("affected", []):
            pkg = affected.get("package", {})
            if pkg.get("ecosystem") != "PyPI" or _pep503(pkg.get("name", "")) != want:
                continue
            hit = any(Version(x) == v for x in affected.get("versions", []) if _valid(x))
            for rng in affected.get("ranges", []):
                if rng.get("type") == "ECOSYSTEM" and _in_events(v, rng["events"], Version):
                    hit = True
            if hit:
                out[record["id"]] = set(record.get("aliases", []) or [])
    return out


def _valid(text: str) -> bool:
    try:
        Version(text)
        return True
    except ValueError:
        return False


def _semver(text: str) -> tuple:
    m = re.fullmatch(r"v?(\d+)\.(\d+)\.(\d+)(?:-(.+))?", text)
    assert m, text
    pre = m.group(4)
    # A pre-release sorts before its release: (0, ident) < (1,)
    return (int(m.group(1)), int(m.group(2)), int(m.group(3)), (0, pre) if pre else (1,))


def go_stdlib_advisories(version: str) -> set[str]:
    """Go vulnerability database ids affecting the standard library at ``version`` (e.g. 1.19.8)."""
    v = _semver(version)
    out = set()
    for path in sorted(GO.glob("*.json")):
        record = json.loads(path.read_text())
        if record.get("withdrawn"):
            continue
        for affected in record.get("affected", []):
            if affected["package"].get("name") != "stdlib":
                continue
            if any(r["type"] == "SEMVER" and _in_events(v, r["events"], _semver) for r in affected.get("ranges", [])):
                out.add(record["id"])
    return out
