"""Label and field selectors with the grammar and error wording of the Kubernetes API.

Label selectors: ``k=v``, ``k==v``, ``k!=v``, ``k in (a,b)``, ``k notin (a)``, ``k``,
``!k``, ``k>1``, ``k<1``, comma-separated (all must hold). Field selectors: ``f=v``,
``f==v``, ``f!=v`` over the fields each resource allows; ``\\,``, ``\\=`` and ``\\\\``
escape in values.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import ApiError

_LABEL_KEY = re.compile(
    r"([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?\Z"
)
_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?\Z")

Predicate = Callable[[dict[str, str]], bool]


@dataclass(frozen=True, slots=True)
class Requirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!", "gt", "lt"
    values: tuple[str, ...] = ()

    def matches(self, labels: dict[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.op in ("=", "in"):
            return present and value in self.values
        if self.op in ("!=", "notin"):
            return not present or value not in self.values
        if self.op == "exists":
            return present
        if self.op == "!":
            return not present
        if not present:
            return False
        try:
            have = int(value)  # type: ignore[arg-type]
        except ValueError:
            return False
        want = int(self.values[0])
        return have > want if self.op == "gt" else have < want


def _split_top(text: str) -> list[str]:
    """Split on commas that are not inside parentheses."""
    parts: list[str] = []
    cur: list[str] = []
    depth = 0
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return parts


def _bad_label(selector: str, why: str) -> ApiError:
    return ApiError(
        400, f"unable to parse requirement: {why}" if why else f"couldn't parse the selector string {selector!r}"
    )


def _check_key(key: str) -> str:
    if not _LABEL_KEY.match(key) or len(key) > 317:
        raise ApiError(
            400,
            f'unable to parse requirement: <nil>: Invalid value: "{key}": name part must consist of '
            "alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
        )
    return key


def _check_value(value: str) -> str:
    if not _LABEL_VALUE.match(value):
        raise ApiError(
            400,
            f'unable to parse requirement: values[0][{value}]: Invalid value: "{value}": a valid label '
            "must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must "
            "start and end with an alphanumeric character",
        )
    return value


_SET_RE = re.compile(r"^\s*(\S+)\s+(in|notin)\s*\((.*)\)\s*$")


def parse_label_selector(selector: str | None) -> list[Requirement]:
    if selector is None or not selector.strip():
        return []
    reqs: list[Requirement] = []
    for raw in _split_top(selector):
        part = raw.strip()
        if not part:
            raise _bad_label(selector, "found '', expected: identifier")
        m = _SET_RE.match(part)
        if m:
            key, op, inner = m.group(1), m.group(2), m.group(3)
            values = tuple(_check_value(v.strip()) for v in inner.split(",")) if inner.strip() else ()
            if not values:
                raise _bad_label(selector, f"for '{op}', 'notin' operators, values set can't be empty")
            reqs.append(Requirement(_check_key(key), op, values))
            continue
        for token, op in (("!=", "!="), ("==", "="), ("=", "="), (">", "gt"), ("<", "lt")):
            if token in part:
                key, _, value = part.partition(token)
                key, value = key.strip(), value.strip()
                if op in ("gt", "lt"):
                    if not re.fullmatch(r"-?\d+", value):
                        raise _bad_label(selector, "for 'Gt', 'Lt' operators, the value must be an integer")
                else:
                    _check_value(value)
                reqs.append(Requirement(_check_key(key), op, (value,)))
                break
        else:
            if part.startswith("!"):
                reqs.append(Requirement(_check_key(part[1:].strip()), "!"))
            else:
                if " " in part:
                    raise _bad_label(selector, f"found '{part.split()[1]}', expected: ',', or end of string")
                reqs.append(Requirement(_check_key(part), "exists"))
    return reqs


def labels_match(reqs: list[Requirement], labels: dict[str, Any] | None) -> bool:
    if not reqs:
        return True
    flat = {k: ("" if v is None else str(v)) for k, v in (labels or {}).items()}
    return all(r.matches(flat) for r in reqs)


@dataclass(frozen=True, slots=True)
class FieldRequirement:
    field: str
    negate: bool
    value: str


def _unescape_split(text: str, sep: str) -> list[str]:
    out, cur, i = [], [], 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            cur.append("\\" + text[i + 1])
            i += 2
            continue
        if ch == sep:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
        i += 1
    out.append("".join(cur))
    return out


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", r"\1", value)


def parse_field_selector(
    selector: str | None, allowed: tuple[str, ...], kind: str, api_version: str
) -> list[FieldRequirement]:
    if selector is None or not selector.strip():
        return []
    reqs = []
    for part in _unescape_split(selector, ","):
        if not part:
            continue
        m = re.match(r"^([^=!]+)(!=|==|=)(.*)$", part)
        if not m:
            raise ApiError(400, f"invalid selector: '{selector}'; can't understand '{part}'")
        name, op, value = m.group(1).strip(), m.group(2), _unescape(m.group(3))
        if name not in allowed:
            raise ApiError(400, f"field label not supported: {name}")
        reqs.append(FieldRequirement(name, op == "!=", value))
    return reqs


def field_value(obj: dict[str, Any], path: str) -> str:
    cur: Any = obj
    for part in path.split("."):
        if not isinstance(cur, dict):
            return ""
        cur = cur.get(part)
    if cur is None:
        return ""
    if isinstance(cur, bool):
        return "true" if cur else "false"
    return str(cur)


def fields_match(reqs: list[FieldRequirement], obj: dict[str, Any]) -> bool:
    for r in reqs:
        equal = field_value(obj, r.field) == r.value
        if equal == r.negate:
            return False
    return True
