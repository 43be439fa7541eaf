"""`vigil trust add|remove|list`: the trust policy in the store (a running service applies it on its next pass)."""

from __future__ import annotations

import getpass
from collections.abc import Callable
from pathlib import Path

import typer
from pydantic import ValidationError
from sqlalchemy import Connection

from vigil.cli_output import Output, print_rows
from vigil.cli_paths import input_file
from vigil.policy.signature_rules import AcceptedKey, SignatureRule
from vigil.policy.trust import InvalidPattern, Pattern
from vigil.policy.trust_doc import SignatureRuleDoc
from vigil.service.cli.serve import DatabaseUrl, DataDir, _prepare, _settings
from vigil.service.store import policy as policy_store
from vigil.service.store.clusters import UnknownCluster, resolve_cluster
from vigil.signatures.keys import MAX_KEY_BYTES, BadKey

trust_app = typer.Typer(
    help="Trusted registries, mirror rules and signature rules (works on the store directly).", no_args_is_help=True
)

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
    """List trusted patterns, mirror rules and signature rules."""
    engine = _prepare(_settings(data_dir, database_url))
    with engine.connect() as conn:
        rows = policy_store.list_rules(conn)
    columns = ["kind", "pattern", "mirror", "cluster", "namespace", "requires", "created_by", "created_at"]
    print_rows(rows, columns, output, "Trust policy")


# The trust document's fields as `vigil trust require` spells them, for its errors.
OPTION_OF = {
    "pattern": "PATTERN",
    "namespace": "--namespace",
    "identities": "--identity",
    "attestations": "--attestation",
    "source_repositories": "--source-repository",
    "builder_ids": "--builder-id",
}


def _signature_rule(
    pattern: str,
    keys: list[Path],
    identities: list[str],
    attestations: list[str],
    sources: list[str],
    builders: list[str],
    cluster: str | None,
    namespace: str | None,
) -> SignatureRule:
    """The options as a signature rule, validated as the trust policy file is (exit 2 naming the option)."""
    key_docs: list[dict[str, str]] = []
    identity_docs: list[dict[str, str]] = []
    for path in keys:
        try:
            pem = input_file(path, "--key").read_bytes()[: MAX_KEY_BYTES + 1].decode()
        except UnicodeDecodeError:
            typer.echo(f"error: --key {path}: not a PEM public key (not text)", err=True)
            raise typer.Exit(2) from None
        try:
            AcceptedKey(path.stem, pem)
        except BadKey as exc:
            typer.echo(f"error: --key {path}: {exc}", err=True)
            raise typer.Exit(2) from None
        key_docs.append({"name": path.stem, "pem": pem})
    for text in identities:
        issuer, sep, subject = text.partition("=")
        if not sep or not issuer or not subject:
            typer.echo(f"error: --identity {text!r}: expected ISSUER=SUBJECT (SUBJECT may be ~REGEX)", err=True)
            raise typer.Exit(2)
        field = "subject_pattern" if subject.startswith("~") else "subject"
        identity_docs.append({"issuer": issuer, field: subject.removeprefix("~")})
    doc = {
        "pattern": pattern,
        "namespace": namespace,
        "keys": key_docs,
        "identities": identity_docs,
        "attestations": attestations,
        "source_repositories": sources,
        "builder_ids": builders,
    }
    given: dict[str, list[str]] = {
        "identities": identities,
        "attestations": attestations,
        "source_repositories": sources,
        "builder_ids": builders,
    }
    try:
        return SignatureRuleDoc.model_validate(doc).to_rule(cluster)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        loc, why = tuple(first["loc"]), first["msg"].removeprefix("Value error, ")
        if loc and loc[0] in OPTION_OF:
            option = OPTION_OF[str(loc[0])]
            index = loc[1] if len(loc) > 1 and isinstance(loc[1], int) else None
            values = given.get(str(loc[0]), [])
            where = f"{option} {values[index]!r}" if index is not None and index < len(values) else option
        else:
            where = "the options"
        typer.echo(f"error: {where}: {why}", err=True)
        raise typer.Exit(2) from None


@trust_app.command("require")
def trust_require(
    pattern: str = PatternArg,
    key: list[Path] = typer.Option([], "--key", metavar="FILE", help="An accepted public key (PEM), named by its file"),
    identity: list[str] = typer.Option(
        [], "--identity", metavar="ISSUER=SUBJECT", help="An accepted keyless identity (SUBJECT may be ~REGEX)"
    ),
    attestation: list[str] = typer.Option(
        [],
        "--attestation",
        metavar="PREDICATE_TYPE",
        help="A required attestation, e.g. https://slsa.dev/provenance/v1",
    ),
    source_repository: list[str] = typer.Option(
        [], "--source-repository", metavar="URI", help="An accepted provenance source repository"
    ),
    builder_id: list[str] = typer.Option([], "--builder-id", metavar="ID", help="An accepted provenance builder id"),
    cluster: str = ClusterOpt,
    namespace: str = typer.Option(None, "--namespace", help="Only in this namespace [default: every namespace]"),
    data_dir: Path = DataDir,
    database_url: str = DatabaseUrl,
) -> None:
    """Require signatures (and attestations, provenance) of images under PATTERN; replaces the rule of the same
    pattern, cluster and namespace."""
    rule = _signature_rule(
        pattern, key, identity, attestation, source_repository, builder_id, cluster or None, namespace or None
    )
    with _prepare(_settings(data_dir, database_url)).begin() as conn:
        if cluster:
            _known_cluster(conn, cluster)
        added = policy_store.put_signature_rule(conn, rule, _actor())
    typer.echo(f"{'added' if added else 'replaced'}: {rule.describe()}")


@trust_app.command("unrequire")
def trust_unrequire(
    pattern: str = PatternArg,
    cluster: str = ClusterOpt,
    namespace: str = typer.Option(None, "--namespace", help="The rule of this namespace [default: every namespace]"),
    data_dir: Path = DataDir,
    database_url: str = DatabaseUrl,
) -> None:
    """Remove the signature rule of PATTERN (for --cluster and --namespace when given)."""
    source = _pattern(pattern, "PATTERN")
    with _prepare(_settings(data_dir, database_url)).begin() as conn:
        removed = policy_store.remove_signature_rule(conn, source, cluster or None, namespace or None, _actor())
    where = _scope(cluster) + (f", namespace {namespace}" if namespace else "")
    if not removed:
        typer.echo(f"error: no signature rule for {source} ({where}) in the policy", err=True)
        raise typer.Exit(1)
    typer.echo(f"removed: signatures for {source} ({where})")
