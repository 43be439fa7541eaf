"""Parsers for the stanza formats of dpkg and apk databases (pure logic)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class Stanza:
    line: int  # 1-based line where it starts
    fields: dict[str, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


def parse_deb822(text: str) -> list[Stanza]:
    """Paragraphs of ``Field: value`` lines, continuation lines starting with
    space or tab (Debian Policy 5.1). A line that is neither marks its
    paragraph as corrupt; the caller decides what to do with it."""
    out: list[Stanza] = []
    current: Stanza | None = None
    last_key: str | None = None
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.rstrip("\r")
        if not line.strip():
            current, last_key = None, None
            continue
        if current is None:
            current = Stanza(line=n)
            out.append(current)
        if line[0] in " \t":
            if last_key is None:
                current.errors.append(f"line {n}: continuation line without a field")
            else:
                current.fields[last_key] += "\n" + line[1:]
            continue
        key, sep, value = line.partition(":")
        if not sep or not key or " " in key:
            current.errors.append(f"line {n}: neither a 'Field: value' line nor a continuation: {line[:60]!r}")
            last_key = None
            continue
        last_key = key.strip()
        current.fields[last_key] = value.strip()
    return out


@dataclass(slots=True)
class ApkRecord:
    line: int
    fields: dict[str, str] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def parse_apk_installed(text: str) -> list[ApkRecord]:
    """apk's installed database: records of ``X:value`` lines separated by
    blank lines; ``F:`` names a directory and the ``R:`` lines after it the
    files in it."""
    out: list[ApkRecord] = []
    current: ApkRecord | None = None
    directory = ""
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.rstrip("\r")
        if not line.strip():
            current, directory = None, ""
            continue
        if current is None:
            current = ApkRecord(line=n)
            out.append(current)
        if len(line) < 2 or line[1] != ":" or not line[0].isalpha():
            current.errors.append(f"line {n}: not a 'X:value' line: {line[:60]!r}")
            continue
        key, value = line[0], line[2:]
        if key == "F":
            directory = value.strip("/")
        elif key == "R":
            current.files.append("/" + (f"{directory}/{value}" if directory else value))
        elif key not in current.fields:
            current.fields[key] = value
    return out
