"""CSV of a console list: cells safe to open in a spreadsheet, and the answer that carries them.

A cell beginning with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return would be read as a
formula by spreadsheet programs (CSV injection): names in these lists come from clusters and
registries, so such a cell gets a leading single quote and is shown as text.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from fastapi.responses import Response

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
MEDIA_TYPE = "text/csv; charset=utf-8"


def safe_cell(value: object) -> str:
    """One cell's text: None is empty, booleans are true/false, and a would-be formula is quoted."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


@dataclass(frozen=True)
class Table:
    """A list's rows as exported: ``capped`` when more rows matched than ``cap`` let out."""

    name: str
    header: Sequence[str]
    rows: list[Sequence[object]]
    capped: bool
    cap: int


def encode(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([safe_cell(h) for h in header])
    writer.writerows([safe_cell(v) for v in row] for row in rows)
    return out.getvalue()


def filename(table: Table, now: datetime | None = None) -> str:
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    first = f"-first-{table.cap}" if table.capped else ""
    return f"vigil-{table.name}{first}-{stamp}.csv"


def response(table: Table) -> Response:
    """The CSV as a download; ``X-Vigil-Export-Capped`` says whether rows were left out."""
    return Response(
        encode(table.header, table.rows),
        media_type=MEDIA_TYPE,
        headers={
            "Content-Disposition": f'attachment; filename="{filename(table)}"',
            "X-Vigil-Export-Rows": str(len(table.rows)),
            "X-Vigil-Export-Capped": "true" if table.capped else "false",
            "Cache-Control": "no-store",
        },
    )
