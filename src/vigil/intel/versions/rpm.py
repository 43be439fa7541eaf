"""RPM package versions (Red Hat, Rocky, Alma, SUSE, ...), ordered as rpmvercmp.

``[epoch:]version[-release]``. Segments are runs of ASCII letters or digits;
anything else separates them. ``~`` sorts before everything (pre-releases),
``^`` after the base version but before any further segment (snapshots).
A missing release sorts before any release, including an empty one.

Real data has colons that are not epochs (``1.module+el9...rpm-nginx:1``):
the text before the first colon is compared with rpmvercmp rather than
refused, which orders numeric epochs as numbers and keeps such strings total.
"""

from __future__ import annotations

from typing import NamedTuple

from .base import VersionScheme, sign


class RpmVersion(NamedTuple):
    epoch: str
    version: str
    release: str | None


def _alnum(ch: str) -> bool:
    # rpm's risalnum is ASCII-only: other letters (e.g. Greek) are separators.
    return ch.isascii() and ch.isalnum()


def _digit(ch: str) -> bool:
    return "0" <= ch <= "9"


def _alpha(ch: str) -> bool:
    return ch.isascii() and ch.isalpha()


def rpmvercmp(a: str, b: str) -> int:
    if a == b:
        return 0
    i = j = 0
    la, lb = len(a), len(b)
    while i < la or j < lb:
        while i < la and not _alnum(a[i]) and a[i] not in "~^":
            i += 1
        while j < lb and not _alnum(b[j]) and b[j] not in "~^":
            j += 1
        ta = a[i] if i < la else ""
        tb = b[j] if j < lb else ""
        if ta == "~" or tb == "~":
            if ta != "~":
                return 1
            if tb != "~":
                return -1
            i += 1
            j += 1
            continue
        if ta == "^" or tb == "^":
            if i >= la:
                return -1
            if j >= lb:
                return 1
            if ta != "^":
                return 1
            if tb != "^":
                return -1
            i += 1
            j += 1
            continue
        if i >= la or j >= lb:
            break
        si, sj = i, j
        numeric = _digit(a[i])
        kind = _digit if numeric else _alpha
        while i < la and kind(a[i]):
            i += 1
        while j < lb and kind(b[j]):
            j += 1
        seg_a, seg_b = a[si:i], b[sj:j]
        if not seg_b:
            # Segments of different kinds: a number is newer than letters.
            return 1 if numeric else -1
        if numeric:
            seg_a = seg_a.lstrip("0")
            seg_b = seg_b.lstrip("0")
            if len(seg_a) != len(seg_b):
                return sign(len(seg_a) - len(seg_b))
        if seg_a != seg_b:
            return -1 if seg_a < seg_b else 1
    if i >= la and j >= lb:
        return 0
    return -1 if i >= la else 1


class RpmScheme(VersionScheme):
    name = "rpm"

    def parse(self, version: str) -> RpmVersion:
        epoch, sep, rest = version.partition(":")
        if not sep:
            epoch, rest = "", version
        ver, sep, release = rest.rpartition("-")
        if not sep:
            return RpmVersion(epoch or "0", rest, None)
        return RpmVersion(epoch or "0", ver, release)

    def compare_parsed(self, a: RpmVersion, b: RpmVersion) -> int:
        c = rpmvercmp(a.epoch, b.epoch) or rpmvercmp(a.version, b.version)
        if c:
            return c
        if a.release is None or b.release is None:
            return (a.release is not None) - (b.release is not None)
        return rpmvercmp(a.release, b.release)
