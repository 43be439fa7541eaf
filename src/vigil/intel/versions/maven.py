"""Maven versions, ordered by the POM reference's "Version Order Specification".

The version is cut into tokens at ``.``, ``-`` and at every change between
digits and other characters (such a change counts as ``-``); each token keeps
the separator before it. Trailing "null" tokens (``0``, ``""``, ``final``,
``ga``, ``release``) are dropped at the end of the version and at the end of
every ``-`` group. The shorter version is padded with nulls that take the
other side's separator. Equal separators: numbers compare as numbers,
qualifiers as ``alpha < beta < milestone < rc = cr < snapshot < "" = final =
ga = release < sp`` and then any other qualifier alphabetically, and a number
is newer than a qualifier. Different separators:
``.qualifier < -qualifier < -number < .number``. Case does not matter.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from .base import VersionScheme

_KNOWN_QUALIFIERS = ("alpha", "beta", "milestone", "rc", "snapshot", "", "sp")
_QUALIFIER_RANK = {q: i for i, q in enumerate(_KNOWN_QUALIFIERS)}
_ALIASES = {"cr": "rc", "ga": "", "final": "", "release": ""}
# Only when directly followed by a number: 1a1 is 1-alpha-1, but 1a is 1-a.
_SHORT_ALIASES = {"a": "alpha", "b": "beta", "m": "milestone"}
_PIECE = re.compile(r"\d+|\D+")


class Token(NamedTuple):
    sep: str  # "." or "-"
    value: int | str | None  # None: padding null


def _is_null(t: Token) -> bool:
    return t.value == 0 or t.value == ""


def tokenize(version: str) -> tuple[Token, ...]:
    tokens: list[Token] = []
    sep = "."  # the first token compares as if after a dot
    for raw in re.split(r"([.-])", version.lower()):
        if raw in (".", "-"):
            sep = raw
            continue
        pieces = _PIECE.findall(raw) or [""]
        for k, piece in enumerate(pieces):
            piece_sep = sep if k == 0 else "-"
            if piece.isdigit():
                tokens.append(Token(piece_sep, int(piece)))
                continue
            if k + 1 < len(pieces):
                piece = _SHORT_ALIASES.get(piece, piece)
            piece = _ALIASES.get(piece, piece)
            # An empty token (as in "1..2" or "1-") stands for 0.
            tokens.append(Token(piece_sep, piece if piece or raw else 0))
    _trim(tokens)
    return tuple(tokens)


def _trim(tokens: list[Token]) -> None:
    i = len(tokens) - 1
    while i > 0:
        if _is_null(tokens[i]):
            del tokens[i]
            i -= 1
            continue
        # Not null: skip to the token that opens this "-" group, then go on
        # trimming the end of the group before it.
        while i >= 0 and tokens[i].sep != "-":
            i -= 1
        i -= 1


def _qualifier_cmp(a: str, b: str) -> int:
    ra = _QUALIFIER_RANK.get(a, len(_KNOWN_QUALIFIERS))
    rb = _QUALIFIER_RANK.get(b, len(_KNOWN_QUALIFIERS))
    if ra == rb == len(_KNOWN_QUALIFIERS):
        return (a > b) - (a < b)
    return (ra > rb) - (ra < rb)


def _sep_rank(t: Token) -> int:
    numeric = isinstance(t.value, int)
    if t.sep == ".":
        return 3 if numeric else 0
    return 2 if numeric else 1


def _token_cmp(a: Token, b: Token) -> int:
    if a.sep != b.sep:
        ra, rb = _sep_rank(a), _sep_rank(b)
        return (ra > rb) - (ra < rb)
    av, bv = a.value, b.value
    if av is None or bv is None:
        # A padding null: 0 against a number after ".", "" against a qualifier;
        # after "-" a number is newer than the missing token.
        other, flip = (bv, 1) if av is None else (av, -1)
        if other is None:
            return 0
        if isinstance(other, int):
            c = -1 if a.sep == "-" else (0 > other) - (0 < other)
        else:
            c = _qualifier_cmp("", other)
        return c * flip
    if isinstance(av, int) and isinstance(bv, int):
        return (av > bv) - (av < bv)
    if isinstance(av, int) or isinstance(bv, int):
        return 1 if isinstance(av, int) else -1
    return _qualifier_cmp(av, bv)


class MavenScheme(VersionScheme):
    name = "Maven"

    def parse(self, version: str) -> tuple[Token, ...]:
        return tokenize(version)

    def compare_parsed(self, a: tuple[Token, ...], b: tuple[Token, ...]) -> int:
        for i in range(max(len(a), len(b))):
            ta = a[i] if i < len(a) else Token(b[i].sep, None)
            tb = b[i] if i < len(b) else Token(a[i].sep, None)
            c = _token_cmp(ta, tb)
            if c:
                return c
        return 0
