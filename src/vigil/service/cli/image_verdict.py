"""What `vigil image check` computes: the policy from its flags and file, the registry's answer, the verdict.

Kept apart from the command's options so that `vigil image check --help` (and a usage error)
loads neither the registry client nor the policy parser.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import typer

from vigil.model.findings import FindingType
from vigil.model.image import ImageRef, InvalidReference, parse_image_ref
from vigil.policy.integrity import Status, Verdict, judge
from vigil.policy.trust import InvalidPattern, Pattern, TrustPolicy, TrustRule
from vigil.policy.trust_doc import PolicyFileError
from vigil.registry import (
    NotFound,
    RegistryClient,
    RegistryConfig,
    RegistryConfigError,
    RegistryError,
    RegistrySettings,
)
from vigil.registry.probe import RegistryAnswer, error_kind, fetch_provenance, probe
from vigil.service.jobs.trust_file import load_policy_file

# The evidence a finding's text line shows, in the evidence's own order.
TEXT_EVIDENCE = ("runtime_digest", "registry_digest", "registry_answer", "since", "missing")

EXIT = {Status.VERIFIED: 0, Status.PENDING: 0, Status.VIOLATION: 1, Status.UNTRUSTED: 1, Status.UNKNOWN: 3}


class UsageError(ValueError):
    """A reference, pattern, policy file or registry configuration the check cannot use (exit 2)."""


def reference(text: str) -> ImageRef:
    try:
        return parse_image_ref(text)
    except InvalidReference as exc:
        raise UsageError(str(exc)) from None


def policy(policy_file: Path | None, trusted: list[str]) -> TrustPolicy:
    """The policy file's rules (if any) with each ``--trusted`` pattern added."""
    base = TrustPolicy()
    if policy_file is not None:
        try:
            base = load_policy_file(policy_file)
        except PolicyFileError as exc:
            raise UsageError(str(exc)) from None
    extra = []
    for text in trusted:
        try:
            extra.append(TrustRule(Pattern.parse(text)))
        except InvalidPattern as exc:
            raise UsageError(f"--trusted: {exc}") from None
    return TrustPolicy(tuple(dict.fromkeys(base.trusted + tuple(extra))), base.mirrors)


def known_cluster(policy: TrustPolicy, cluster: str) -> str:
    """``cluster`` if the policy has rules for it; otherwise a usage error naming the clusters it has (a cluster
    the file does not name would silently get only the global rules)."""
    named = sorted({r.cluster for r in policy.trusted if r.cluster} | {m.cluster for m in policy.mirrors if m.cluster})
    if cluster not in named:
        where = f"the policy's clusters: {', '.join(named)}" if named else "the policy names no cluster"
        raise UsageError(f"--cluster {cluster!r} has no rules in the policy ({where})")
    return cluster


def registry_config(path: Path | None, plain_http: list[str]) -> RegistryConfig:
    """The registry configuration file (if any), with ``--plain-http`` hosts talked to without TLS."""
    try:
        config = RegistryConfig.load(path)
    except RegistryConfigError as exc:
        raise UsageError(str(exc)) from None
    registries = dict(config.registries)
    for host in plain_http:
        registries[host] = dataclasses.replace(registries.get(host, RegistrySettings(host)), plain_http=True)
    return RegistryConfig(registries, config.environ)


def check(
    client: RegistryClient, ref: ImageRef, policy: TrustPolicy, cluster: str | None = None
) -> tuple[Verdict, dict | None]:
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
    if verdict.status is Status.VERIFIED or any(f.type == FindingType.TAG_MOVED for f in verdict.findings):
        prov = fetch_provenance(client, eff, running)
        if prov is not None:
            provenance = dataclasses.asdict(prov)
    return verdict, provenance


def document(ref: ImageRef, verdict: Verdict, provenance: dict | None) -> dict:
    """The ``--output json`` document."""
    return {
        "image": str(ref),
        "status": verdict.status.value,
        "findings": [{"type": f.type, "severity": f.severity, "evidence": f.evidence} for f in verdict.findings],
        "evidence": verdict.evidence,
        "provenance": provenance,
    }


def _shown(detail: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in detail.items() if v is not None)


def _reason(evidence: dict) -> str:
    """Why a finding without digests was raised (an untrusted registry: the rule, and what is trusted)."""
    reason = str(evidence.get("rule") or "no reason recorded")
    patterns = evidence.get("trusted_patterns")
    if patterns is not None:
        reason += f" (consulted: {'; '.join(map(str, patterns)) or 'no trusted pattern'})"
    return reason


def print_text(ref: ImageRef, verdict: Verdict, provenance: dict | None) -> None:
    ev = verdict.evidence
    typer.echo(f"image      {ref}")
    typer.echo(f"checked    {ev.get('checked_against')}")
    typer.echo(f"trust      {ev.get('rule')}")
    if ev.get("mirror"):
        typer.echo(f"mirror     {ev['mirror']}")
    typer.echo(f"status     {verdict.status.value}")
    for f in verdict.findings:
        detail = {k: v for k, v in f.evidence.items() if k in TEXT_EVIDENCE}
        typer.echo(f"finding    {f.type} ({f.severity}): " + (_shown(detail) or _reason(f.evidence)))
    if verdict.status is Status.UNKNOWN:
        typer.echo(f"registry   {ev.get('registry_answer')}")
    if verdict.status is Status.VERIFIED:
        typer.echo(f"digest     {ev.get('runtime_digest')} (registry: {ev.get('registry_digest')})")
    if provenance:
        for key in ("source", "revision", "created", "authors", "version"):
            if provenance.get(key):
                typer.echo(f"{key:<10} {provenance[key]}")
