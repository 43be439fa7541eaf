"""`vigil image check`: the trust and integrity verdict for one image, standalone (no service), for CI too.

Exit codes: 0 verified (or trust-only pass), 1 a violation (each finding named by its
type), 2 bad usage (reference, pattern or policy file), 3 unknown (the registry could
not answer: unreachable, credentials refused).
"""

from __future__ import annotations

from pathlib import Path

import orjson
import typer

image_app = typer.Typer(help="Check images against the trusted registry.", no_args_is_help=True)


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


@image_app.command("check")
def image_check(
    reference: str = typer.Argument(..., metavar="REF[@DIGEST]", help="The image; with @digest, the digest that runs"),
    trusted: list[str] = typer.Option(
        [], "--trusted", help="Trusted pattern: host, host:port, or host/path-prefix; repeatable"
    ),
    plain_http: list[str] = typer.Option(
        [], "--plain-http", help="Talk to this registry (host or host:port) without TLS; repeatable"
    ),
    policy_file: Path = typer.Option(None, "--policy", help="YAML trust policy (trusted, mirrors, clusters)"),
    cluster: str = typer.Option(None, "--cluster", help="Apply this cluster's rules of the policy file too"),
    registry_config: Path = typer.Option(
        None, "--registry-config", envvar="VIGIL_REGISTRY_CONFIG", help="Registry credentials and TLS (YAML)"
    ),
    output: str = typer.Option("text", "--output", "-o", help="text or json"),
) -> None:
    """Print the trust and integrity verdict of one image; exit 0 clean, 1 violation, 3 unknown."""
    if output not in ("text", "json"):
        _fail(f"--output {output!r} must be text or json")
    # The registry client and the policy parser load only when a check runs, so `--help` stays quick.
    from vigil.registry import RegistryClient
    from vigil.service.cli import image_verdict

    try:
        ref = image_verdict.reference(reference)
        policy = image_verdict.policy(policy_file, trusted)
        if cluster:
            image_verdict.known_cluster(policy, cluster)
        config = image_verdict.registry_config(registry_config, plain_http)
    except image_verdict.UsageError as exc:
        _fail(str(exc))
    with RegistryClient(config) as client:
        verdict, provenance = image_verdict.check(client, ref, policy, cluster)
    if output == "json":
        doc = image_verdict.document(ref, verdict, provenance)
        typer.echo(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode())
    else:
        image_verdict.print_text(ref, verdict, provenance)
    raise typer.Exit(image_verdict.EXIT[verdict.status])
