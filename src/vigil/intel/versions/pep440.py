"""PyPI versions: PEP 440, with pre-PEP 440 ("legacy") versions still ordered.

Valid versions are parsed and ordered by ``packaging``. Old releases on PyPI
and in advisories (``0.1-bulbasaur``, ``2013-01-21T20:33:09+0100``) are not
PEP 440; pip ordered them with setuptools' legacy rules before ``packaging``
dropped them, always below every PEP 440 version. We keep that order so such
releases can still be matched against advisory bounds. An *installed* version
that does not begin with a digit (``zzz``, ``latest``) is neither, and is
refused: ordered as legacy it would sort below every release and match every
"introduced: 0" range.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from packaging.version import InvalidVersion, Version

from .base import InvalidVersionError, VersionScheme

_LEGACY_PART = re.compile(r"(\d+|[a-z]+|\.|-)")
# A bare release ("1.2.10"): most versions in advisories' lists. Its canonical
# spelling needs no parse, which matters when a package's list has thousands.
_PLAIN_RELEASE = re.compile(r"(?:0|[1-9][0-9]*)(?:\.(?:0|[1-9][0-9]*))*")
_TRAILING_ZEROS = re.compile(r"(?:\.0)+$")
_LEGACY_REPLACE = {"pre": "c", "preview": "c", "-": "final-", "rc": "c", "dev": "@"}


def _legacy_parts(version: str) -> Iterator[str]:
    for part in _LEGACY_PART.split(version.lower()):
        part = _LEGACY_REPLACE.get(part, part)
        if not part or part == ".":
            continue
        if part[:1].isdigit():
            # Zero-padded so that numbers compare as numbers in a string sort.
            yield part.zfill(8)
        else:
            yield "*" + part
    yield "*final"


def legacy_key(version: str) -> tuple[str, ...]:
    parts: list[str] = []
    for part in _legacy_parts(version):
        if part.startswith("*"):
            if part < "*final":
                # A pre-release marker: drop the release padding before it.
                while parts and parts[-1] == "*final-":
                    parts.pop()
            while parts and parts[-1] == "00000000":
                parts.pop()
        parts.append(part)
    return tuple(parts)


def _local_part(part: str) -> tuple[int, int, str]:
    # A numeric segment sorts above any alphanumeric one, numbers by value, text by text.
    return (1, int(part), "") if part.isdigit() else (0, 0, part)


def pep440_key(v: Version) -> tuple[Any, ...]:
    """The order of ``packaging``'s Version as a tuple of ints, strings and tuples.

    The same rules as ``packaging.version._cmpkey``: trailing zeros of the release do not
    count; a dev release without pre or post sorts before the pre-releases; no pre-release
    sorts after all of them; no post-release before any; no dev after any; a local segment
    sorts after its public version. Infinity sentinels become leading rank ints.
    """
    release = v.release
    end = len(release)
    while end > 1 and release[end - 1] == 0:
        end -= 1
    if v.pre is not None:
        pre: tuple[Any, ...] = (1, v.pre[0], v.pre[1])
    elif v.post is None and v.dev is not None:
        pre = (0,)
    else:
        pre = (2,)
    post = (0,) if v.post is None else (1, v.post)
    dev = (1,) if v.dev is None else (0, v.dev)
    local = (0,) if v.local is None else (1, tuple(_local_part(p) for p in v.local.split(".")))
    return (v.epoch, release[:end], pre, post, dev, local)


class Pep440Scheme(VersionScheme):
    name = "PEP 440"

    def parse(self, version: str) -> tuple[int, Any]:
        try:
            return (1, Version(version))
        except InvalidVersion:
            return (0, legacy_key(version))

    def validate_installed(self, version: str) -> None:
        kind, _ = self.parsed(version)
        if kind == 0 and not version[:1].isdigit():
            raise InvalidVersionError(
                self.name, version, "neither PEP 440 nor a legacy version (legacy versions begin with a digit)"
            )

    def canonical(self, version: str) -> str:
        if _PLAIN_RELEASE.fullmatch(version):  # no leading zeros: only trailing ".0"s to drop
            return _TRAILING_ZEROS.sub("", version) if version != "0" else version
        kind, parsed = self.parsed(version)
        if kind == 0:
            return version
        # Release without trailing zeros: 1.0.0 and 1.0 are the same PEP 440 version.
        release = list(parsed.release)
        while len(release) > 1 and release[-1] == 0:
            release.pop()
        text = str(parsed)
        epoch = f"{parsed.epoch}!" if parsed.epoch else ""
        return epoch + ".".join(map(str, release)) + text[len(parsed.base_version) :]

    def sort_key(self, parsed: tuple[int, Any]) -> tuple[int, Any]:
        # (0, legacy tuple) below (1, PEP 440 tuple): both plain tuples, so bisecting and sorting
        # advisory bounds compares in C (Version's own operators are Python calls).
        kind, v = parsed
        return (1, pep440_key(v)) if kind == 1 else parsed

    def compare_parsed(self, a: tuple[int, Any], b: tuple[int, Any]) -> int:
        if a[0] != b[0]:
            return -1 if a[0] < b[0] else 1
        if a[1] == b[1]:
            return 0
        return -1 if a[1] < b[1] else 1
