"""How the CLI prints results: rich tables for people, JSON for scripts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    if isinstance(value, (dict, list)):
        return orjson.dumps(value).decode()
    return str(value)


def _get(row: dict, path: str) -> Any:
    value: Any = row
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def print_rows(rows: list[dict], columns: list[str], output: str, title: str | None = None) -> None:
    if output == "json":
        print(orjson.dumps(rows, default=str, option=orjson.OPT_INDENT_2).decode())
        return
    # rich only for tables: `-o json` is what scripts call, and they should not pay for it.
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for c in columns:
        table.add_column(c.split(".")[-1] if "." in c and not c.endswith("status") else c)
    for r in rows:
        table.add_row(*(_cell(_get(r, c)) for c in columns))
    Console().print(table)
