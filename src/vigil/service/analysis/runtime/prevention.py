"""What a sensor prevented, as a finding (pure): ``prevented_execution`` for the exec rules, ``prevented_escape``
for the escape rule; killed in enforce mode, "would have been killed" in audit mode, said in the title.

One finding per (container's workload and image, rule, mode, operation, path): an audit finding and the kill
that follows once the policy enforces are two facts, so two findings.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from vigil.model.findings import FindingType
from vigil.service.analysis.runtime.model import Detection
from vigil.wire.prevention import PreventionRecord, PreventionRule

MAX_DEDUP_KEY = 512
MAX_SUBJECT = 1024


@dataclass(frozen=True, slots=True)
class PreventionContext:
    """Where the prevention happened, as the inventory and the node's runtime policy know it (each part may be
    unknown: the sensor can be faster than the controller)."""

    cluster_id: str
    node_name: str
    namespace: str | None = None
    pod_name: str | None = None
    container_name: str | None = None
    workload_kind: str | None = None
    workload_name: str | None = None
    image_pk: int | None = None
    image: str | None = None
    policy: str | None = None  # the policy that set the rule's mode on this container, if it still does

    @property
    def workload(self) -> str | None:
        return f"{self.workload_kind}/{self.workload_name}" if self.workload_kind and self.workload_name else None


def finding_type(rule: PreventionRule) -> FindingType:
    return FindingType.PREVENTED_ESCAPE if rule is PreventionRule.ESCAPE else FindingType.PREVENTED_EXECUTION


def outcome(record: PreventionRecord) -> str:
    if record.killed:
        return "killed"
    return "would have been killed (audit)" if record.mode == "audit" else "not killed"


def detection(record: PreventionRecord, where: PreventionContext) -> Detection:
    kind = finding_type(record.rule)
    what = f"exec of {record.path}" if record.operation == "exec" else f"{record.operation} {record.path}"
    subject = f"{outcome(record)}: {what} (rule {record.rule})"
    sample = record.samples[0] if record.samples else None
    evidence = {
        "rule": str(record.rule),
        "mode": record.mode,
        "killed": record.killed,
        "outcome": outcome(record),
        "path": record.path,
        "sha256": record.sha256,
        "operation": record.operation,
        "upper_layer": record.upper_layer,
        "process": None
        if sample is None
        else {"comm": sample.comm, "argv": list(sample.argv), "pid": sample.pid, "uid": sample.uid},
        "parents": [] if sample is None else list(sample.parents),
        "count": record.count,
        "first_seen": record.first_seen.isoformat(),
        "last_seen": record.last_seen.isoformat(),
        "node": where.node_name,
        "container_id": record.container_id,
        "container": where.container_name,
        "pod": where.pod_name,
        "namespace": where.namespace,
        "workload": where.workload,
        "image": where.image,
        "policy": where.policy,
        "policy_revision": record.policy_revision,
    }
    # A workload's finding outlives its containers (a restart gets a new id); a container the inventory does
    # not know yet is its own subject.
    container = "" if where.workload else record.container_id or ""
    key = f"{container}|{record.rule}|{record.mode}|{record.operation}|{record.path}"
    return Detection(str(kind), str(kind.severity()), subject[:MAX_SUBJECT], key, evidence)


def dedup_key(d: Detection, where: PreventionContext) -> str:
    """Per (cluster, workload, image, subject); a key too long for the column is hashed (paths may be 4 KiB)."""
    scope = f"{where.cluster_id}|{where.namespace or ''}|{where.workload_kind or ''}|{where.workload_name or ''}"
    key = f"pv|{d.type}|{scope}|{where.image_pk or ''}|{d.key}"
    if len(key) <= MAX_DEDUP_KEY:
        return key
    return f"pv|{d.type}|sha256:" + hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()
