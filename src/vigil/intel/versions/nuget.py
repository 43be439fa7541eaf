"""NuGet versions, ordered as NuGet's ``NuGetVersion`` (SemVer 2.0 with a fourth number).

``Major[.Minor[.Patch[.Revision]]][-Label[.Label...]][+Metadata]``: missing numbers are 0
(``1.0`` = ``1.0.0.0``), leading zeros do not count (``1.0.01`` = ``1.0.1``). A release is newer
than its pre-releases; labels compare one by one, numbers as numbers and before words, words
without regard to case (``1.0.0-BETA`` = ``1.0.0-beta``), and more labels are newer when the
common ones are equal. Metadata after ``+`` does not change the order.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from .base import InvalidVersionError, VersionScheme

_NUGET = re.compile(
    r"(?P<release>[0-9]+(?:\.[0-9]+){0,3})"
    r"(?:-(?P<pre>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?"
    r"(?:\+(?P<meta>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?"
)


class NuGetVersion(NamedTuple):
    release: tuple[int, int, int, int]
    pre: tuple[tuple[int, int | str], ...] | None


class NuGetScheme(VersionScheme):
    name = "NuGet"

    def parse(self, version: str) -> NuGetVersion:
        m = _NUGET.fullmatch(version)
        if m is None:
            raise InvalidVersionError(
                self.name,
                version,
                "expected MAJOR[.MINOR[.PATCH[.REVISION]]][-LABEL[.LABEL...]][+METADATA] "
                "with ASCII letters, digits and '-' in the labels",
            )
        numbers = [int(x) for x in m["release"].split(".")] + [0, 0, 0]
        pre = m["pre"]
        labels = None
        if pre is not None:
            labels = tuple((0, int(p)) if p.isdigit() else (1, p.lower()) for p in pre.split("."))
        return NuGetVersion((numbers[0], numbers[1], numbers[2], numbers[3]), labels)

    def sort_key(self, parsed: NuGetVersion) -> tuple[tuple[int, ...], int, tuple[tuple[int, int | str], ...]]:
        if parsed.pre is None:
            return (parsed.release, 1, ())
        return (parsed.release, 0, parsed.pre)

    def compare_parsed(self, a: NuGetVersion, b: NuGetVersion) -> int:
        ka, kb = self.sort_key(a), self.sort_key(b)
        return (ka > kb) - (ka < kb)

    def canonical(self, version: str) -> str:
        v = self.parsed(version)
        text = ".".join(str(n) for n in v.release)
        if v.pre is not None:
            text += "-" + ".".join(str(label) for _, label in v.pre)
        return text
