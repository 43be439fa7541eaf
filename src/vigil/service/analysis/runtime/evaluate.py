"""Runtime records judged against their image (pure): the detections behind runtime findings.

- runtime_drift (high): the file's sha256 is nowhere in the image and its path is not an
  image file (downloaded, written or chmod +x-ed after start). A copy of an image file
  elsewhere is not drift (its bytes came from the image); running it from /tmp is still
  caught by the suspicious-exec rules.
- tampered_binary (critical): the path is an image file but holds other bytes.
- suspicious_exec: the exec rules of ``rules.RULES`` not silenced by the allow-list.
- file_tampering, sensitive_file_read, container_escape_attempt, ptrace_attach, kernel_activity:
  the activity rules of ``rules.RULES`` (``activity_detections``), judged on file accesses and
  kernel operations, not silenced by the allow-list.
- running_vulnerability: the file is an image file with the image's bytes, owned by a package
  with known vulnerabilities; the advisory's severity raised one level.
A record whose file the sensor could not hash (no sha256) cannot be judged against the image;
the runner logs it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from vigil.model.findings import FindingType, raise_severity
from vigil.service.analysis.funnel import vulnerability_key
from vigil.service.analysis.runtime.jars import archive_place
from vigil.service.analysis.runtime.model import (
    Activity,
    ActivitySample,
    ContainerProcesses,
    Detection,
    ExecRecord,
    PackageRef,
    Sample,
    VulnerabilityRef,
    Workload,
)
from vigil.service.analysis.runtime.paths import ImageFileSystem, owned_paths
from vigil.service.analysis.runtime.rules import RULES, AllowEntry, Context, Rule, allowed_by

__all__ = ["Evaluation", "ImageView", "activity_detections", "dedup_key", "evaluate", "raise_severity"]
TAMPERED, DRIFT = FindingType.TAMPERED_BINARY, FindingType.RUNTIME_DRIFT


@dataclass
class ImageView:
    """An image's contents as the runtime joins need them."""

    digest: str
    fs: ImageFileSystem
    packages: dict[int, PackageRef] = field(default_factory=dict)
    owners: dict[str, list[int]] = field(default_factory=dict)  # real path -> owning package ids
    vulnerabilities: dict[int, list[VulnerabilityRef]] = field(
        default_factory=dict
    )  # package id -> its vulnerabilities
    # package id -> (real path of the archive on disk, the jar's path inside it) for a nested jar
    nested: dict[int, tuple[str, str]] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        digest: str,
        fs: ImageFileSystem,
        packages: Iterable[tuple[PackageRef, Sequence[str]]] = (),
        vulnerabilities: Iterable[VulnerabilityRef] = (),
    ) -> ImageView:
        view = cls(digest, fs)
        for pkg, files in packages:
            view.packages[pkg.id] = pkg
            for real in owned_paths(fs, files):
                view.owners.setdefault(real, []).append(pkg.id)
            place = archive_place(pkg.found_in, files) if pkg.type == "maven" else None
            if place is not None and place.nested:
                (archive,) = owned_paths(fs, [place.archive])
                view.nested[pkg.id] = (archive, place.entry)
        for v in vulnerabilities:
            view.vulnerabilities.setdefault(v.package_id, []).append(v)
        return view


@dataclass
class Evaluation:
    detections: list[Detection] = field(default_factory=list)
    silenced: list[tuple[str, AllowEntry]] = field(default_factory=list)  # (rule id, allow entry)
    unjudged: str | None = None  # why the file could not be compared with the image


def _short(sha: str) -> str:
    return f"sha256:{sha[:12]}"


def process_evidence(r: ExecRecord, w: Workload, procs: ContainerProcesses | None = None) -> dict:
    s = r.first_sample()
    return {
        "path": r.path,
        "kind": r.kind,
        "sha256": r.sha256,
        "count": r.count,
        "first_seen": r.first_seen.isoformat() if r.first_seen else None,
        "last_seen": r.last_seen.isoformat() if r.last_seen else None,
        "argv": list(s.argv) if s else None,
        "pid": s.pid if s else None,
        "parent_pid": s.ppid if s else None,
        "uid": s.uid if s else None,
        "samples": [x.as_evidence() for x in r.samples],
        "parent_chain": procs.parent_chain(s) if procs is not None and s is not None else [],
        "container": {
            "id": r.container_id,
            "name": w.container_name,
            "pod": w.pod_name,
            "pod_uid": r.pod_uid,
            "node": r.node_name,
        },
    }


def _image_evidence(w: Workload) -> dict:
    return {"ref": w.image_ref, "digest": w.digest}


def file_detections(
    r: ExecRecord, w: Workload, image: ImageView, procs: ContainerProcesses | None = None
) -> tuple[list[Detection], str | None]:
    if not r.sha256:
        return [], f"{r.kind} {r.path}: the sensor could not read the file, so it cannot be compared with the image"
    real = image.fs.resolve(r.path)
    if real is not None:
        expected = image.fs.sha256_at(real)
        if expected == r.sha256 or expected is None:
            return [], None
        evidence = {
            "path": r.path,
            "image_path": real,
            "expected_sha256": expected,
            "actual_sha256": r.sha256,
            "image": _image_evidence(w),
            "process": process_evidence(r, w, procs),
        }
        subject = f"{r.path} differs from the image ({_short(expected)} in the image, {_short(r.sha256)} ran)"
        return [Detection(TAMPERED, TAMPERED.severity(), subject, f"{r.path}|{r.sha256}", evidence)], None
    if image.fs.holds_sha256(r.sha256):
        return [], None  # a copy of an image file: its bytes came from the image
    evidence = {
        "path": r.path,
        "sha256": r.sha256,
        "in_image": {"path": False, "sha256": False},
        "image": _image_evidence(w),
        "process": process_evidence(r, w, procs),
    }
    subject = f"{r.path} ({_short(r.sha256)}) is not in the image"
    return [Detection(DRIFT, DRIFT.severity(), subject, f"{r.path}|{r.sha256}", evidence)], None


def suspicious_detections(
    r: ExecRecord,
    w: Workload,
    procs: ContainerProcesses,
    allow: Sequence[AllowEntry],
    rules: Sequence[Rule] = RULES,
    severities: Mapping[str, str] | None = None,
) -> tuple[list[Detection], list[tuple[str, AllowEntry]]]:
    out, silenced = [], []
    for rule in rules:
        if r.kind not in rule.kinds:
            continue
        hit = rule.check(r, Context(procs))
        if hit is None:
            continue
        entry = allowed_by(allow, rule.id, w)
        if entry is not None:
            silenced.append((rule.id, entry))
            continue
        severity = (severities or {}).get(rule.id, rule.severity)
        evidence = {
            "rule": rule.as_dict(severity),
            "reason": hit.reason,
            "path": r.path,
            "sha256": r.sha256,
            "process": process_evidence(r, w, procs),
            "trigger": hit.sample.as_evidence() if hit.sample else None,
            "image": _image_evidence(w),
        }
        subject = f"{rule.id}: {r.path}"
        out.append(Detection(rule.finding, severity, subject, f"{rule.id}|{r.path}", evidence))
    return out, silenced


def _exe_sha256(exe: str, executables: Mapping[str, str], image: ImageFileSystem | None) -> str | None:
    """The sha256 of the process's file: as the container executed it (the sensor reports the exec'd path,
    ``/bin/sh``, and the process's file, ``/bin/busybox``), else the image's bytes at that path."""
    if not exe:
        return None
    if exe in executables:
        return executables[exe]
    if image is not None:
        for path, sha in executables.items():
            if image.resolve(path) == exe:
                return sha
        real = image.resolve(exe)
        return image.sha256_at(real) if real is not None else None
    return None


def activity_process_evidence(
    a: Activity,
    s: ActivitySample | None,
    w: Workload,
    procs: ContainerProcesses,
    executables: Mapping[str, str],
    image: ImageFileSystem | None = None,
) -> dict:
    """The process behind an activity: its executable (with its sha256 when known), command line, parent
    chain by name, container and pod. What the sample lacks (a process gone before the sensor read its
    executable and argv) comes from the process's exec, when one was recorded."""
    ran = procs.execs.get(s.pid) if s is not None else None
    if ran is not None and s is not None and ran.time and s.time and ran.time > s.time:
        ran = None  # a later process with the same pid
    exe = (s.exe if s else "") or (ran.filename if ran else "")
    argv = (list(s.argv) if s else []) or (list(ran.argv) if ran else [])
    chain: list[dict] = []
    if s is not None and s.parents:
        # The kernel's view, nearest first; only the nearest parent's pid is known.
        chain = [{"pid": s.ppid if i == 0 else None, "name": n} for i, n in enumerate(s.parents)]
    elif s is not None and s.ppid:
        chain = procs.parent_chain(Sample(s.time, s.pid, s.ppid, s.uid, s.comm, exe, s.argv))
    return {
        "path": exe or None,
        "sha256": _exe_sha256(exe, executables, image),
        "comm": s.comm if s else None,
        "argv": argv if s else None,
        "pid": s.pid if s else None,
        "parent_pid": s.ppid if s else None,
        "uid": s.uid if s else None,
        "parents": [p["name"] for p in chain if p["name"]],
        "parent_chain": chain,
        "samples": [x.as_evidence() for x in a.samples],
        "container": {
            "id": a.container_id,
            "name": w.container_name,
            "pod": w.pod_name,
            "pod_uid": a.pod_uid,
            "node": a.node_name,
        },
    }


def activity_detections(
    a: Activity,
    w: Workload,
    procs: ContainerProcesses,
    image: ImageFileSystem | None,
    allow: Sequence[AllowEntry] = (),
    executables: Mapping[str, str] | None = None,
    severities: Mapping[str, str] | None = None,
    rules: Sequence[Rule] = RULES,
) -> Evaluation:
    """The activity rules that match ``a`` and are not silenced for its workload. ``executables``: the
    container's executed paths -> sha256, to name the acting process's file; ``image``: the image's
    files (None when they are not known)."""
    result = Evaluation()
    ctx = Context(procs, image)
    for rule in rules:
        if a.kind not in rule.kinds:
            continue
        hit = rule.check(a, ctx)
        if hit is None:
            continue
        entry = allowed_by(allow, rule.id, w)
        if entry is not None:
            result.silenced.append((rule.id, entry))
            continue
        severity = (severities or {}).get(rule.id, rule.severity)
        sample = hit.sample if isinstance(hit.sample, ActivitySample) else a.first_sample()
        evidence = {
            "rule": rule.as_dict(severity),
            "mitre": rule.mitre,
            "reason": hit.reason,
            "path": a.target,
            "activity": {
                "kind": a.kind,
                "target": a.target,
                "detail": dict(a.detail),
                "upper_layer": a.upper_layer,
                "count": a.count,
                "first_seen": a.first_seen.isoformat() if a.first_seen else None,
                "last_seen": a.last_seen.isoformat() if a.last_seen else None,
            },
            "process": activity_process_evidence(a, sample, w, procs, executables or {}, image),
            "trigger": sample.as_evidence() if sample else None,
            "workload": {"namespace": w.namespace, "kind": w.kind, "name": w.name},
            "image": _image_evidence(w),
        }
        # One finding per rule and target: a binary written and then made executable is one drop.
        subject = f"{rule.id}: {a.target}"
        result.detections.append(Detection(rule.finding, severity, subject, f"{rule.id}|{a.target}", evidence))
    return result


def vulnerability_detections(
    r: ExecRecord, w: Workload, image: ImageView, procs: ContainerProcesses | None = None
) -> list[Detection]:
    if not r.sha256:
        return []
    real = image.fs.resolve(r.path)
    if real is None or image.fs.sha256_at(real) != r.sha256:
        return []  # not the package's bytes: drift or tampering, judged above
    out = []
    for pid in image.owners.get(real, ()):
        pkg = image.packages[pid]
        for v in image.vulnerabilities.get(pid, ()):
            evidence = {
                "vulnerability": {
                    "id": v.vuln_id,
                    "advisory_ids": list(v.advisory_ids),
                    "aliases": list(v.aliases),
                    "severity": v.severity,
                    "score": v.score,
                    "fixed_versions": list(v.fixed_versions),
                    "malicious": v.malicious,
                    "summary": v.summary,
                    "links": list(v.links),
                },
                "package": {"type": pkg.type, "name": pkg.name, "version": pkg.version, "purl": pkg.purl},
                "file": {"path": r.path, "image_path": real, "sha256": r.sha256, "kind": r.kind},
                "severity_raised_from": v.severity,
                "image": _image_evidence(w),
                "process": process_evidence(r, w, procs),
            }
            subject = f"{pkg.name} {pkg.version} ({v.vuln_id}) running"
            key = vulnerability_key(v.key_id, pkg.type, pkg.name, pkg.version)
            out.append(Detection(FindingType.RUNNING_VULNERABILITY, raise_severity(v.severity), subject, key, evidence))
    return out


def evaluate(
    r: ExecRecord,
    w: Workload,
    image: ImageView,
    procs: ContainerProcesses,
    allow: Sequence[AllowEntry] = (),
    severities: Mapping[str, str] | None = None,
) -> Evaluation:
    result = Evaluation()
    found, result.unjudged = file_detections(r, w, image, procs)
    result.detections += found
    suspicious, result.silenced = suspicious_detections(r, w, procs, allow, severities=severities)
    result.detections += suspicious
    result.detections += vulnerability_detections(r, w, image, procs)
    return result


MAX_DEDUP_KEY = 512


def dedup_key(d: Detection, w: Workload) -> str:
    """Deduplicated per (workload, image, subject); a key too long for the column is hashed
    (paths may be 4 KiB), which keeps it unique and stable."""
    key = f"rt|{d.type}|{w.key()}|{d.key}"
    if len(key) <= MAX_DEDUP_KEY:
        return key
    return f"rt|{d.type}|sha256:" + hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()
