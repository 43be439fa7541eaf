"""Runtime prevention for one node (pure): the enforcement policy's runtime rules resolved to its running containers.

The service knows namespaces and labels; the sensor knows cgroups. So the service computes, per node, which
rules apply to which container (by runtime-prefixed id) in which mode, and the sensor maps each container to
its cgroup. A rule's mode for a container is the rule's mode in each policy whose scope matches, capped by that
policy's mode (a policy in ``audit`` or ``warn`` mode only reports, so flipping it to ``enforce`` flips its
containers), and the strictest of those (enforce > audit > off); the winner is the first policy, in document
order, that gave that mode. Exempt namespaces are never enforced.

The inventory carries no namespace labels, so a policy scoped by ``namespace_selector`` applies to a
container only when its namespace's labels are known (``RunningContainer.namespace_labels``); unknown, the
policy does not apply, which fails open as every other gap in prevention does.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from vigil.policy.enforcement import AdmissionSubject, EnforcementPolicy, Mode, PolicyEntry, RuntimeMode
from vigil.wire.prevention import (
    MAX_DRIFT_SHA256,
    ContainerPrevention,
    NodeRuntimePolicy,
    PreventionMode,
    PreventionRule,
)

REVISION_LENGTH = 16


@dataclass(frozen=True, slots=True)
class RunningContainer:
    """A container running on the node, as the inventory knows it."""

    container_id: str  # runtime-prefixed (containerd://<id>)
    namespace: str
    pod_name: str = ""
    pod_uid: str | None = None
    workload: str = ""  # kind/name of the top-level workload
    labels: Mapping[str, str] = field(default_factory=dict)  # the workload's and the pod's
    namespace_labels: Mapping[str, str] | None = None  # None: not known
    # sha256s that ran in it and that its image's manifest holds at no path (its open drift findings)
    drift_sha256: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Cluster:
    id: str
    name: str = ""


def effective_mode(entry: PolicyEntry, rule: PreventionRule) -> RuntimeMode:
    """The mode ``entry`` gives ``rule``: its runtime rule capped by its own mode."""
    mode: RuntimeMode = getattr(entry.runtime, str(rule))
    if mode is RuntimeMode.ENFORCE and entry.mode is not Mode.ENFORCE:
        return RuntimeMode.AUDIT
    return mode


def _applies(entry: PolicyEntry, cluster: Cluster, container: RunningContainer) -> bool:
    scope = entry.scope
    if scope.namespace_selector is not None and container.namespace_labels is None:
        return False
    subject = AdmissionSubject(
        cluster=cluster.id,
        cluster_name=cluster.name,
        namespace=container.namespace,
        namespace_labels=container.namespace_labels or {},
        workload_labels=container.labels,
    )
    return scope.matches(subject)


ActiveEntries = list[tuple[PolicyEntry, dict[PreventionRule, RuntimeMode]]]


def active_entries(policy: EnforcementPolicy) -> ActiveEntries:
    """Each policy with a runtime rule on, with the effective mode of each such rule (worked out once per
    policy, not once per container)."""
    out: ActiveEntries = []
    for entry in policy.policies:
        modes = {rule: effective_mode(entry, rule) for rule in PreventionRule}
        on: dict[PreventionRule, RuntimeMode] = {r: m for r, m in modes.items() if m is not RuntimeMode.OFF}
        if on:
            out.append((entry, on))
    return out


def unreachable_runtime_rules(policy: EnforcementPolicy) -> list[str]:
    """What in ``policy`` would silently fail open at runtime, said once per policy: runtime rules scoped by
    namespace labels, which no node's containers carry (see the module's docstring)."""
    return [
        f"policy {entry.name}: its runtime rules ({', '.join(str(r) for r in on)}) are scoped by "
        "namespace_selector, and the inventory carries no namespace labels, so they apply to no running "
        "container; scope them by namespaces or workload_selector (admission still applies the selector)"
        for entry, on in active_entries(policy)
        if entry.scope.namespace_selector is not None
    ]


def container_rules(
    policy: EnforcementPolicy, cluster: Cluster, container: RunningContainer, active: ActiveEntries | None = None
) -> tuple[dict[PreventionRule, PreventionMode], dict[PreventionRule, str]]:
    """(mode per rule that is on, the policy that set it) for one container."""
    if container.namespace in policy.exempt_namespaces:
        return {}, {}
    best: dict[PreventionRule, tuple[RuntimeMode, str]] = {}
    for entry, entry_modes in active_entries(policy) if active is None else active:
        if not _applies(entry, cluster, container):
            continue
        for rule, mode in entry_modes.items():
            held = best.get(rule)
            if held is None or mode.rank > held[0].rank:
                best[rule] = (mode, entry.name)
    modes: dict[PreventionRule, PreventionMode] = {
        r: "enforce" if m is RuntimeMode.ENFORCE else "audit" for r, (m, _) in best.items()
    }
    return modes, {r: name for r, (_, name) in best.items()}


def revision_of(node_name: str, containers: Iterable[ContainerPrevention], deny_sha256: Iterable[str]) -> str:
    """A short stable hash of everything a node's policy holds but the time it was made."""
    doc = {
        "node_name": node_name,
        "containers": [c.model_dump(mode="json") for c in containers],
        "deny_sha256": list(deny_sha256),
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:REVISION_LENGTH]


def drift_list(container: RunningContainer) -> list[str]:
    """The container's known non-image sha256s, sorted (the revision depends on the contents only) and bounded."""
    return sorted(container.drift_sha256)[:MAX_DRIFT_SHA256]


def node_policy(
    policy: EnforcementPolicy,
    cluster: Cluster,
    node_name: str,
    containers: Iterable[RunningContainer],
    deny_sha256: Iterable[str],
    generated_at: datetime,
) -> NodeRuntimePolicy:
    """What the sensor of ``node_name`` enforces: each container with at least one rule on, by id, and the
    deny list (sorted, so the revision depends on the contents only)."""
    listed: list[ContainerPrevention] = []
    active = active_entries(policy)
    for c in sorted(containers, key=lambda c: c.container_id) if active else ():
        rules, names = container_rules(policy, cluster, c, active)
        if rules:
            listed.append(
                ContainerPrevention(
                    container_id=c.container_id,
                    pod_uid=c.pod_uid,
                    namespace=c.namespace,
                    pod_name=c.pod_name,
                    workload=c.workload,
                    rules=dict(sorted(rules.items())),
                    policies=dict(sorted(names.items())),
                    drift_sha256=drift_list(c) if PreventionRule.DRIFT in rules else [],
                )
            )
    deny = sorted(set(deny_sha256))
    return NodeRuntimePolicy(
        revision=revision_of(node_name, listed, deny),
        node_name=node_name,
        generated_at=generated_at,
        containers=listed,
        deny_sha256=deny,
    )


def policy_for(node: NodeRuntimePolicy, container_id: str | None, rule: PreventionRule) -> str | None:
    """The name of the policy that put ``rule`` on ``container_id`` in ``node``, if any."""
    for c in node.containers:
        if c.container_id == container_id:
            return c.policies.get(rule)
    return None
