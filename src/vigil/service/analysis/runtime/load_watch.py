"""Which package files a container's sensor watches being opened (pure): the interest set.

Interpreted code runs inside an interpreter (``python3``, ``java``, ``node``): the vulnerable code is only
opened and read, never exec'd. So for each running container the sensor is told the paths of the files of
the packages that have open vulnerable findings in its image, and reports opens of those alone.

A path ending in ``/`` watches everything under it, any other path that file only (the kernel's
longest-prefix-match table, vigil.sensor.watch):

- a Python package's directory under ``site-packages``/``dist-packages`` (``.../site-packages/jinja2/``);
  a top-level module file there (``six.py``) and its ``__pycache__`` entry exactly. ``*.dist-info`` and
  ``*.egg-info`` are metadata, read by tools that never import the package: not watched.
- an npm package's directory (``.../node_modules/<pkg>/`` or ``.../node_modules/@scope/<pkg>/``).
- a jar exactly; for a nested jar, the archive on disk that holds it (the JVM opens that one, ``jars``).
- files of OS packages (dpkg, rpm, apk) under those interpreter directories, the same way (Debian's
  ``python3-jinja2`` ships ``/usr/lib/python3/dist-packages/jinja2/``); their executables and shared
  libraries are already caught at exec and at mapping.

A path the kernel cannot hold (``PATH_LEN`` bytes with its NUL) is left out and counted; the set is capped
at ``MAX_PATHS_PER_CONTAINER`` (the kernel's table is shared by the node), the rest counted as left out.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable
from dataclasses import dataclass

from vigil.service.analysis.runtime.jars import archive_place

MAX_PATHS_PER_CONTAINER = 256
PATH_LEN = 256  # the kernel's path buffer, NUL included (vigil.sensor.watch.PATH_LEN)
_PY_DIRS = ("site-packages", "dist-packages")
_METADATA = (".dist-info", ".egg-info")
_OS_TYPES = frozenset({"deb", "rpm", "apk"})


@dataclass(frozen=True, slots=True)
class InterestPackage:
    """A package of the image with an open vulnerable finding: its purl type, where it was found, its files."""

    type: str
    found_in: str
    files: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class InterestSet:
    paths: tuple[str, ...]  # sorted; a trailing "/" marks a prefix
    left_out: int  # paths over the cap or too long for the kernel


def _abs(path: str) -> str:
    return "/" + posixpath.normpath(path).lstrip("/")


def python_path(path: str) -> str | None:
    """The watched path of a file under site-packages/dist-packages, None when it is elsewhere or metadata."""
    parts = path.split("/")
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] not in _PY_DIRS:
            continue
        top = parts[i + 1]
        base = "/".join(parts[: i + 2])
        if top.endswith(_METADATA):
            return None
        if i + 2 == len(parts):
            return base  # a top-level module file
        if top == "__pycache__":
            return path  # a top-level module's bytecode
        return base + "/"
    return None


def node_path(path: str) -> str | None:
    parts = path.split("/")
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] != "node_modules":
            continue
        end = i + 3 if parts[i + 1].startswith("@") else i + 2
        if end >= len(parts):
            return None  # the scope directory itself, or a file directly in node_modules
        return "/".join(parts[:end]) + "/"
    return None


def package_paths(pkg: InterestPackage) -> set[str]:
    """The watched paths of one package."""
    out: set[str] = set()
    if pkg.type == "maven":
        place = archive_place(pkg.found_in, pkg.files)
        if place is not None:
            out.add(_abs(place.archive))
        return out
    if pkg.type == "npm":
        found = node_path(_abs(pkg.found_in))
        if found is not None:
            out.add(found)
    if pkg.type not in ("pypi", "npm") and pkg.type not in _OS_TYPES:
        return out
    for f in pkg.files:
        path = _abs(f)
        watched = python_path(path) if pkg.type != "npm" else None
        if watched is None:
            watched = node_path(path)
        if watched is not None:
            out.add(watched)
    return out


def _covered(path: str, prefixes: list[str]) -> bool:
    return any(path != p and path.startswith(p) for p in prefixes)


def interest_set(packages: Iterable[InterestPackage], cap: int = MAX_PATHS_PER_CONTAINER) -> InterestSet:
    """The watched paths of every package, without those another prefix covers, capped."""
    wanted: set[str] = set()
    too_long = 0
    for pkg in packages:
        for p in package_paths(pkg):
            if len(p.encode("utf-8", "surrogateescape")) >= PATH_LEN:
                too_long += 1
            else:
                wanted.add(p)
    prefixes = sorted(p for p in wanted if p.endswith("/"))
    kept = sorted(p for p in wanted if not _covered(p, prefixes))
    return InterestSet(tuple(kept[:cap]), too_long + max(0, len(kept) - cap))
