"""What `vigil image check` computes: the policy from its flags and file, the registry's answer, the verdict.

Kept apart from the command's options so that `vigil image check --help` (and a usage error)
loads neither the registry client nor the policy parser.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import typer
from pydantic import ValidationError

from vigil.cli_paths import BadPath, input_file
from vigil.model.findings import FindingType
from vigil.model.image import ImageRef, InvalidReference, parse_image_ref
from vigil.policy.enforcement import (
    AdmissionSubject,
    Decision,
    EnforcementPolicy,
    EnforcementPolicyError,
    ImageFacts,
    Mode,
    VulnerabilityFact,
    evaluate,
    load_enforcement_yaml,
)
from vigil.policy.integrity import Status, Verdict, judge
from vigil.policy.signature_checks import DigestSignatures
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
from vigil.wire.scan_report import ScanReportFacts

# The evidence a finding's text line shows, in the evidence's own order.
TEXT_EVIDENCE = ("runtime_digest", "registry_digest", "registry_answer", "since", "missing")

# The largest enforcement policy file read: a policy document is a few kilobytes.
MAX_ENFORCEMENT_BYTES = 1 << 20
# The largest scan report read (`vigil scan -o json` of an image with tens of thousands of packages).
MAX_SCAN_REPORT_BYTES = 64 << 20
# The label Kubernetes gives every namespace (policies select namespaces by it).
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"

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
    return TrustPolicy(tuple(dict.fromkeys(base.trusted + tuple(extra))), base.mirrors, base.signatures)


def known_cluster(policy: TrustPolicy, cluster: str, enforcement: EnforcementPolicy | None = None) -> str:
    """``cluster`` if the trust policy has rules for it (or the enforcement policy scopes a policy to it);
    otherwise a usage error naming the clusters they have (a cluster neither names would silently get only
    the global rules)."""
    named = {r.cluster for r in policy.trusted if r.cluster} | {m.cluster for m in policy.mirrors if m.cluster}
    scoped = {c for entry in enforcement.policies for c in entry.scope.clusters} if enforcement else set()
    if cluster not in named | scoped:
        where = f"the policy's clusters: {', '.join(sorted(named))}" if named else "the policy names no cluster"
        if enforcement is not None:
            where += (
                f"; the enforcement policy's: {', '.join(sorted(scoped))}" if scoped else "; nor does --enforcement"
            )
        raise UsageError(f"--cluster {cluster!r} has no rules in the policy ({where})")
    return cluster


def _read_limited(path: Path, option: str, limit: int) -> bytes:
    try:
        input_file(path, option)
        with path.open("rb") as f:
            data = f.read(limit + 1)
    except BadPath as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:
        raise UsageError(f"{option} {path}: {exc.strerror}") from None
    if len(data) > limit:
        raise UsageError(f"{option} {path}: larger than {limit} bytes")
    return data


def enforcement(path: Path) -> EnforcementPolicy:
    """The enforcement policy in a YAML file; errors name the file (and the field)."""
    data = _read_limited(path, "--enforcement", MAX_ENFORCEMENT_BYTES)
    try:
        text = data.decode()
    except UnicodeDecodeError:
        raise UsageError(f"--enforcement {path}: not UTF-8 text") from None
    try:
        return load_enforcement_yaml(text, str(path))
    except EnforcementPolicyError as exc:
        raise UsageError(str(exc)) from None


def scan_report(path: Path) -> ScanReportFacts:
    """What `vigil scan IMAGE -o json` wrote; errors name the file (and the field)."""
    data = _read_limited(path, "--scan-report", MAX_SCAN_REPORT_BYTES)
    try:
        return ScanReportFacts.model_validate_json(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"]) or "document"
        raise UsageError(
            f"--scan-report {path}: not the JSON of `vigil scan -o json` ({where}: {first['msg']})"
        ) from None


def running_digest(ref: ImageRef, verdict: Verdict) -> str | None:
    """The digest that runs: the one given, else the one the registry's tag pointed at."""
    return ref.digest or verdict.evidence.get("runtime_digest")


def scan_facts(report: ScanReportFacts, path: Path, running: str | None) -> dict:
    """The report's findings as ImageFacts fields, if it is a scan of the digest that runs."""
    if report.digest is None or report.digest != running:
        scanned = report.digest or f"{report.target}, which has no image digest"
        raise UsageError(
            f"--scan-report {path}: is a scan of {scanned}, but the image runs {running or 'an unknown digest'} "
            "(scan the image by reference, or check it by digest)"
        )
    malicious = sorted({v.package.name for v in report.vulnerabilities if v.malicious})
    # As the service gives the webhook: one fact per (vulnerability, package), malicious ones apart.
    vulns: dict[tuple[str, str], VulnerabilityFact] = {}
    for v in report.vulnerabilities:
        if not v.malicious:
            vulns.setdefault(
                (v.id, v.package.name), VulnerabilityFact(v.id, v.package.name, v.level, bool(v.fixed_versions))
            )
    return {"scanned": True, "malicious_packages": tuple(malicious), "vulnerabilities": tuple(vulns.values())}


def labels(pairs: list[str], option: str) -> dict[str, str]:
    """``key=value`` pairs as labels (a key given twice keeps its last value, as kubectl's --labels)."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"{option} {pair!r}: must be key=value")
        out[key.strip()] = value
    return out


def decide(
    policy: EnforcementPolicy,
    trust: TrustPolicy,
    subject: AdmissionSubject,
    reference_text: str,
    ref: ImageRef,
    verdict: Verdict,
    scan: dict | None = None,
    signatures: DigestSignatures | None = None,
) -> Decision:
    """The admission decision for ``ref`` with the webhook's code, from what this check knows: the integrity
    verdict and, with a scan report (``scan_facts``), its findings; without one the image is unscanned (the
    policy's rule for unscanned images applies, as in a cluster whose service has not scanned it yet)."""
    facts = ImageFacts(reference_text, ref, verdict, signatures=signatures, **(scan or {}))
    return evaluate(policy, trust, subject, [facts])


# Each violation's line in the text output, by its mode (warn-mode violations are the decision's warnings).
_MODE_LABEL = {Mode.ENFORCE: "violation", Mode.WARN: "warning", Mode.AUDIT: "audit"}


def print_decision(decision: Decision) -> None:
    typer.echo(f"decision   {decision.outcome.value}")
    if decision.exempt:
        typer.echo(f"exempt     {decision.exempt}")
    for v in decision.violations:
        typer.echo(f"{_MODE_LABEL[v.mode]:<10} {v.message}")


def decision_document(decision: Decision) -> dict:
    """The ``enforcement`` part of the ``--output json`` document."""
    return {
        "outcome": decision.outcome.value,
        "allowed": decision.allowed,
        "message": decision.message,
        "warnings": list(decision.warnings),
        "exempt": decision.exempt,
        "violations": [
            {
                "policy": v.policy,
                "mode": v.mode.value,
                "rule": v.rule.value,
                "image": v.image,
                "message": v.message,
                "evidence": dict(v.evidence),
            }
            for v in decision.violations
        ],
    }


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
    verdict = judge(running, decision, probe(client, eff, running, with_manifest=True))
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
