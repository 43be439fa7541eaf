"""RubyGems versions, ordered as ``Gem::Version#<=>`` does.

A version is digits and letters in ``.``-separated segments (``1.2.0``, ``3.0.0.beta2``,
``1.0a``); a ``-`` stands for ``.pre.``. Segments are runs of digits (numbers) or of letters
(strings), so ``1.0a`` is ``1.0.a``. Trailing zeros are dropped from the numeric part and from the
part after the first string (``1.0.0`` = ``1``, ``1.0.a.0`` = ``1.0.a``). Segments compare in
order, a missing one counting as 0: numbers as numbers, strings as strings, and a string is older
than a number, so any version with letters is a pre-release (``1.0.a`` < ``1.0``).
"""

from __future__ import annotations

import re

from .base import InvalidVersionError, VersionScheme

_VERSION = re.compile(r"[0-9]+(?:\.[0-9a-zA-Z]+)*(?:-[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?")
_SEGMENT = re.compile(r"[0-9]+|[a-z]+", re.I)

Segments = tuple[int | str, ...]


def _trim_zeros(segments: list[int | str]) -> list[int | str]:
    while segments and segments[-1] == 0:
        segments.pop()
    return segments


class RubyGemsScheme(VersionScheme):
    name = "RubyGems"

    def parse(self, version: str) -> Segments:
        if not _VERSION.fullmatch(version):
            raise InvalidVersionError(
                self.name, version, "expected digits and letters in '.'-separated segments, starting with a number"
            )
        segments: list[int | str] = [
            int(s) if s.isdigit() else s for s in _SEGMENT.findall(version.replace("-", ".pre."))
        ]
        first_string = next((i for i, s in enumerate(segments) if isinstance(s, str)), len(segments))
        return tuple(_trim_zeros(segments[:first_string]) + _trim_zeros(segments[first_string:]))

    def compare_parsed(self, a: Segments, b: Segments) -> int:
        for i in range(max(len(a), len(b))):
            x = a[i] if i < len(a) else 0
            y = b[i] if i < len(b) else 0
            if x == y:
                continue
            if isinstance(x, str) and isinstance(y, int):
                return -1
            if isinstance(x, int) and isinstance(y, str):
                return 1
            return -1 if x < y else 1  # type: ignore[operator]
        return 0

    def canonical(self, version: str) -> str:
        return ".".join(str(s) for s in self.parsed(version)) or "0"
