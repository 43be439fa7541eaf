"""``vigil catalog PATH``: what is inside an image (rootfs or OCI layout dir)."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from vigil.catalog.model import ImageContents
from vigil.catalog.oci import LayoutError
from vigil.catalog.progress_bar import layer_progress_bar
from vigil.catalog.scan import LayerDigestMismatch, catalog_path

app = typer.Typer(help="Catalog image contents: file manifest and packages.", add_completion=False)


class Output(str, Enum):
    table = "table"
    json = "json"


def _table(console: Console, result: ImageContents) -> None:
    os_name = result.os.pretty_name or result.os.id if result.os else "unknown"
    console.print(
        f"OS: {os_name}    files: {len(result.manifest.files)}    "
        f"symlinks: {len(result.manifest.symlinks)}    packages: {len(result.packages)}"
    )
    table = Table("type", "name", "version", "source", "ecosystem", "found in")
    for p in result.packages:
        source = (
            f"{p.source_name} {p.source_version}"
            if p.source_name and (p.source_name != p.name or p.source_version != p.version)
            else ""
        )
        table.add_row(p.type, p.name, p.version, source, p.ecosystem or "", p.found_in)
    console.print(table)
    for w in result.warnings:
        console.print(f"[yellow]warning[/yellow]: {w}", highlight=False, soft_wrap=True)


@app.command("catalog")
def catalog_command(
    path: Path = typer.Argument(..., help="A rootfs directory or an OCI image layout directory."),
    output: Output = typer.Option(Output.table, "--output", "-o", help="table or json"),
    platform: str = typer.Option(None, "--platform", help="os/arch\\[/variant] in a multi-platform OCI layout"),
) -> None:
    """Catalog PATH: OS, packages with their files, file manifest, warnings."""
    err = Console(stderr=True)
    try:
        with layer_progress_bar(err) as progress:
            result = catalog_path(path, platform, progress=progress)
    except (LayoutError, LayerDigestMismatch, NotADirectoryError, FileNotFoundError) as exc:
        err.print(f"[red]error[/red]: {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    if output is Output.json:
        typer.echo(json.dumps(result.to_dict(), indent=None))
    else:
        _table(Console(), result)
