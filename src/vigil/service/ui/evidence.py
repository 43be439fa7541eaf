"""A finding's evidence as rows a person reads: one renderer per finding type, the raw JSON kept apart."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import quote, urlencode

from vigil.model.findings import FindingType

OSV_URL = "https://osv.dev/vulnerability/"


@dataclass(frozen=True, slots=True)
class Cell:
    text: str
    href: str | None = None
    mono: bool = False


@dataclass(frozen=True, slots=True)
class Row:
    label: str
    cells: tuple[Cell, ...]


def _map(v) -> Mapping:
    return v if isinstance(v, Mapping) else {}


def _text(v) -> str:
    return "" if v is None else str(v)


def _row(label: str, value, mono: bool = False) -> list[Row]:
    return [Row(label, (Cell(_text(value), mono=mono),))] if value not in (None, "", [], {}) else []


def advisory_url(advisory_id: str) -> str:
    # The console has no advisory page; OSV serves every id the intel feeds carry.
    return OSV_URL + quote(advisory_id, safe="")


def _advisories(ev: Mapping) -> tuple[str, ...]:
    vuln = ev.get("vulnerability")
    holder = vuln if isinstance(vuln, Mapping) else ev
    ids = [vuln.get("id") if isinstance(vuln, Mapping) else vuln]
    ids += list(holder.get("advisory_ids") or ()) + list(holder.get("aliases") or ())
    return tuple(dict.fromkeys(str(i) for i in ids if i))


def vulnerability(ev: Mapping, finding: Mapping) -> list[Row]:
    pkg = _map(ev.get("package"))
    vuln = _map(ev.get("vulnerability"))
    installed = ev.get("installed_version") or pkg.get("version")
    fixed = list(ev.get("fixed_versions") or vuln.get("fixed_versions") or ())
    rows = _row("package", pkg.get("name"), mono=True) + _row("ecosystem", pkg.get("ecosystem") or pkg.get("type"))
    rows += _row("installed version", installed, mono=True)
    rows += _row("fixed versions", ", ".join(fixed) if fixed else "no fixed version published")
    remediation = f"upgrade to {fixed[0]}" if fixed else "no fix published: remove the package or accept the risk"
    rows.append(Row("remediation", (Cell(remediation),)))
    ids = _advisories(ev)
    if ids:
        rows.append(Row("advisories", tuple(Cell(i, advisory_url(i), mono=True) for i in ids)))
    if not ev.get("malicious"):
        # A malicious package's finding is critical whatever its advisory rates.
        rows += _row("advisory severity", _advisory_severity(_map(ev.get("severity"))))
    rows += _row("summary", ev.get("summary") or vuln.get("summary"))
    return rows + _process_rows(ev, finding) if ev.get("process") else rows


def _advisory_severity(severity: Mapping) -> str | None:
    """The advisory's rating and where it came from (a CVSS vector's type, or the ecosystem's own field), as
    `vigil scan` prints it; unrated says so, since the finding's own severity is then the type's default."""
    level = severity.get("level")
    if not level:
        return None
    if level == "unknown":
        return "unknown (unrated: no CVSS vector or rating in the advisory or its aliases)"
    score, source = severity.get("score"), severity.get("source")
    text = str(level) + (f" {score:.1f}" if isinstance(score, (int, float)) else "")
    return text + (f" ({source})" if source else "")


def _parent_chain(process: Mapping) -> tuple[str, ...]:
    """Names up the parent chain: the one runtime analysis resolved over the container's execs, else as
    far as this record's own samples reach (pid -> ppid by command name). A parent no exec shows is
    its pid."""
    resolved = process.get("parent_chain")
    if isinstance(resolved, list) and resolved:
        return tuple(str(p.get("name") or f"pid {p.get('pid')}") for p in resolved if isinstance(p, Mapping))
    samples = [s for s in process.get("samples") or () if isinstance(s, Mapping)]
    by_pid = {s.get("pid"): s for s in samples}
    first = samples[0] if samples else {}
    names, seen, ppid = [], set(), first.get("ppid", process.get("parent_pid"))
    while ppid in by_pid and ppid not in seen:
        seen.add(ppid)
        names.append(str(by_pid[ppid].get("comm") or by_pid[ppid].get("filename") or ppid))
        ppid = by_pid[ppid].get("ppid")
    if ppid not in (None, 0) and ppid not in seen:
        names.append(f"pid {ppid}")
    return tuple(names)


def _process_rows(ev: Mapping, finding: Mapping) -> list[Row]:
    proc = _map(ev.get("process"))
    container = _map(proc.get("container"))
    # An activity's path is its target, not the process: without the executable, the command name stands.
    fallback = proc.get("comm") if "activity" in ev else ev.get("path")
    rows = _row("process", proc.get("path") or fallback, mono=True)
    argv = proc.get("argv")
    rows += _row("command line", " ".join(argv) if isinstance(argv, list) else argv, mono=True)
    chain = _parent_chain(proc)
    if chain:
        rows.append(Row("parent chain", tuple(Cell(n, mono=True) for n in chain)))
    pod = container.get("pod")
    if pod:
        w = finding.get("workload")
        href = None
        if isinstance(w, Mapping) and finding.get("cluster_id") and finding.get("namespace"):
            parts = (finding["cluster_id"], finding["namespace"], w.get("kind", ""), w.get("name", ""))
            href = "/workloads/" + "/".join(quote(str(p), safe="") for p in parts)
        rows.append(Row("pod", (Cell(str(pod), href, mono=True),)))
    name, cid = container.get("name"), container.get("id")
    if name and cid and finding.get("cluster_id"):
        # The container's process view: everything it executed, wrote, read and asked of the kernel.
        href = "/processes/container?" + urlencode({"cluster": finding["cluster_id"], "id": cid})
        rows.append(Row("container", (Cell(str(name), href, mono=True),)))
    else:
        rows += _row("container", name, mono=True)
    rows += _row("node", container.get("node"), mono=True)
    return rows


def _rule_rows(ev: Mapping) -> list[Row]:
    rule = _map(ev.get("rule"))
    rows = _row("rule", rule.get("id"), mono=True)
    mitre = rule.get("mitre") or ev.get("mitre")
    if mitre:
        rows.append(Row("MITRE ATT&CK", (Cell(str(mitre), _text(rule.get("mitre_url")) or None, mono=True),)))
    return rows + _row("reason", ev.get("reason"))


def runtime(ev: Mapping, finding: Mapping) -> list[Row]:
    rows = _process_rows(ev, finding) + _rule_rows(ev)
    rows += _row("expected sha256", ev.get("expected_sha256"), mono=True)
    rows += _row("actual sha256", ev.get("actual_sha256") or ev.get("sha256"), mono=True)
    image = ev.get("image")
    if isinstance(image, Mapping):
        rows += _row("image", image.get("ref"), mono=True) + _row("image digest", image.get("digest"), mono=True)
    return rows


def activity(ev: Mapping, finding: Mapping) -> list[Row]:
    """A file access or kernel operation: what was done to what, by which process, under which rule."""
    act = _map(ev.get("activity"))
    rows = _row("what this means", FindingType(str(finding.get("type"))).explanation)
    rows += _row("activity", act.get("kind"), mono=True) + _row("target", act.get("target"), mono=True)
    detail = _map(act.get("detail"))
    if detail:
        rows.append(Row("detail", tuple(Cell(f"{k}={v}", mono=True) for k, v in sorted(detail.items()))))
    upper = act.get("upper_layer")
    rows += _row("on the upper layer", None if upper is None else ("yes" if upper else "no"))
    rows += _row("times seen", act.get("count"))
    rows += _process_rows(ev, finding)
    rows += _row("process sha256", _map(ev.get("process")).get("sha256"), mono=True)
    return rows + _rule_rows(ev)


def integrity(ev: Mapping, finding: Mapping) -> list[Row]:
    rows = _row("image", ev.get("image"), mono=True) + _row("registry", ev.get("registry"), mono=True)
    rows += _row("checked against", ev.get("checked_against"), mono=True) + _row("tag", ev.get("tag"), mono=True)
    rows += _row("rule", ev.get("rule"))
    patterns = ev.get("trusted_patterns")
    if patterns:
        rows.append(Row("trusted patterns", tuple(Cell(str(p), mono=True) for p in patterns)))
    rows += _row("missing", ev.get("missing")) + _row("since", ev.get("since"))
    return rows + _row("registry answer", ev.get("registry_answer"))


def admission(ev: Mapping, finding: Mapping) -> list[Row]:
    obj = "/".join(_text(ev.get(k)) for k in ("namespace", "kind", "name"))
    rows = _row("outcome", ev.get("outcome")) + _row("object", obj, mono=True)
    rows += _row("operation", ev.get("operation")) + _row("requested by", ev.get("user"), mono=True)
    rows += _row("break-glass reason", ev.get("break_glass")) + _row("policy revision", ev.get("enforcement_revision"))
    violations = [v for v in ev.get("violations") or () if isinstance(v, Mapping)]
    if violations:
        rows.append(
            Row("violations", tuple(Cell(f"[{_text(v.get('mode'))}] {_text(v.get('message'))}") for v in violations))
        )
    images = ev.get("images") or ()
    if images:
        rows.append(Row("images", tuple(Cell(str(i), mono=True) for i in images)))
    return rows + _row("dry run", "yes" if ev.get("dry_run") else None)


def signatures(ev: Mapping, finding: Mapping) -> list[Row]:
    """Who signed (or why nothing counts), which keys or identities the rule accepts, and the failing check."""
    rows = _row("image", ev.get("image"), mono=True) + _row("rule", ev.get("rule"))
    for label, key in (
        ("failing checks", "failing_checks"),
        ("signed by", "signed_by"),
        ("accepted signers", "accepted_signers"),
        ("signatures", "signatures"),
    ):
        values = [v for v in ev.get(key) or () if v]
        if values:
            rows.append(Row(label, tuple(Cell(str(v), mono=key != "failing_checks") for v in values)))
    for p in [p for p in ev.get("provenance") or () if isinstance(p, Mapping)]:
        facts = ", ".join(
            f"{k.replace('_', ' ')} {p[k]}" for k in ("builder_id", "source_repository", "source_revision") if p.get(k)
        )
        rows += _row("provenance", facts, mono=True)
    return rows


def prevention(ev: Mapping, finding: Mapping) -> list[Row]:
    """What the kernel killed (or, in audit mode, would have killed): the rule, the file and the process."""
    rows = _row("outcome", ev.get("outcome")) + _row(
        "what this means", FindingType(str(finding.get("type"))).explanation
    )
    rows += _row("rule", ev.get("rule"), mono=True) + _row("mode", ev.get("mode"))
    rows += _row("operation", ev.get("operation"), mono=True) + _row("path", ev.get("path"), mono=True)
    rows += _row("sha256", ev.get("sha256"), mono=True)
    upper = ev.get("upper_layer")
    rows += _row("on the upper layer", None if upper is None else ("yes" if upper else "no"))
    rows += _row("times seen", ev.get("count"))
    proc = _map(ev.get("process"))
    rows += _row("process", proc.get("comm"), mono=True)
    argv = proc.get("argv")
    rows += _row("command line", " ".join(str(a) for a in argv) if isinstance(argv, list) else argv, mono=True)
    rows += _row("pid / uid", f"{proc['pid']} / {proc.get('uid')}" if proc.get("pid") else None, mono=True)
    parents = [str(p) for p in ev.get("parents") or () if p]
    if parents:
        rows.append(Row("parent chain", tuple(Cell(n, mono=True) for n in parents)))
    w, cid = finding.get("workload"), finding.get("cluster_id")
    if ev.get("pod"):
        href = None
        if isinstance(w, Mapping) and cid and finding.get("namespace"):
            parts = (cid, finding["namespace"], w.get("kind", ""), w.get("name", ""))
            href = "/workloads/" + "/".join(quote(str(p), safe="") for p in parts)
        rows.append(Row("pod", (Cell(str(ev["pod"]), href, mono=True),)))
    if ev.get("container") and ev.get("container_id") and cid:
        href = "/processes/container?" + urlencode({"cluster": cid, "id": ev["container_id"]})
        rows.append(Row("container", (Cell(str(ev["container"]), href, mono=True),)))
    else:
        rows += _row("container", ev.get("container_id"), mono=True)
    rows += _row("node", ev.get("node"), mono=True) + _row("image", ev.get("image"), mono=True)
    rows += _row("policy", ev.get("policy"), mono=True)
    return rows + _row("policy revision", ev.get("policy_revision"), mono=True)


Renderer = Callable[[Mapping, Mapping], list[Row]]
RENDERERS: dict[FindingType, Renderer] = {
    FindingType.UNTRUSTED_REGISTRY: integrity,
    FindingType.DIGEST_MISMATCH: integrity,
    FindingType.TAG_MOVED: integrity,
    FindingType.ARTIFACT_MISSING: integrity,
    FindingType.VULNERABLE_PACKAGE: vulnerability,
    FindingType.MALICIOUS_PACKAGE: vulnerability,
    FindingType.RUNNING_VULNERABILITY: vulnerability,
    FindingType.RUNTIME_DRIFT: runtime,
    FindingType.TAMPERED_BINARY: runtime,
    FindingType.SUSPICIOUS_EXEC: runtime,
    FindingType.FILE_TAMPERING: activity,
    FindingType.SENSITIVE_FILE_READ: activity,
    FindingType.CONTAINER_ESCAPE_ATTEMPT: activity,
    FindingType.PTRACE_ATTACH: activity,
    FindingType.KERNEL_ACTIVITY: activity,
    FindingType.PREVENTED_EXECUTION: prevention,
    FindingType.PREVENTED_ESCAPE: prevention,
    FindingType.ADMISSION_DENIED: admission,
    FindingType.ADMISSION_WARNED: admission,
    FindingType.ADMISSION_AUDITED: admission,
    FindingType.BREAK_GLASS_USED: admission,
    FindingType.UNSIGNED_IMAGE: signatures,
    FindingType.SIGNATURE_INVALID: signatures,
    FindingType.PROVENANCE_MISMATCH: signatures,
}


def rows(finding: Mapping) -> list[Row]:
    """The evidence rows for a finding of a known type; none for an unknown type or non-mapping evidence."""
    ev = finding.get("evidence")
    try:
        render = RENDERERS[FindingType(str(finding.get("type")))]
    except ValueError:
        return []
    return render(ev, finding) if isinstance(ev, Mapping) else []
