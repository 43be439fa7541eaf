"""How a YAML document that does not parse is reported: the file, the line and the column.

Only the position is given, never PyYAML's own text: it quotes the offending line, which in a
registry config can hold a password. It lives at the package root because libraries (registry) and
units (the service's trust policy file) both read YAML files.
"""

from __future__ import annotations

import yaml


def yaml_error_message(source: str, exc: yaml.YAMLError) -> str:
    """``{source}: not valid YAML at line L, column C`` (1-based), or without the position if PyYAML has none."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return f"{source}: not valid YAML{where}"
