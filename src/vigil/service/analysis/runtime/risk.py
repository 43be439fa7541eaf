"""The risk formula (pure): one score per finding from four parts, rolled up to workloads,
images and clusters. docs/risk.md explains it; every score carries its parts.

    score = min(100, severity + runtime + exposure + blast_radius)

- severity: critical 40, high 30, medium 20, low 10, unknown 10, info 5
- runtime: +25 when the finding is runtime evidence (every type of the runtime family:
  runtime_drift, tampered_binary, suspicious_exec, running_vulnerability and the activity types);
  -10 for a vulnerable/malicious package whose code was not observed running after the watch
  period; 0 otherwise
- exposure, of the workload's pods (the worst pod): privileged 15, hostPID 5, hostNetwork 5,
  root 5 (runAsNonRoot not set and no non-zero runAsUser), 2 per added capability (at most 6);
  capped at 25. A finding about an image alone takes the worst workload running the image.
- blast_radius: 2 per workload running the image beyond the first (at most 10) + 5 per
  cluster beyond the first (at most 10)

Roll-up (workload, image, cluster) over open findings:
    score = min(100, highest + 0.1 * sum of the others)
so one critical finding dominates and many lesser ones still raise the total, boundedly.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from vigil.model.findings import PACKAGE_TYPES, RUNTIME_TYPES, Severity

SEVERITY_POINTS: dict[str, int] = {
    Severity.CRITICAL: 40,
    Severity.HIGH: 30,
    Severity.MEDIUM: 20,
    Severity.LOW: 10,
    Severity.UNKNOWN: 10,
    Severity.INFO: 5,
}
RUNTIME_OBSERVED = 25
NOT_OBSERVED_RUNNING = -10
EXPOSURE_POINTS = {"privileged": 15, "host_pid": 5, "host_network": 5, "root": 5}
CAPABILITY_POINTS, CAPABILITY_MAX = 2, 6
EXPOSURE_MAX = 25
WORKLOAD_POINTS, WORKLOAD_MAX = 2, 10
CLUSTER_POINTS, CLUSTER_MAX = 5, 10
ROLLUP_TAIL = 0.1


@dataclass(frozen=True, slots=True)
class Exposure:
    privileged: bool = False
    host_pid: bool = False
    host_network: bool = False
    root: bool = False
    capabilities: tuple[str, ...] = ()

    def worst(self, other: Exposure) -> Exposure:
        return Exposure(
            self.privileged or other.privileged,
            self.host_pid or other.host_pid,
            self.host_network or other.host_network,
            self.root or other.root,
            tuple(sorted(set(self.capabilities) | set(other.capabilities))),
        )


def pod_exposure(
    privileged: bool,
    host_pid: bool,
    host_network: bool,
    run_as_non_root: bool | None,
    run_as_user: int | None,
    capabilities: Iterable[str],
) -> Exposure:
    root = not run_as_non_root and not run_as_user
    return Exposure(bool(privileged), bool(host_pid), bool(host_network), root, tuple(sorted(set(capabilities or ()))))


@dataclass(frozen=True, slots=True)
class BlastRadius:
    workloads: int = 0
    clusters: int = 0


def _part(points: float, detail) -> dict:
    return {"points": points, "detail": detail}


def finding_risk(
    severity: str, type_: str, runtime_state: str | None, exposure: Exposure | None, blast: BlastRadius
) -> dict:
    """{score, parts} of one finding. ``runtime_state`` is a package finding's runtime label."""
    sev = SEVERITY_POINTS.get(severity, SEVERITY_POINTS[Severity.UNKNOWN])
    if type_ in RUNTIME_TYPES:
        runtime = _part(RUNTIME_OBSERVED, "observed at runtime")
    elif type_ in PACKAGE_TYPES and runtime_state == "running":
        runtime = _part(RUNTIME_OBSERVED, "the package's code was observed running")
    elif type_ in PACKAGE_TYPES and runtime_state == "not_observed_running":
        runtime = _part(NOT_OBSERVED_RUNNING, "not observed running while the workload was watched")
    else:
        runtime = _part(0, "no runtime evidence")
    if exposure is None:
        exp = _part(0, [])
    else:
        facts = [k for k in EXPOSURE_POINTS if getattr(exposure, k)]
        points = sum(EXPOSURE_POINTS[k] for k in facts)
        points += min(CAPABILITY_MAX, CAPABILITY_POINTS * len(exposure.capabilities))
        facts += [f"cap:{c}" for c in exposure.capabilities]
        exp = _part(min(EXPOSURE_MAX, points), facts)
    blast_points = min(WORKLOAD_MAX, WORKLOAD_POINTS * max(0, blast.workloads - 1)) + min(
        CLUSTER_MAX, CLUSTER_POINTS * max(0, blast.clusters - 1)
    )
    parts = {
        "severity": _part(sev, severity),
        "runtime": runtime,
        "exposure": exp,
        "blast_radius": _part(blast_points, {"workloads": blast.workloads, "clusters": blast.clusters}),
    }
    total = sum(p["points"] for p in parts.values())
    return {"score": max(0, min(100, total)), "parts": parts}


def rollup(scores: Sequence[tuple[int, float]]) -> dict:
    """{score, parts} over (finding id, score) pairs of open findings."""
    if not scores:
        return {"score": 0, "parts": {"top": None, "others": {"count": 0, "points": 0}, "open_findings": 0}}
    ordered = sorted(scores, key=lambda s: (-s[1], s[0]))
    top_id, top = ordered[0]
    tail = round(ROLLUP_TAIL * sum(s for _, s in ordered[1:]), 1)
    return {
        "score": round(min(100.0, top + tail), 1),
        "parts": {
            "top": {"finding_id": top_id, "points": top},
            "others": {"count": len(ordered) - 1, "points": tail},
            "open_findings": len(ordered),
        },
    }
