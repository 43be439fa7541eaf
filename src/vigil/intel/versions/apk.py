"""Alpine (and Wolfi, Chainguard) package versions, ordered as apk-tools does.

``number{.number}...{letter}{_suffix{number}}...{-r#}``. apk reads a version as
a stream of typed tokens; two versions compare token by token, and when one
stream has a different kind of token next, the kind decides (e.g. ``1.2`` is
newer than ``1a``, ``1_rc1`` older than ``1``). A component after a dot that
starts with ``0`` compares as a fraction (``1.05 < 1.5``).

apk does not refuse malformed versions such as ``1-r-0``; it stops at the
malformed token. We do the same. Where apk 2.x (the generated vectors come from
Alpine 3.10's apk) and the rewritten apk-tools 3 disagree on malformed input,
we follow apk-tools 3 so that a malformed tail sorts below a clean one:

- a malformed tail sorts below the end of a clean version (``1-r-0 < 1-r0``);
- an empty dot component (``0..8``, ``0.r1``) sorts below any other token;
- ``-r`` directly followed by a letter (``1-ruff``) is malformed.

Equal prefixes that both turn malformed at the same token compare equal, as
in apk (``1-r0-1 = 1-r-2``).
"""

from __future__ import annotations

from .base import VersionScheme

# Token kinds, in apk's order: when two versions differ in the kind of token
# that comes next, the one whose next kind is *later* in this order is older.
DIGIT_OR_ZERO, DIGIT, LETTER, SUFFIX, SUFFIX_NO, REVISION_NO, END, EMPTY, INVALID = range(9)

_PRE_SUFFIXES = ("alpha", "beta", "pre", "rc")
_POST_SUFFIXES = ("cvs", "svn", "git", "hg", "p")

# A kind may go back to an earlier kind only in these (previous, next) pairs.
_BACKWARD_OK = {(DIGIT, DIGIT_OR_ZERO), (SUFFIX_NO, SUFFIX), (LETTER, DIGIT)}


def _is_digit(ch: str) -> bool:
    return "0" <= ch <= "9"


def _is_lower(ch: str) -> bool:
    return "a" <= ch <= "z"


def _next_kind(kind: int, s: str, pos: int) -> tuple[int, int]:
    """The kind of the next token starting at pos, and where its value starts."""
    if pos >= len(s):
        return END, pos
    ch = s[pos]
    if kind in (DIGIT, DIGIT_OR_ZERO) and _is_lower(ch):
        nxt = LETTER
    elif kind == LETTER and _is_digit(ch):
        nxt = DIGIT
    elif kind == SUFFIX and _is_digit(ch):
        nxt = SUFFIX_NO
    else:
        nxt = INVALID
        if ch == ".":
            nxt = DIGIT_OR_ZERO
        elif ch == "_":
            nxt = SUFFIX
        elif ch == "-" and pos + 1 < len(s) and s[pos + 1] == "r":
            nxt = REVISION_NO
            pos += 1
        pos += 1
    if nxt < kind and (kind, nxt) not in _BACKWARD_OK:
        nxt = INVALID
    return nxt, pos


def tokens(version: str) -> list[tuple[int, int]]:
    """(kind, value) of each token, then the terminating END or INVALID with value 0."""
    out: list[tuple[int, int]] = []
    kind, pos, n = DIGIT, 0, len(version)
    while kind not in (END, INVALID):
        if pos >= n:
            # A separator ended the string: apk reads an empty token worth 0.
            out.append((EMPTY if kind == DIGIT_OR_ZERO else kind, 0))
            kind = END
            break
        i = pos
        value = 0
        forced_next = None
        if kind == DIGIT_OR_ZERO and version[i] == "0":
            while i < n and version[i] == "0":
                i += 1
            value = -(i - pos)
            forced_next = DIGIT
        elif kind in (DIGIT, DIGIT_OR_ZERO, SUFFIX_NO, REVISION_NO):
            while i < n and _is_digit(version[i]):
                i += 1
            value = int(version[pos:i]) if i > pos else 0
            if i == pos and kind == REVISION_NO and _is_lower(version[i]):
                kind = INVALID
                break
            if i == pos and kind == DIGIT_OR_ZERO:
                out.append((EMPTY, 0))
                pos = i
                kind, pos = _next_kind(DIGIT_OR_ZERO, version, pos)
                continue
        elif kind == LETTER:
            value = ord(version[i])
            i += 1
        elif kind == SUFFIX:
            rest = version[pos:]
            for idx, name in enumerate(_PRE_SUFFIXES):
                if rest.startswith(name):
                    value, i = idx - len(_PRE_SUFFIXES), pos + len(name)
                    break
            else:
                for idx, name in enumerate(_POST_SUFFIXES):
                    if rest.startswith(name):
                        value, i = idx, pos + len(name)
                        break
                else:
                    kind = INVALID
                    break
        out.append((kind, value))
        pos = i
        if pos >= n:
            kind = END
        elif forced_next is not None:
            kind = forced_next
        else:
            kind, pos = _next_kind(kind, version, pos)
    out.append((kind, 0))
    return out


class ApkScheme(VersionScheme):
    name = "apk"

    def parse(self, version: str) -> tuple[tuple[int, int], ...]:
        return tuple(tokens(version))

    def compare_parsed(self, a: tuple[tuple[int, int], ...], b: tuple[tuple[int, int], ...]) -> int:
        # Walk both token streams while they agree in kind and value. Each
        # stream ends with its terminator (END or INVALID).
        k = 0
        while True:
            ka, va = a[k]
            kb, vb = b[k]
            if ka != kb:
                break
            if ka in (END, INVALID):
                return 0
            if va != vb:
                return -1 if va < vb else 1
            k += 1
        # Same values so far, but the next token differs in kind: a pre-release
        # suffix makes its side older; otherwise the later kind is older.
        if ka == SUFFIX and va < 0:
            return -1
        if kb == SUFFIX and vb < 0:
            return 1
        return -1 if ka > kb else 1
