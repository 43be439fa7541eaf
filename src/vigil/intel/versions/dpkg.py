"""Debian and Ubuntu package versions, ordered as dpkg does.

``[epoch:]upstream[-revision]``: epochs compare as integers, then upstream and
revision each with dpkg's verrevcmp, in which ``~`` sorts before everything,
even the end of the string (so ``1.0~rc1 < 1.0``), letters sort before other
characters, and runs of digits compare as integers.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from .base import InvalidVersionError, VersionScheme, sign

_ALLOWED = re.compile(r"[A-Za-z0-9.+~:-]+")


class DpkgVersion(NamedTuple):
    epoch: int
    upstream: str
    revision: str


def _order(ch: str) -> int:
    if ch == "~":
        return -1
    if ch.isascii() and ch.isalpha():
        return ord(ch)
    return ord(ch) + 256


def verrevcmp(a: str, b: str) -> int:
    i = j = 0
    la, lb = len(a), len(b)
    while i < la or j < lb:
        # Non-digit prefix, character by character; the end of a part weighs 0.
        while (i < la and not a[i].isdigit()) or (j < lb and not b[j].isdigit()):
            ca = _order(a[i]) if i < la and not a[i].isdigit() else 0
            cb = _order(b[j]) if j < lb and not b[j].isdigit() else 0
            if ca != cb:
                return sign(ca - cb)
            if i < la and not a[i].isdigit():
                i += 1
            if j < lb and not b[j].isdigit():
                j += 1
        si = i
        while i < la and a[i].isdigit():
            i += 1
        sj = j
        while j < lb and b[j].isdigit():
            j += 1
        na = int(a[si:i]) if i > si else 0
        nb = int(b[sj:j]) if j > sj else 0
        if na != nb:
            return sign(na - nb)
    return 0


# Per run of non-digits then digits: the characters' weights ending in 0, then the number.
_PartKey = tuple[tuple[tuple[int, ...], int], ...]


def _part_key(part: str) -> _PartKey:
    """verrevcmp as a tuple: (non-digit weights + end marker 0, number) pairs,
    then a terminator pair that sorts like the end of the string (above "~",
    below any other character)."""
    out: list[tuple[tuple[int, ...], int]] = []
    i, n = 0, len(part)
    while i < n:
        j = i
        while j < n and not part[j].isdigit():
            j += 1
        k = j
        while k < n and part[k].isdigit():
            k += 1
        out.append((tuple(_order(c) for c in part[i:j]) + (0,), int(part[j:k]) if k > j else 0))
        i = k
    # A leading "0" (no letters, number 0) weighs the same as nothing at all.
    while out and out[-1] == ((0,), 0):
        out.pop()
    out.append(((0,), 0))
    return tuple(out)


class DpkgScheme(VersionScheme):
    name = "dpkg"

    def parse(self, version: str) -> DpkgVersion:
        if not _ALLOWED.fullmatch(version):
            raise InvalidVersionError(
                self.name,
                version,
                "only letters, digits and . + ~ : - are allowed (deb-version(7))",
            )
        epoch = 0
        rest = version
        if ":" in version:
            epoch_text, rest = version.split(":", 1)
            if not epoch_text.isdigit() or not epoch_text.isascii():
                raise InvalidVersionError(self.name, version, "the epoch before ':' must be a number")
            epoch = int(epoch_text)
        upstream, sep, revision = rest.rpartition("-")
        if not sep:
            upstream, revision = rest, ""
        if not upstream:
            raise InvalidVersionError(self.name, version, "the upstream version must not be empty")
        return DpkgVersion(epoch, upstream, revision)

    def sort_key(self, parsed: DpkgVersion) -> tuple[int, _PartKey, _PartKey]:
        return (parsed.epoch, _part_key(parsed.upstream), _part_key(parsed.revision))

    def compare_parsed(self, a: DpkgVersion, b: DpkgVersion) -> int:
        if a.epoch != b.epoch:
            return sign(a.epoch - b.epoch)
        return verrevcmp(a.upstream, b.upstream) or verrevcmp(a.revision, b.revision)
