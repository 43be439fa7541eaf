"""Package loads judged against their image (pure): a vulnerable package's file opened by an interpreter.

A ``package_load`` activity is an open of a file the container's load watch listed (vigil.service.analysis
.runtime.load_watch). The file is attributed to its package through the image's file ownership (Python
RECORD, npm package directory, the jar, dpkg/rpm/apk file lists): the package owning the file itself, else,
for a file no package lists under a Python or npm package directory (bytecode written at run time), the
packages owning files in that directory. Each known vulnerability of those packages is a
running_vulnerability, as for an exec'd file (the same finding: severity raised one level, one per package
and advisory), with the process that loaded it as evidence.
"""

from __future__ import annotations

from collections.abc import Mapping

from vigil.model.findings import FindingType, raise_severity
from vigil.service.analysis.runtime.evaluate import ImageView, activity_process_evidence
from vigil.service.analysis.runtime.load_watch import node_path, python_path
from vigil.service.analysis.runtime.model import Activity, ContainerProcesses, Detection, Workload

__all__ = ["load_detections", "owners_of"]


def owners_of(image: ImageView, real: str) -> list[int]:
    """The ids of the packages the file at ``real`` belongs to."""
    owned = image.owners.get(real)
    if owned:
        return list(owned)
    directory = python_path(real) or node_path(real)
    if directory is None or not directory.endswith("/"):
        return []
    ids: set[int] = set()
    for path, pids in image.owners.items():
        if path.startswith(directory):
            ids.update(pids)
    return sorted(ids)


def load_detections(
    a: Activity,
    w: Workload,
    image: ImageView,
    procs: ContainerProcesses,
    executables: Mapping[str, str] | None = None,
) -> list[Detection]:
    if a.kind != "package_load":
        return []
    real = image.fs.resolve(a.target) or a.target
    sample = a.first_sample()
    process = activity_process_evidence(a, sample, w, procs, executables or {}, image.fs)
    when = a.first_seen.isoformat() if a.first_seen else None
    by = process["path"] or (sample.comm if sample else "") or "an unknown process"
    argv = " ".join(process["argv"] or [])
    loaded = f"loaded by {by}" + (f" ({argv})" if argv else "") + (f" at {when}" if when else "")
    out = []
    for pid in owners_of(image, real):
        pkg = image.packages[pid]
        for v in image.vulnerabilities.get(pid, ()):
            evidence = {
                "reason": loaded,
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
                "file": {
                    "path": a.target,
                    "image_path": real,
                    "sha256": image.fs.sha256_at(real),
                    "kind": "package_load",
                },
                "loaded": {"at": when, "count": a.count, "last_seen": a.last_seen.isoformat() if a.last_seen else None},
                "severity_raised_from": v.severity,
                "image": {"ref": w.image_ref, "digest": w.digest},
                "workload": {"namespace": w.namespace, "kind": w.kind, "name": w.name},
                "process": process,
            }
            subject = f"{pkg.name} {pkg.version} ({v.vuln_id}) running"
            key = f"{v.key_id}|{pkg.type}/{pkg.name}@{pkg.version}"
            out.append(Detection(FindingType.RUNNING_VULNERABILITY, raise_severity(v.severity), subject, key, evidence))
    return out
