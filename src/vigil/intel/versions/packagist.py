"""Packagist (Composer) versions, ordered as OSV orders them: PHP's ``version_compare`` after a
leading ``v`` is dropped (the OSV scanners' Packagist semantics, which the vectors in
``../shared/data/versions`` were produced with).

``version_compare`` cuts a version at ``.``, ``-``, ``_``, ``+`` and between digits and other
characters, and compares the pieces in order: numbers as numbers; words by their place in
``dev < alpha = a < beta = b < RC = rc < (a number) < pl = p``, any other word before ``dev``.
When one version has more pieces, a further number makes it newer, a further word is compared
with a number: ``1.0-beta`` < ``1.0`` < ``1.0.0`` < ``1.0-pl1``. Unlike Composer's own constraint
solver, ``1.0`` and ``1.0.0`` are not equal here; Composer's ``installed.json`` and the advisories
both write full versions (``v5.4.30``, ``5.4.31``), where the two agree.
"""

from __future__ import annotations

import re

from .base import InvalidVersionError, VersionScheme

_VERSION = re.compile(r"[vV]?[0-9][0-9A-Za-z.+_-]*")
_SPECIAL = (
    ("dev", 0),
    ("alpha", 1),
    ("a", 1),
    ("beta", 2),
    ("b", 2),
    ("RC", 3),
    ("rc", 3),
    ("#", 4),
    ("pl", 5),
    ("p", 5),
)
_NUMBER = "#N#"


def _special(form: str) -> int:
    for name, order in _SPECIAL:
        if form.startswith(name):  # PHP compares with strncmp: a prefix is enough
            return order
    return -1


def _pieces(version: str) -> tuple[str, ...]:
    v = re.sub(r"[-_+]", ".", version)
    v = re.sub(r"(?<=\d)(?=[^\d.])|(?<=[^\d.])(?=\d)", ".", v)
    return tuple(p for p in v.split(".") if p)


def _piece_cmp(a: str, b: str) -> int:
    if a.isdigit() and b.isdigit():
        x, y = int(a), int(b)
        return (x > y) - (x < y)
    x = _special(_NUMBER if a.isdigit() else a)
    y = _special(_NUMBER if b.isdigit() else b)
    return (x > y) - (x < y)


class PackagistScheme(VersionScheme):
    name = "Packagist"

    def parse(self, version: str) -> tuple[str, ...]:
        if not _VERSION.fullmatch(version):
            raise InvalidVersionError(
                self.name, version, "expected [v]NUMBER[.NUMBER...] followed by letters, digits and '.', '-', '_', '+'"
            )
        v = version[1:] if version[0] in "vV" else version
        return _pieces(v)

    def compare_parsed(self, a: tuple[str, ...], b: tuple[str, ...]) -> int:
        for x, y in zip(a, b, strict=False):
            c = _piece_cmp(x, y)
            if c:
                return c
        if len(a) > len(b):
            rest = a[len(b)]
            return 1 if rest.isdigit() else _piece_cmp(rest, _NUMBER)
        if len(b) > len(a):
            rest = b[len(a)]
            return -1 if rest.isdigit() else _piece_cmp(_NUMBER, rest)
        return 0

    def canonical(self, version: str) -> str:
        return ".".join(self.parsed(version))
