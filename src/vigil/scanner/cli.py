"""`vigil scan`, `vigil sbom` and `vigil scanner`.

- ``vigil scan IMAGE|DIR|OCI-LAYOUT``: packages and their known vulnerabilities, as a
  table, JSON, CycloneDX or SPDX; ``--fail-on SEVERITY`` makes pipelines fail (exit 1).
- ``vigil sbom IMAGE|DIR|OCI-LAYOUT``: a CycloneDX 1.6 or SPDX 2.3 JSON document.
- ``vigil scanner``: a worker taking scan jobs from the service's store.

Exit codes: 0 done, 1 ``--fail-on`` tripped (or a worker error), 2 bad input.
An IMAGE is pulled from its registry (credentials and TLS from
``--registry-config`` / ``$VIGIL_REGISTRY_CONFIG``); progress goes to stderr so
stdout stays a clean document.
"""

from __future__ import annotations

import enum
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from vigil.catalog import LayerDigestMismatch, LayoutError, catalog_path
from vigil.catalog.limits import ScanLimits
from vigil.catalog.oci import is_oci_layout, resolve_image
from vigil.catalog.progress_bar import layer_progress_bar
from vigil.cli_paths import input_dir, input_file, output_file
from vigil.intel import Advisory, AdvisoryIndex, AdvisoryStore, default_db_path
from vigil.intel.coverage import Coverage, needed_ecosystems
from vigil.intel.ecosystems import UnknownOsvEcosystemError, normalize_name, parse_ecosystem
from vigil.intel.store import StoreError
from vigil.intel.vulnmatch import SEVERITY_ORDER, lookup_for, match_packages, trips_gate
from vigil.model.findings import FindingType
from vigil.model.image import InvalidReference, parse_image_ref
from vigil.registry import Platform, RegistryClient, RegistryConfig, RegistryConfigError, RegistryError
from vigil.scanner.pull import DEFAULT_PLATFORM, pull_contents
from vigil.scanner.sbom import FORMATS, ScanReport

err = Console(stderr=True, highlight=False, soft_wrap=True)


class ScanOutput(str, enum.Enum):
    table = "table"
    json = "json"
    cyclonedx = "cyclonedx"
    spdx = "spdx"


class SbomFormat(str, enum.Enum):
    cyclonedx = "cyclonedx"
    spdx = "spdx"


class FailOn(str, enum.Enum):
    unknown = "unknown"
    low = "low"
    medium = "medium"
    high = "high"
    critical = "critical"


def _fail(message: str, code: int = 2) -> typer.Exit:
    err.print(f"[red]error:[/red] {escape(message)}")
    return typer.Exit(code)


def _registry_config(path: Path | None, plain_http: list[str]) -> RegistryConfig:
    """The registry configuration, read before anything is pulled or opened, so that a bad file is the
    one error, whatever else the command was given."""
    try:
        config = RegistryConfig.load(input_file(path, "--registry-config") if path is not None else None)
    except RegistryConfigError as exc:
        raise _fail(str(exc)) from None
    hosts = dict(config.registries)
    for host in plain_http:
        hosts[host] = replace(config.for_host(host), plain_http=True)
    return replace(config, registries=hosts)


def scan_limits() -> ScanLimits:
    """What one image may cost, from ``VIGIL_SCAN_*``; a bad value is a usage error naming the variable."""
    try:
        return ScanLimits.from_env()
    except ValueError as exc:
        raise _fail(str(exc)) from None


def read_target(target: str, platform: str | None, config: RegistryConfig) -> ScanReport:
    """A directory (rootfs or OCI layout) when it exists, else an image reference to pull."""
    limits = scan_limits()
    path = Path(target)
    with layer_progress_bar(err) as progress:
        if path.exists():
            contents = catalog_path(path, platform, progress=progress, limits=limits)
            digest = resolve_image(path, platform).manifest_digest if is_oci_layout(path) else None
            return ScanReport(str(path), contents, digest)
        ref = parse_image_ref(target)
        wanted = Platform.parse(platform) if platform else DEFAULT_PLATFORM
        with RegistryClient(config, max_manifest_bytes=limits.max_manifest_bytes) as client:
            pulled = pull_contents(client, ref, ref.pull_reference, wanted, progress=progress, limits=limits)
        return ScanReport(str(ref), pulled.contents, pulled.manifest_digest)


def advisories_for(report: ScanReport, db: Path) -> tuple[AdvisoryIndex, Coverage]:
    """An index of just the advisories naming the image's packages, read from the
    database, and the coverage of each ecosystem the packages need."""
    names: set[tuple[str, str]] = set()
    for pkg in report.contents.packages:
        target = lookup_for(pkg)
        if isinstance(target, str):
            continue
        try:
            base = parse_ecosystem(target.ecosystem).base
        except UnknownOsvEcosystemError:
            continue  # reported by match_packages for that package
        names.add((base, normalize_name(base, target.name)))
    seen: dict[str, Advisory] = {}
    with AdvisoryStore(db) as store:
        for base, name in sorted(names):
            advisories, _ = store.load_for_package(base, name)
            for a in advisories:
                if not a.is_withdrawn:
                    seen.setdefault(a.id, a)
        # Aliases that name none of these packages (a CVE record, a GHSA of another ecosystem) may
        # still hold the only rating of a vulnerability that matched under another id.
        for alias in sorted({i for a in seen.values() for i in a.aliases} - seen.keys()):
            record = store.get(alias)
            if record is not None and not record.is_withdrawn:
                seen[alias] = record
        coverage = store.coverage(needed_ecosystems(report.contents.packages))
    return AdvisoryIndex.from_advisories(seen.values()), coverage


def _load(target: str, platform: str | None, config: RegistryConfig) -> ScanReport:
    try:
        return read_target(target, platform, config)
    except (InvalidReference, ValueError) as exc:
        if isinstance(exc, (LayoutError, LayerDigestMismatch)):
            raise _fail(str(exc)) from None
        raise _fail(f"{target}: not a directory, an OCI layout or an image reference: {exc}") from None
    except (RegistryError, RegistryConfigError, NotADirectoryError, FileNotFoundError) as exc:
        raise _fail(str(exc)) from None


def _vulnerability_rows(report: ScanReport) -> list[dict]:
    rows = []
    for pm in report.matches:
        pkg = report.contents.packages[pm.index]
        for v in pm.vulnerabilities:
            rows.append(
                {
                    "package": {
                        "type": pkg.type,
                        "name": pkg.name,
                        "version": pkg.version,
                        "purl": pkg.purl,
                        "found_in": pkg.found_in,
                        "ecosystem": pkg.ecosystem,
                        "matched_as": {
                            "ecosystem": pm.lookup.ecosystem,
                            "name": pm.lookup.name,
                            "version": pm.lookup.version,
                        },
                    },
                    "id": v.id,
                    "advisory_ids": list(v.advisory_ids),
                    "aliases": list(v.aliases),
                    "severity": {
                        "level": v.severity.level,
                        "score": v.severity.score,
                        "source": v.severity.source or None,
                        "from": v.severity_from or None,
                    },
                    "malicious": v.malicious,
                    "fixed_versions": list(v.fixed_versions),
                    "summary": v.summary,
                    "links": list(v.links),
                }
            )
    return rows


def _effective_level(row: dict) -> str:
    return FindingType.MALICIOUS_PACKAGE.severity().value if row["malicious"] else row["severity"]["level"]


def _summary(rows: list[dict]) -> dict[str, int]:
    counts = {level: 0 for level in reversed(SEVERITY_ORDER)}
    for row in rows:
        counts[_effective_level(row)] += 1
    counts["malicious"] = sum(1 for r in rows if r["malicious"])
    return counts


def _print_table(report: ScanReport, rows: list[dict]) -> None:
    out = Console(highlight=False, soft_wrap=True)
    os = report.contents.os
    counts = _summary(rows)
    shown = ", ".join(f"{n} {level}" for level, n in counts.items() if n)
    out.print(
        f"{report.target}" + (f" ({report.digest})" if report.digest else "") + "\n"
        f"OS: {(os.pretty_name or os.id) if os else 'unknown'}    packages: {len(report.contents.packages)}    "
        f"vulnerabilities: {len(rows)}" + (f" ({shown})" if shown else "")
    )
    if report.coverage is not None:
        out.print(f"advisory coverage: {report.coverage.status}")
        for eco in report.coverage.ecosystems:
            out.print(f"  {escape(eco.describe())}")
    if rows:
        table = Table(box=None, pad_edge=False, show_edge=False)
        for column in ("PACKAGE", "VERSION", "TYPE", "VULNERABILITY", "SEVERITY", "FIXED IN"):
            table.add_column(column, no_wrap=column != "FIXED IN", overflow="fold")
        order = {level: i for i, level in enumerate(reversed(SEVERITY_ORDER))}
        for row in sorted(rows, key=lambda r: (order[_effective_level(r)], r["package"]["name"], r["id"])):
            level = ("MALICIOUS " if row["malicious"] else "") + row["severity"]["level"]
            if row["severity"]["score"] is not None:
                level += f" {row['severity']['score']:.1f}"
            level += f" ({row['severity']['source']})" if row["severity"]["source"] else " (unrated)"
            table.add_row(
                row["package"]["name"],
                row["package"]["version"],
                row["package"]["type"],
                row["id"],
                level,
                ", ".join(row["fixed_versions"]) or "-",
            )
        out.print(table)
    for catalog_warning in report.contents.warnings:
        err.print(f"[yellow]warning:[/yellow] {escape(str(catalog_warning))}")
    for warning in report.warnings:
        err.print(f"[yellow]warning:[/yellow] {escape(warning)}")


DbOption = Annotated[
    Path | None,
    typer.Option("--db", help="advisory database (default: $VIGIL_DATA_DIR/intel.db or ~/.local/share/vigil/intel.db)"),
]
PlainHttp = Annotated[
    list[str],
    typer.Option("--plain-http", help="talk plain HTTP to this registry host (repeatable), e.g. localhost:5000"),
]
PlatformOption = Annotated[
    str | None,
    typer.Option("--platform", help="os/arch\\[/variant] to pick in a multi-platform image [default: linux/amd64]"),
]
RegistryConfigOption = Annotated[
    Path | None,
    typer.Option("--registry-config", envvar="VIGIL_REGISTRY_CONFIG", help="per-registry credentials and TLS (YAML)"),
]


def scan(
    target: Annotated[
        str, typer.Argument(help="an image reference (pulled from its registry), a rootfs directory or an OCI layout")
    ],
    output: Annotated[
        ScanOutput, typer.Option("--output", "-o", help="table, json, cyclonedx or spdx")
    ] = ScanOutput.table,
    fail_on: Annotated[
        FailOn | None,
        typer.Option(
            "--fail-on",
            help=(
                "exit 1 if a vulnerability is at least this severe (malicious packages count as critical); "
                "an unrated (unknown) one fails every threshold unless --ignore-unknown"
            ),
        ),
    ] = None,
    ignore_unknown: Annotated[
        bool, typer.Option("--ignore-unknown", help="--fail-on does not count unrated (unknown severity) ones")
    ] = False,
    fail_on_incomplete: Annotated[
        bool,
        typer.Option(
            "--fail-on-incomplete", help="exit 1 if an ecosystem the packages need has no advisories in the database"
        ),
    ] = False,
    db: DbOption = None,
    plain_http: PlainHttp = [],  # noqa: B006 - typer reads the default, never mutates it
    platform: PlatformOption = None,
    registry_config: RegistryConfigOption = None,
) -> None:
    """Scan an image: its packages and their known vulnerabilities and malicious packages."""
    config = _registry_config(registry_config, plain_http)
    path = db or default_db_path()
    if not path.is_file():
        raise _fail(
            f"advisory database {path} does not exist; run `vigil intel sync` or `vigil intel import PATH` first"
        )
    report = _load(target, platform, config)
    try:
        index, report.coverage = advisories_for(report, path)
    except StoreError as exc:
        raise _fail(str(exc)) from None
    report.matches, report.warnings = match_packages(index, report.contents.packages)
    report.advisory_db = str(path)
    rows = _vulnerability_rows(report)
    if output is ScanOutput.table:
        _print_table(report, rows)
    elif output is ScanOutput.json:
        doc = {
            "target": report.target,
            "digest": report.digest,
            "os": report.contents.os.to_dict() if report.contents.os else None,
            "summary": {"packages": len(report.contents.packages), "vulnerabilities": _summary(rows)},
            "coverage": report.coverage.to_dict(),
            "packages": [
                {k: v for k, v in p.to_dict().items() if k not in ("files", "metadata")}
                for p in report.contents.packages
            ],
            "vulnerabilities": rows,
            "warnings": [str(w) for w in report.contents.warnings] + report.warnings,
            "unread_files": list(report.contents.unread),
        }
        typer.echo(json.dumps(doc, indent=2))
    else:
        typer.echo(FORMATS[output.value](report))
    failed = False
    if fail_on is not None:
        tripped = [r for r in rows if trips_gate(_effective_level(r), fail_on.value, ignore_unknown=ignore_unknown)]
        if tripped:
            unrated = sum(1 for r in tripped if _effective_level(r) == "unknown")
            err.print(
                f"{len(tripped)} vulnerabilities at or above {fail_on.value}"
                + (f" or unrated ({unrated} unknown)" if unrated else "")
                + f": failing (--fail-on {fail_on.value})"
            )
            failed = True
    if fail_on_incomplete and not report.coverage.complete:
        err.print(
            f"advisory coverage incomplete: no advisories for {', '.join(report.coverage.missing)}: "
            "failing (--fail-on-incomplete)"
        )
        failed = True
    if failed:
        raise typer.Exit(1)


def sbom(
    target: Annotated[
        str, typer.Argument(help="an image reference (pulled from its registry), a rootfs directory or an OCI layout")
    ],
    format: Annotated[
        SbomFormat, typer.Option("--format", "-f", help="cyclonedx (1.6 JSON) or spdx (2.3 JSON)")
    ] = SbomFormat.cyclonedx,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="write to this file instead of stdout")] = None,
    plain_http: PlainHttp = [],  # noqa: B006
    platform: PlatformOption = None,
    registry_config: RegistryConfigOption = None,
) -> None:
    """Write a software bill of materials of an image's packages."""
    if output is not None:
        # Before the pull: a file that cannot be written should not cost an image's download first.
        output_file(output, "--output")
    report = _load(target, platform, _registry_config(registry_config, plain_http))
    text = FORMATS[format.value](report)
    if output is None:
        sys.stdout.write(text + "\n")
    else:
        output.write_text(text + "\n")
        err.print(f"wrote {format.value} SBOM of {len(report.contents.packages)} packages to {output}")


# -- the worker -----------------------------------------------------------------------------------

scanner_app = typer.Typer(
    help="A scan worker: take jobs from the service's store, pull, catalog, store contents.",
    invoke_without_command=True,
    no_args_is_help=False,
)


@scanner_app.callback()
def scanner(
    data_dir: Annotated[
        Path | None,
        typer.Option("--data-dir", envvar="VIGIL_DATA_DIR", help="the service's data dir (for its SQLite store)"),
    ] = None,
    database_url: Annotated[
        str | None,
        typer.Option("--database-url", envvar="VIGIL_DATABASE_URL", help="the service's store, e.g. postgresql://..."),
    ] = None,
    registry_config: RegistryConfigOption = None,
    tick: Annotated[float, typer.Option("--tick", min=0.1, help="seconds to wait when the queue is empty")] = 2.0,
    once: Annotated[bool, typer.Option("--once", help="scan what is queued now, then exit")] = False,
    scan_attempts: Annotated[
        int,
        typer.Option(
            "--scan-attempts",
            envvar="VIGIL_SCAN_ATTEMPTS",
            min=1,
            help="attempts of one image's scan (a scanner that died counts as one) before it stays failed",
        ),
    ] = 3,
) -> None:
    """Run a scan worker (several can share one PostgreSQL store)."""
    import signal
    import threading

    from vigil.scanner.worker import ScanWorker
    from vigil.service.logs import configure_logging
    from vigil.service.settings import Settings, default_data_dir
    from vigil.service.store.contents import StoreScanQueue
    from vigil.service.store.db import StoreError as DbStoreError
    from vigil.service.store.db import create_store_engine, current_revision, default_database_url

    config = _registry_config(registry_config, [])
    settings = Settings(data_dir=data_dir or default_data_dir(), database_url=database_url)
    if settings.store_url == default_database_url(settings.data_dir):
        # The service made the store there; a scanner opening an empty path would only make an empty store.
        input_dir(settings.data_dir, "--data-dir")
    try:
        engine = create_store_engine(settings.store_url)
        if current_revision(engine) is None:
            raise _fail("the store has no schema yet: start the service (or `vigil service init`) first")
    except DbStoreError as exc:
        raise _fail(str(exc)) from None
    limits = scan_limits()
    configure_logging("info")
    client = RegistryClient(config, max_manifest_bytes=limits.max_manifest_bytes)
    worker = ScanWorker(StoreScanQueue(engine, max_attempts=scan_attempts), client, limits=limits)
    err.print(f"scanner {worker.name} on {engine.url.render_as_string(hide_password=True)}")
    try:
        if once:
            held = worker.enqueue_running().get("untrusted", 0)
            outcomes = worker.run_pending()
            failed = [o for o in outcomes if o.status == "failed"]
            untrusted = f", {held} not scanned: no registry naming them is trusted (vigil trust list)" if held else ""
            err.print(f"scanned {len(outcomes)} images, {len(failed)} failed{untrusted}")
            if failed:
                raise typer.Exit(1)
            return
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        worker.loop(tick, stop)
    finally:
        worker.client.close()
        engine.dispose()
