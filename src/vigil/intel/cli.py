"""``vigil intel``: import OSV advisories into the local database and query it.

The database defaults to ``$VIGIL_DATA_DIR/intel.db`` (or
``~/.local/share/vigil/intel.db``); ``--db`` chooses another file.
"""

from __future__ import annotations

import enum
import json
import logging
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from vigil.cli_paths import BadPath, input_path, output_dir, store_file

from .aliases import Vulnerability, merge_matches
from .ecosystems import UnknownOsvEcosystemError, normalize_name, parse_ecosystem
from .loader import RECORD_SUFFIXES, load_osv
from .matching import AdvisoryIndex
from .store import AdvisoryStore, StoreError, default_db_path
from .versions import InvalidVersionError

app = typer.Typer(
    help="Advisory intelligence: import OSV records, query what affects a package.",
    no_args_is_help=True,
)

DB_HELP = "advisory database file (default: $VIGIL_DATA_DIR/intel.db or ~/.local/share/vigil/intel.db)"


class OutputFormat(str, enum.Enum):
    table = "table"
    json = "json"


def _console() -> Console:
    # Wide enough that ids and versions are never wrapped mid-word.
    return Console(highlight=False, soft_wrap=True)


# A table's summary: the advisory's first words, enough to tell advisories apart (whole in -o json).
SUMMARY_WIDTH = 60


def _table_summary(summary: str) -> str:
    text = " ".join(summary.split())
    return text if len(text) <= SUMMARY_WIDTH else text[: SUMMARY_WIDTH - 1].rstrip() + "…"


# What an ALIASES or SUMMARY cell is cut to at the least: enough to tell one from the next.
MIN_TEXT_WIDTH = 12
COLUMN_GAP = 2  # the padding rich puts between two columns of a table without box


def _text_widths(aliases: int, summary: int, room: int) -> tuple[int, int]:
    """Widths of the ALIASES and SUMMARY columns (their longest cells ``aliases`` and ``summary``) sharing
    ``room`` characters: whole when both fit, else the summary keeps at least half, and neither is cut
    below MIN_TEXT_WIDTH (the table is then wider than ``room``)."""
    if aliases + summary <= room:
        return aliases, summary
    kept_aliases = min(aliases, max(MIN_TEXT_WIDTH, room // 2))
    kept_summary = min(summary, max(MIN_TEXT_WIDTH, room - kept_aliases))
    return min(aliases, max(kept_aliases, room - kept_summary)), kept_summary


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


@app.command("import")
def import_command(
    paths: Annotated[
        list[Path],
        typer.Argument(help="OSV files (.json, .yaml), directories or .zip archives"),
    ],
    db: Annotated[Path | None, typer.Option("--db", help=DB_HELP)] = None,
) -> None:
    """Import OSV advisories; a record replaces a stored one only if modified later."""
    for given in paths:
        input_path(given, "PATH")
        if given.is_file() and given.suffix.lower() not in (*RECORD_SUFFIXES, ".zip"):
            raise BadPath(f"PATH {given}: not a .json, .yaml, .yml or .zip file")
    db_path = store_file(db or default_db_path(), "--db")
    console = _console()
    # The loader logs what it skips, rejects and warns about, for the service's log; here the report below
    # says each once, so the log records must not reach stderr as well.
    loader_log = logging.getLogger("vigil.intel")
    if not any(isinstance(h, logging.NullHandler) for h in loader_log.handlers):
        loader_log.addHandler(logging.NullHandler())
    with Progress(
        TextColumn("reading OSV records"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as progress:
        task = progress.add_task("read", total=None)

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        advisories, report = load_osv(paths, progress=advance)
    try:
        with AdvisoryStore(db_path) as store:
            store.upsert(advisories, report)
            total = len(store)
    except StoreError as exc:
        raise _fail(str(exc)) from exc
    console.print(
        f"imported {report.imported}, updated {report.updated}, unchanged {report.unchanged}, "
        f"rejected {len(report.rejected)} ({report.records} records in {report.files} files; "
        f"{total} advisories in the database)"
    )
    for rejection in report.rejected:
        console.print(f"rejected: {rejection}")
    for path, reason in report.skipped:
        console.print(f"skipped: {path}: {reason}")
    for warning in report.warnings:
        typer.echo(f"warning: {warning}", err=True)
    if report.rejected:
        raise typer.Exit(1)


def _vulnerability_json(v: Vulnerability) -> dict[str, Any]:
    return {
        "id": v.id,
        "advisories": list(v.advisory_ids),
        "aliases": list(v.aliases),
        "severity": {
            "level": v.severity.level,
            "score": v.severity.score,
            "source": v.severity.source or None,
            "from": v.severity_from or None,
        },
        "fixed_versions": list(v.fixed_versions),
        "malicious": v.malicious,
        "summary": v.summary,
        "links": list(v.links),
    }


@app.command("query")
def query_command(
    ecosystem: str = typer.Option(..., "--ecosystem", help="OSV ecosystem, e.g. PyPI, Go, Debian:12, Alpine:v3.19"),
    package: str = typer.Option(..., "--package", help="package name (Debian/Ubuntu: the source package)"),
    version: str = typer.Option(..., "--version", help="installed version"),
    db: Annotated[Path | None, typer.Option("--db", help=DB_HELP)] = None,
    output: Annotated[OutputFormat, typer.Option("--output", "-o", help="table or json")] = OutputFormat.table,
) -> None:
    """List the vulnerabilities (advisories merged by alias) affecting one package version."""
    path = db or default_db_path()
    if not path.exists():
        raise _fail(f"advisory database {path} does not exist; run `vigil intel import` first")
    try:
        key = parse_ecosystem(ecosystem)
        with AdvisoryStore(path) as store:
            advisories, _ = store.load_for_package(key.base, normalize_name(key.base, package))
            matches = AdvisoryIndex.from_advisories(a for a in advisories if not a.is_withdrawn).match(
                ecosystem, package, version
            )
            vulns = merge_matches(matches, store.get)
    except (UnknownOsvEcosystemError, InvalidVersionError, StoreError) as exc:
        raise _fail(str(exc)) from exc
    if output is OutputFormat.json:
        doc = {
            "ecosystem": ecosystem,
            "package": package,
            "version": version,
            "vulnerabilities": [_vulnerability_json(v) for v in vulns],
        }
        typer.echo(json.dumps(doc, indent=2))
        return
    console = _console()
    if not vulns:
        console.print(f"{ecosystem} {package} {version}: no known vulnerabilities")
        return
    console.print(f"{ecosystem} {package} {version}: {len(vulns)} vulnerabilities")
    rows = []
    for v in vulns:
        level = ("MALICIOUS " if v.malicious else "") + v.severity.level
        if v.severity.score is not None:
            level += f" {v.severity.score:.1f}"
        others = [i for i in v.aliases if i != v.id]
        rows.append(
            (
                v.id,
                level,
                ", ".join(v.fixed_versions) or "-",
                ", ".join(others) or "-",
                _table_summary(v.summary),
            )
        )
    headers = ("ID", "SEVERITY", "FIXED", "ALIASES", "SUMMARY")
    natural = [max(len(column), *(len(r[i]) for r in rows)) for i, column in enumerate(headers)]
    # Ids, levels and versions are never cut; aliases and summaries share what is left of the line and
    # end in "…" where they do not fit (the whole text is in -o json). Left to itself, rich shrinks every
    # column of a table too wide for the terminal, down to nothing: the ids went first.
    fixed = sum(natural[:3]) + COLUMN_GAP * (len(headers) - 1)
    widths = [*natural[:3], *_text_widths(natural[3], natural[4], console.width - fixed)]
    table = Table(box=None, pad_edge=False, show_edge=False)
    for column, width in zip(headers, widths, strict=True):
        table.add_column(column, no_wrap=True, overflow="ellipsis", width=width)
    for row in rows:
        table.add_row(*row)
    Console(highlight=False, width=max(console.width, fixed + sum(widths[3:]))).print(table)


@app.command("sync")
def sync_command(
    feeds: Annotated[
        list[str] | None,
        typer.Argument(
            help=(
                "feed URLs (https; http only to loopback), directories or files "
                "(default: OSV's per-ecosystem all.zip exports)"
            )
        ),
    ] = None,
    db: Annotated[Path | None, typer.Option("--db", help=DB_HELP)] = None,
    cache_dir: Annotated[
        Path | None,
        typer.Option("--cache-dir", help="where downloads are kept between runs [default: feeds/ beside the database]"),
    ] = None,
    timeout: Annotated[
        float, typer.Option("--timeout", min=1.0, help="seconds without progress before a download fails")
    ] = 300.0,
) -> None:
    """Download advisory feeds (only what changed since the last run) and import them."""
    from .sync import FeedError, default_feeds, sync_feeds

    path = store_file(db or default_db_path(), "--db")
    cache = output_dir(cache_dir or path.parent / "feeds", "--cache-dir")
    chosen = feeds or default_feeds()
    err = Console(stderr=True)
    with err.status("syncing") as status:

        def progress(feed: str) -> None:
            status.update(f"syncing {feed}")

        try:
            report = sync_feeds(chosen, path, cache, progress=progress, timeout=timeout)
        except (FeedError, StoreError) as exc:
            raise _fail(str(exc)) from exc
    console = _console()
    for result in report.feeds:
        console.print(result.describe())
        if result.report is not None:
            for rejection in result.report.rejected:
                console.print(f"  rejected: {rejection}")
    if report.failed:
        raise typer.Exit(1)
