"""SemVer 2.0 ordering as used by Go modules, npm, crates.io, Hex and Pub.

Accepted leniently, as the ecosystems write them: a ``v`` prefix (Go), any
number of numeric components (missing ones count as 0), a pre-release after
``-`` and build metadata after ``+`` (ignored for ordering, so Go's
``+incompatible`` does not change a version's place). Numbers may be larger
than 64 bits.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from .base import InvalidVersionError, VersionScheme

_SEMVER = re.compile(
    r"v?(?P<release>[0-9]+(?:\.[0-9]+)*)"
    r"(?:-(?P<pre>[0-9A-Za-z.-]*))?"
    r"(?:\+(?P<build>[0-9A-Za-z.+-]*))?"
)


class SemVer(NamedTuple):
    release: tuple[int, ...]
    # Pre-release identifiers: (0, number) or (1, text), so numbers sort first.
    pre: tuple[tuple[int, int | str], ...] | None


def _pre_ident(ident: str) -> tuple[int, int | str]:
    if ident.isdigit():
        return (0, int(ident))
    return (1, ident)


class SemverScheme(VersionScheme):
    name = "SemVer"

    def parse(self, version: str) -> SemVer:
        m = _SEMVER.fullmatch(version)
        if m is None:
            raise InvalidVersionError(
                self.name,
                version,
                "expected [v]MAJOR[.MINOR[.PATCH...]][-PRERELEASE][+BUILD] "
                "with ASCII letters, digits, '.' and '-' in PRERELEASE and BUILD",
            )
        release = tuple(int(x) for x in m["release"].split("."))
        # Trailing zeros do not change the version: 1.0 == 1.0.0.
        while len(release) > 1 and release[-1] == 0:
            release = release[:-1]
        pre = m["pre"]
        return SemVer(
            release,
            tuple(_pre_ident(p) for p in pre.split(".")) if pre is not None else None,
        )

    def canonical(self, version: str) -> str:
        self.parsed(version)
        return version.removeprefix("v")

    def sort_key(self, parsed: SemVer) -> tuple[tuple[int, ...], int, tuple[tuple[int, int | str], ...]]:
        # Trailing zeros are already stripped, so a shorter release tuple that is
        # a prefix of a longer one is older, exactly as tuple order says. A
        # release without pre-release sorts after all its pre-releases.
        if parsed.pre is None:
            return (parsed.release, 1, ())
        return (parsed.release, 0, parsed.pre)

    def compare_parsed(self, a: SemVer, b: SemVer) -> int:
        if a.release != b.release:
            return -1 if _padded(a.release, b.release) < _padded(b.release, a.release) else 1
        if a.pre == b.pre:
            return 0
        if a.pre is None:
            return 1
        if b.pre is None:
            return -1
        return -1 if a.pre < b.pre else 1


def _padded(x: tuple[int, ...], other: tuple[int, ...]) -> tuple[int, ...]:
    return x + (0,) * (len(other) - len(x))
