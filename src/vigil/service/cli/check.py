"""`vigil image check`: the trust and integrity verdict for one image, standalone (no service), for CI too.

Exit codes: 0 verified (or trust-only pass), 1 a violation (each finding named by its
type), 2 bad usage (reference, pattern or policy file), 3 unknown (the registry could
not answer: unreachable, credentials refused).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import orjson
import typer

from vigil.model.image import ImageRef, InvalidReference, parse_image_ref
from vigil.registry import (
    NotFound,
    RegistryClient,
    RegistryConfig,
    RegistryConfigError,
    RegistryError,
    RegistrySettings,
)
from vigil.service.analysis.integrity import RegistryAnswer, Status, Verdict, judge
from vigil.service.analysis.policy_doc import PolicyFileError
from vigil.service.jobs.trust_file import load_policy_file
from vigil.service.jobs.probe import error_kind, fetch_provenance, probe
from vigil.service.analysis.trust import InvalidPattern, Pattern, TrustPolicy, TrustRule

EXIT = {Status.VERIFIED: 0, Status.PENDING: 0, Status.VIOLATION: 1, Status.UNTRUSTED: 1, Status.UNKNOWN: 3}

image_app = typer.Typer(help="Check images against the trusted registry.", no_args_is_help=True)


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def _policy(policy_file: Path | None, trusted: list[str]) -> TrustPolicy:
    policy = TrustPolicy()
    if policy_file is not None:
        try:
            policy = load_policy_file(policy_file)
        except PolicyFileError as exc:
            _fail(str(exc))
    extra = []
    for text in trusted:
        try:
            extra.append(TrustRule(Pattern.parse(text)))
        except InvalidPattern as exc:
            _fail(f"--trusted: {exc}")
    return TrustPolicy(tuple(dict.fromkeys(policy.trusted + tuple(extra))), policy.mirrors)


def _registry_config(path: Path | None, plain_http: list[str]) -> RegistryConfig:
    try:
        config = RegistryConfig.load(path)
    except RegistryConfigError as exc:
        _fail(str(exc))
    registries = dict(config.registries)
    for host in plain_http:
        registries[host] = dataclasses.replace(registries.get(host, RegistrySettings(host)), plain_http=True)
    return RegistryConfig(registries, config.environ)


def check(client: RegistryClient, ref: ImageRef, policy: TrustPolicy, cluster: str | None = None) -> tuple[Verdict, dict | None]:
    """The verdict for ``ref`` (its digest is the one that runs; without one, what the tag points at now)."""
    decision = policy.decide(ref, (cluster,) if cluster else ())
    if decision.trusted is False:
        return judge(ref.digest, decision, None), None
    eff = decision.effective
    running = ref.digest
    if running is None:
        try:
            running = client.resolve_tag(ImageRef(eff.registry, eff.repository, eff.tag, None))
        except NotFound as exc:
            return judge(None, decision, RegistryAnswer(tag_missing=str(exc))), None
        except RegistryError as exc:
            return judge(None, decision, RegistryAnswer(error=str(exc), error_kind=error_kind(exc))), None
    verdict = judge(running, decision, probe(client, eff, running))
    provenance = None
    if verdict.status is Status.VERIFIED or any(f.type == "tag_moved" for f in verdict.findings):
        prov = fetch_provenance(client, eff, running)
        if prov is not None:
            provenance = dataclasses.asdict(prov)
    return verdict, provenance


def _print_text(ref: ImageRef, verdict: Verdict, provenance: dict | None) -> None:
    ev = verdict.evidence
    typer.echo(f"image      {ref}")
    typer.echo(f"checked    {ev.get('checked_against')}")
    typer.echo(f"trust      {ev.get('rule')}")
    if ev.get("mirror"):
        typer.echo(f"mirror     {ev['mirror']}")
    typer.echo(f"status     {verdict.status.value}")
    for f in verdict.findings:
        detail = {k: v for k, v in f.evidence.items() if k in ("runtime_digest", "registry_digest", "registry_answer", "since", "missing")}
        typer.echo(f"finding    {f.type} ({f.severity}): " + ", ".join(f"{k}={v}" for k, v in detail.items() if v is not None))
    if verdict.status is Status.UNKNOWN:
        typer.echo(f"registry   {ev.get('registry_answer')}")
    if verdict.status is Status.VERIFIED:
        typer.echo(f"digest     {ev.get('runtime_digest')} (registry: {ev.get('registry_digest')})")
    if provenance:
        for key in ("source", "revision", "created", "authors", "version"):
            if provenance.get(key):
                typer.echo(f"{key:<10} {provenance[key]}")


@image_app.command("check")
def image_check(
    reference: str = typer.Argument(..., metavar="REF[@DIGEST]", help="The image; with @digest, the digest that runs"),
    trusted: list[str] = typer.Option([], "--trusted", help="Trusted pattern: host, host:port, or host/path-prefix; repeatable"),
    plain_http: list[str] = typer.Option([], "--plain-http", help="Talk to this registry (host or host:port) without TLS; repeatable"),
    policy_file: Path = typer.Option(None, "--policy", help="YAML trust policy (trusted, mirrors, clusters)"),
    cluster: str = typer.Option(None, "--cluster", help="Apply this cluster's rules of the policy file too"),
    registry_config: Path = typer.Option(None, "--registry-config", envvar="VIGIL_REGISTRY_CONFIG", help="Registry credentials and TLS (YAML)"),
    output: str = typer.Option("text", "--output", "-o", help="text or json"),
) -> None:
    """Print the trust and integrity verdict of one image; exit 0 clean, 1 violation, 3 unknown."""
    if output not in ("text", "json"):
        _fail(f"--output {output!r} must be text or json")
    try:
        ref = parse_image_ref(reference)
    except InvalidReference as exc:
        _fail(str(exc))
    policy = _policy(policy_file, trusted)
    with RegistryClient(_registry_config(registry_config, plain_http)) as client:
        verdict, provenance = check(client, ref, policy, cluster)
    if output == "json":
        doc = {
            "image": str(ref),
            "status": verdict.status.value,
            "findings": [{"type": f.type, "severity": f.severity, "evidence": f.evidence} for f in verdict.findings],
            "evidence": verdict.evidence,
            "provenance": provenance,
        }
        typer.echo(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode())
    else:
        _print_text(ref, verdict, provenance)
    raise typer.Exit(EXIT[verdict.status])
