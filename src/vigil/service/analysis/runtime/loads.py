"""Package loads judged against their image (pure): a vulnerable package's file opened by an interpreter.

A ``package_load`` activity is an open of a file the container's load watch listed (vigil.service.analysis
.runtime.load_watch). The file is attributed to its package through the image's file ownership (Python
RECORD, npm package directory, the jar, dpkg/rpm/apk file lists): the package owning the file itself, else,
for a file no package lists under a Python or npm package directory (bytecode written at run time), the
packages owning files in that directory. Each known vulnerability of those packages is a
running_vulnerability, as for an exec'd file (the same finding: severity raised one level, one per package
and advisory), with the process that loaded it as evidence.

A JVM opens a fat jar, war or ear and reads the jars nested in it from inside: the kernel sees only the outer
file. So an open of an archive also attributes the jars the catalog found nested in it, each *by containment*
(the evidence names the nested jar's place inside the archive that was opened); a jar of an exploded
directory is a file of its own and stands for itself alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from vigil.model.findings import FindingType, raise_severity
from vigil.service.analysis.funnel import vulnerability_key
from vigil.service.analysis.runtime.evaluate import ImageView, activity_process_evidence
from vigil.service.analysis.runtime.load_watch import node_path, python_path
from vigil.service.analysis.runtime.model import Activity, ContainerProcesses, Detection, Workload

__all__ = ["Attribution", "attribute", "load_detections", "owners_of"]


@dataclass(frozen=True, slots=True)
class Attribution:
    """Why an opened file stands for a package."""

    package_id: int
    # file: the package lists the file; directory: a file no package lists (bytecode written at run time) in
    # its package directory; containment: the file is the archive a nested jar is inside.
    how: Literal["file", "directory", "containment"]
    entry: str = ""  # containment: the nested jar's path inside the opened archive

    def as_evidence(self, real: str, found_in: str) -> dict:
        if self.how == "containment":
            return {"how": self.how, "archive": real, "entry": self.entry, "found_in": found_in}
        return {"how": self.how}


def attribute(image: ImageView, real: str) -> list[Attribution]:
    """The packages the file at ``real`` stands for when it is opened, by package id."""
    owned = image.owners.get(real)
    if owned:
        out = []
        for pid in sorted(set(owned)):
            nested = image.nested.get(pid)
            if nested is not None and nested[0] == real:
                out.append(Attribution(pid, "containment", nested[1]))
            else:
                out.append(Attribution(pid, "file"))
        return out
    directory = python_path(real) or node_path(real)
    if directory is None or not directory.endswith("/"):
        return []
    ids: set[int] = set()
    for path, pids in image.owners.items():
        if path.startswith(directory):
            ids.update(pids)
    return [Attribution(pid, "directory") for pid in sorted(ids)]


def owners_of(image: ImageView, real: str) -> list[int]:
    """The ids of the packages the file at ``real`` belongs to."""
    return [a.package_id for a in attribute(image, real)]


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
    for attribution in attribute(image, real):
        pkg = image.packages[attribution.package_id]
        reason = loaded
        if attribution.how == "containment":
            reason += (
                f"; {pkg.name} {pkg.version} is the jar {attribution.entry} inside {real}, which the process opened"
                " (the kernel sees only the outer archive)"
            )
        for v in image.vulnerabilities.get(attribution.package_id, ()):
            evidence = {
                "reason": reason,
                "attribution": attribution.as_evidence(real, pkg.found_in),
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
            key = vulnerability_key(v.key_id, pkg.type, pkg.name, pkg.version)
            out.append(Detection(FindingType.RUNNING_VULNERABILITY, raise_severity(v.severity), subject, key, evidence))
    return out
