"""How the CLI prints results: rich tables for people, JSON for scripts."""

from __future__ import annotations

import sys
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from rich.console import Console

# The width a table gets when stdout is no terminal: wide enough that no value is ever cut, because a
# pipe's reader (a script, `| cat`, `| grep`) copies ids from it.
UNBOUNDED_WIDTH = 100_000


class Output(str, Enum):
    """``--output`` of a listing command."""

    table = "table"
    json = "json"


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


def table_console() -> Console:
    """The console tables print to: fitted (cells cut or wrapped) on a terminal, every value whole otherwise."""
    from rich.console import Console

    if sys.stdout.isatty():
        return Console(highlight=False)
    return Console(width=UNBOUNDED_WIDTH, highlight=False)


def print_rows(rows: list[dict], columns: list[str], output: str | Output, title: str | None = None) -> None:
    if output == Output.json:
        # Store rows name their columns with str subclasses (SQLAlchemy's quoted names).
        print(orjson.dumps(rows, default=str, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode())
        return
    # rich only for tables: `-o json` is what scripts call, and they should not pay for it.
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=title)
    for c in columns:
        table.add_column(c.split(".")[-1] if "." in c and not c.endswith("status") else c)
    for r in rows:
        table.add_row(*(escape(_cell(_get(r, c))) for c in columns))
    table_console().print(table)
