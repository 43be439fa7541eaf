"""`vigil trust add|remove|list`: the trust policy in the store (a running service applies it on its next pass)."""

from __future__ import annotations

import getpass
from collections.abc import Callable
from pathlib import Path

import typer
from sqlalchemy import Connection

from vigil.cli_output import Output, print_rows
from vigil.policy.trust import InvalidPattern, Pattern
from vigil.service.cli.serve import DatabaseUrl, DataDir, _prepare, _settings
from vigil.service.store import policy as policy_store
from vigil.service.store.clusters import UnknownCluster, resolve_cluster

trust_app = typer.Typer(help="Trusted registries and mirror rules (works on the store directly).", no_args_is_help=True)

PatternArg = typer.Argument(
    ..., metavar="PATTERN", help="host, host:port or host/path-prefix, e.g. registry.example.com/team"
)
ClusterOpt = typer.Option(None, "--cluster", help="Only for this cluster (id or name) [default: every cluster]")
MirrorOpt = typer.Option(
    None, "--mirror", metavar="MIRROR", help="Make it a mirror rule: images named PATTERN are pulled through MIRROR"
)


def _pattern(text: str, option: str) -> Pattern:
    try:
        return Pattern.parse(text)
    except InvalidPattern as exc:
        typer.echo(f"error: {option}: {exc}", err=True)
        raise typer.Exit(2) from None


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # no user name in some containers
        return "cli"


def _scope(cluster: str | None) -> str:
    return f"cluster {cluster}" if cluster else "global"


def _known_cluster(conn: Connection, cluster: str) -> None:
    # A rule for a cluster no one registered would silently apply nowhere (a typo, most often).
    try:
        resolve_cluster(conn, cluster)
    except UnknownCluster as exc:
        typer.echo(f"error: --cluster: {exc}", err=True)
        raise typer.Exit(2) from None


def _change_rules(
    pattern: str,
    mirror: str | None,
    cluster: str | None,
    data_dir: Path | None,
    database_url: str | None,
    change: Callable[[Connection, Pattern, Pattern | None], tuple[bool, str]],
) -> tuple[bool, str]:
    """Parse PATTERN and --mirror and look up --cluster (exit 2 naming a bad one), then run ``change`` in one
    transaction."""
    source = _pattern(pattern, "PATTERN")
    target = _pattern(mirror, "--mirror") if mirror else None
    with _prepare(_settings(data_dir, database_url)).begin() as conn:
        if cluster:
            _known_cluster(conn, cluster)
        return change(conn, source, target)


@trust_app.command("add")
def trust_add(
    pattern: str = PatternArg,
    cluster: str = ClusterOpt,
    mirror: str = MirrorOpt,
    data_dir: Path = DataDir,
    database_url: str = DatabaseUrl,
) -> None:
    """Trust PATTERN (or, with --mirror, add a mirror rule for it)."""

    def change(conn: Connection, source: Pattern, target: Pattern | None) -> tuple[bool, str]:
        if target is None:
            return policy_store.add_trusted(conn, source, cluster, _actor()), f"trusted {source}"
        return policy_store.add_mirror(conn, source, target, cluster, _actor()), f"mirror {source} -> {target}"

    added, what = _change_rules(pattern, mirror, cluster, data_dir, database_url, change)
    typer.echo(f"{'added' if added else 'already present'}: {what} ({_scope(cluster)})")


@trust_app.command("remove")
def trust_remove(
    pattern: str = PatternArg,
    cluster: str = ClusterOpt,
    mirror: str = typer.Option(
        None, "--mirror", help="Remove the mirror rule(s) of PATTERN (only the one to MIRROR if given)"
    ),
    mirror_rule: bool = typer.Option(False, "--mirror-rule", help="Remove every mirror rule of PATTERN"),
    data_dir: Path = DataDir,
    database_url: str = DatabaseUrl,
) -> None:
    """Remove a trusted pattern (or a mirror rule with --mirror / --mirror-rule)."""

    def change(conn: Connection, source: Pattern, target: Pattern | None) -> tuple[bool, str]:
        if target is None and not mirror_rule:
            removed, what = policy_store.remove_trusted(conn, source, cluster, _actor()), f"trusted {source}"
        else:
            what = f"mirror rule for {source}" + (f" -> {target}" if target else "")
            removed = policy_store.remove_mirror(conn, source, target, cluster, _actor())
        # Only when nothing matched: a rule kept for a cluster no longer registered can still be removed.
        if not removed and cluster:
            _known_cluster(conn, cluster)
        return removed, what

    removed, what = _change_rules(pattern, mirror, None, data_dir, database_url, change)
    if not removed:
        typer.echo(f"error: no {what} ({_scope(cluster)}) in the policy", err=True)
        raise typer.Exit(1)
    typer.echo(f"removed: {what} ({_scope(cluster)})")


@trust_app.command("list")
def trust_list(
    output: Output = typer.Option(Output.table, "--output", "-o", help="table or json"),
    data_dir: Path = DataDir,
    database_url: str = DatabaseUrl,
) -> None:
    """List trusted patterns and mirror rules."""
    engine = _prepare(_settings(data_dir, database_url))
    with engine.connect() as conn:
        rows = policy_store.list_rules(conn)
    print_rows(rows, ["kind", "pattern", "mirror", "cluster", "created_by", "created_at"], output, "Trust policy")
