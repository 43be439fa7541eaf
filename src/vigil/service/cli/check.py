"""`vigil image check`: the trust and integrity verdict for one image, standalone (no service), for CI too.

Exit codes: 0 verified (or trust-only pass), 1 a violation (each finding named by its
type), 2 bad usage (reference, pattern or policy file), 3 unknown (the registry could
not answer: unreachable, credentials refused).

With ``--enforcement FILE`` the enforcement policy decides, with the admission webhook's code, whether a pod
running the image in ``--namespace`` (of ``--cluster``, with ``--label``s) would be admitted; the exit code is
then the decision's: 1 denied, 0 admitted (allowed, warned, audited or exempt), 2 bad usage.

With ``--key FILE`` or ``--identity ISSUER=SUBJECT`` a signature of the digest that runs is required too
(vigil.signatures, offline): the `signature:` line gives the outcome, and a signature that is absent or
invalid makes the exit code 1, one that could not be fetched 3 (a violation wins over unknown).
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
    enforcement_file: Path = typer.Option(
        None,
        "--enforcement",
        help="YAML enforcement policy: also decide as the admission webhook would (exit 1 denied, 0 admitted)",
    ),
    scan_report_file: Path = typer.Option(
        None,
        "--scan-report",
        help="With --enforcement: the JSON `vigil scan IMAGE -o json` wrote for the digest that runs "
        "(its vulnerabilities and malicious packages; without it the image counts as unscanned)",
    ),
    namespace: str = typer.Option(
        "default", "--namespace", "-n", help="The pod's namespace (for --enforcement and the policy's signature rules)"
    ),
    label: list[str] = typer.Option(
        [], "--label", "-l", help="With --enforcement: a label of the workload, key=value; repeatable"
    ),
    namespace_label: list[str] = typer.Option(
        [],
        "--namespace-label",
        help="With --enforcement: a label of the namespace, key=value; repeatable "
        "(kubernetes.io/metadata.name is always the namespace's name)",
    ),
    key_file: Path = typer.Option(
        None, "--key", help="Require a cosign signature by this public key (PEM: ECDSA, RSA or Ed25519)"
    ),
    identity: list[str] = typer.Option(
        [],
        "--identity",
        help="Require a keyless signature by ISSUER=SUBJECT (SUBJECT ~REGEX: a full-match pattern); repeatable",
    ),
    trusted_root_file: Path = typer.Option(
        None,
        "--trusted-root",
        help="With --identity: the Sigstore trusted root (JSON); default the public-good root the sigstore "
        "package ships (no network)",
    ),
) -> None:
    """Print the trust and integrity verdict of one image; exit 0 clean, 1 violation, 3 unknown.

    With --enforcement, also the admission decision for a pod running it (in --namespace, of --cluster, with
    --label): the outcome, each violation's message as the webhook gives it, and the exit code is the
    decision's: 1 denied, 0 admitted (allowed, warned, audited or exempt).

    With --key or --identity, a signature of the digest that runs is required: the `signature:` line gives
    the outcome (verified by KEY or ISSUER=SUBJECT, invalid: why, absent, unknown: why); absent or invalid
    exits 1, unknown (signatures could not be fetched) 3, a violation winning over unknown."""
    if output not in ("text", "json"):
        _fail(f"--output {output!r} must be text or json")
    # The registry client and the policy parser load only when a check runs, so `--help` stays quick.
    from vigil.policy.enforcement import AdmissionSubject
    from vigil.registry import RegistryClient
    from vigil.service.cli import image_verdict, signature_check

    try:
        ref = image_verdict.reference(reference)
        policy = image_verdict.policy(policy_file, trusted)
        enforcement = image_verdict.enforcement(enforcement_file) if enforcement_file is not None else None
        if scan_report_file is not None and enforcement is None:
            raise image_verdict.UsageError("--scan-report is read with --enforcement only")
        report = image_verdict.scan_report(scan_report_file) if scan_report_file is not None else None
        subject = AdmissionSubject(
            cluster=cluster or "",
            namespace=namespace,
            namespace_labels=image_verdict.labels(namespace_label, "--namespace-label")
            | {image_verdict.NAMESPACE_NAME_LABEL: namespace},
            workload_labels=image_verdict.labels(label, "--label"),
        )
        if cluster:
            image_verdict.known_cluster(policy, cluster, enforcement)
        config = image_verdict.registry_config(registry_config, plain_http)
        need = signature_check.requirement(key_file, identity, trusted_root_file)
    except image_verdict.UsageError as exc:
        _fail(str(exc))
    with RegistryClient(config) as client:
        verdict, provenance = image_verdict.check(client, ref, policy, cluster)
        running = image_verdict.running_digest(ref, verdict)
        signature = signature_check.run(client, ref, running, need) if need else None
        signed_by_policy = signature_check.policy_check(client, ref, policy, cluster, namespace, running)
    decision = None
    if enforcement is not None:
        scan = None
        if report is not None and scan_report_file is not None:
            try:
                scan = image_verdict.scan_facts(report, scan_report_file, image_verdict.running_digest(ref, verdict))
            except image_verdict.UsageError as exc:
                _fail(str(exc))
        checks = signed_by_policy[1] if signed_by_policy else None
        decision = image_verdict.decide(enforcement, policy, subject, reference, ref, verdict, scan, checks)
    if output == "json":
        doc = image_verdict.document(ref, verdict, provenance)
        if decision is not None:
            doc["enforcement"] = image_verdict.decision_document(decision)
        if signature is not None:
            doc["signature"] = {"outcome": signature.kind, "line": signature.line()}
        if signed_by_policy is not None:
            sv = signed_by_policy[0]
            doc["signatures"] = {
                "status": sv.status.value,
                "findings": [str(f.type) for f in sv.findings],
                "line": signature_check.policy_line(sv),
                "evidence": sv.evidence,
            }
        typer.echo(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode())
    else:
        image_verdict.print_text(ref, verdict, provenance)
        if decision is not None:
            image_verdict.print_decision(decision)
        if signature is not None:
            typer.echo(signature_check.line(signature))
        if signed_by_policy is not None:
            typer.echo(signature_check.policy_line(signed_by_policy[0]))
    code = (0 if decision.allowed else 1) if decision is not None else image_verdict.EXIT[verdict.status]
    if signature is not None:
        signed = signature_check.exit_code(signature)
        code = 1 if 1 in (code, signed) else max(code, signed)
    if signed_by_policy is not None and decision is None:
        # With --enforcement the decision's exit code stands: the policy says whether signatures refuse.
        signed = signature_check.policy_exit_code(signed_by_policy[0])
        code = 1 if 1 in (code, signed) else max(code, signed)
    raise typer.Exit(code)
