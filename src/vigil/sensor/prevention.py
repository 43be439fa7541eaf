"""Runtime prevention in the sensor's terms: a node's runtime policy as kernel map entries, and what
the kernel prevented as PreventionRecords.

Pure logic: no files, no kernel. The kernel decides every exec and escape syscall from three maps
(bpf/vigil.bpf.c): ``prevent_cgroups`` (cgroup id -> one enforce and one audit bit per rule),
``deny_files`` (identities of files whose sha256 is deny-listed) and ``drift_files`` (identities of
files, per container cgroup, whose sha256 that container's image does not hold). This module says
what those maps must hold for a NodeRuntimePolicy and the containers seen on the node, and aggregates the
kernel's prevented events into the records a runtime batch carries.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from vigil.sensor.activity import ns_flag_names
from vigil.sensor.attribution import Attribution
from vigil.sensor.events import FileIdentity, PreventedEvent, st_dev_to_kernel_dev
from vigil.wire.prevention import (
    MAX_ARGV_ITEMS,
    MAX_PARENTS,
    MAX_PATH,
    MAX_SAMPLES,
    NodeRuntimePolicy,
    PreventionMode,
    PreventionRecord,
    PreventionRule,
    PreventionSample,
)

# enum prevent_rule in vigil.bpf.c. When one exec breaks several rules the kernel reports it under
# an enforced one first, then the lowest bit: the most specific reason first.
RULE_BITS: dict[PreventionRule, int] = {
    PreventionRule.DENY_LISTED: 1,
    PreventionRule.MEMFD_EXEC: 2,
    PreventionRule.DELETED_EXEC: 4,
    PreventionRule.TMP_EXEC: 8,
    PreventionRule.DRIFT: 16,
    PreventionRule.ESCAPE: 32,
}
RULES_BY_BIT: dict[int, PreventionRule] = {bit: rule for rule, bit in RULE_BITS.items()}

_FILE_ID = struct.Struct("<QqII")  # struct file_id: ino, mtime_sec, mtime_nsec, dev
_CGROUP_ID = struct.Struct("<Q")  # struct drift_key: a struct file_id, then the cgroup id


@dataclass(frozen=True)
class RuleBits:
    """One cgroup's entry in ``prevent_cgroups``."""

    enforce: int = 0
    audit: int = 0

    def __bool__(self) -> bool:
        return bool(self.enforce or self.audit)


def rule_bits(rules: Mapping[PreventionRule, PreventionMode]) -> RuleBits:
    enforce = audit = 0
    for rule, mode in rules.items():
        if mode == "enforce":
            enforce |= RULE_BITS[rule]
        else:
            audit |= RULE_BITS[rule]
    return RuleBits(enforce, audit)


def container_bits(policy: NodeRuntimePolicy) -> dict[str, RuleBits]:
    """container ref -> its rule bits, for every container with at least one rule on."""
    out = {}
    for c in policy.containers:
        bits = rule_bits(c.rules)
        if bits:
            out[c.container_id] = bits
    return out


def cgroup_entries(wanted: Mapping[str, RuleBits], containers: Mapping[int, str]) -> dict[int, RuleBits]:
    """What ``prevent_cgroups`` must hold: each known container cgroup (id -> container ref) whose
    container the policy lists. Only a container's own cgroup is ever entered: a shared parent
    would put the host's processes under the rules."""
    return {cg: wanted[ref] for cg, ref in containers.items() if ref in wanted}


def file_key(ident: FileIdentity) -> bytes:
    """A file identity as the kernel's struct file_id (device in the kernel's own encoding)."""
    sec, nsec = divmod(ident.mtime_ns, 1_000_000_000)
    return _FILE_ID.pack(ident.ino, sec, nsec, st_dev_to_kernel_dev(ident.st_dev))


def drift_key(ident: FileIdentity, cgroup_id: int) -> bytes:
    """A file identity in one cgroup as the kernel's struct drift_key."""
    return file_key(ident) + _CGROUP_ID.pack(cgroup_id)


def drift_index(policy: NodeRuntimePolicy) -> dict[str, frozenset[str]]:
    """sha256 -> the container refs whose drift rule is on and whose image does not hold it."""
    out: dict[str, set[str]] = {}
    for c in policy.containers:
        if PreventionRule.DRIFT in c.rules:
            for sha in c.drift_sha256:
                out.setdefault(sha, set()).add(c.container_id)
    return {sha: frozenset(refs) for sha, refs in out.items()}


def drift_entries(sha256: str, index: Mapping[str, frozenset[str]], cgroups: Mapping[int, str]) -> list[int]:
    """The cgroups (id -> container ref) in which a file with these bytes is drift."""
    refs = index.get(sha256)
    if not refs:
        return []
    return sorted(cg for cg, ref in cgroups.items() if ref in refs)


# -- what the kernel prevented -----------------------------------------------------------------


def target_of(ev: PreventedEvent) -> str:
    """The record's path: the exec'd file as /proc names it, or the escape syscall's target."""
    if ev.operation in ("unshare", "setns"):
        return ns_flag_names(ev.aux) if ev.operation == "unshare" or ev.aux else "any"
    return (ev.path or "?")[:MAX_PATH]


@dataclass(frozen=True)
class Prevention:
    """A prevented event resolved to its container, with the file's sha256 where it could be read."""

    event: PreventedEvent
    attribution: Attribution
    time: datetime
    sha256: str | None
    parents: list[str]
    policy_revision: str

    @property
    def rule(self) -> PreventionRule:
        return RULES_BY_BIT[self.event.rule_bit]

    @property
    def mode(self) -> PreventionMode:
        return "enforce" if self.event.enforce else "audit"

    @property
    def operation(self) -> str:
        return self.event.operation or "exec"

    @property
    def path(self) -> str:
        return target_of(self.event)

    def sample(self) -> PreventionSample:
        p = self.event.proc
        return PreventionSample(
            time=self.time,
            pid=p.tgid,
            ppid=p.ppid,
            uid=p.uid,
            comm=p.comm,
            argv=self.event.argv[:MAX_ARGV_ITEMS],
            parents=self.parents[:MAX_PARENTS],
        )


PreventionKey = tuple[str | None, PreventionRule, str, str]


@dataclass
class _Acc:
    pod_uid: str | None
    first_seen: datetime
    last_seen: datetime
    mode: PreventionMode
    killed: bool
    sha256: str | None
    upper_layer: bool | None
    policy_revision: str
    count: int = 0
    samples: list[PreventionSample] = field(default_factory=list)


class PreventionAggregator:
    """One record per (container, rule, operation, path) per window. Within a window the latest
    prevention gives the mode, killed and policy revision (a policy change mid-window shows as it
    ended); the first sha256 read is kept."""

    def __init__(self, max_records: int = 10_000) -> None:
        self._acc: dict[PreventionKey, _Acc] = {}
        self.max_records = max_records
        self.overflowed = 0

    def __len__(self) -> int:
        return len(self._acc)

    def add(self, p: Prevention) -> None:
        key: PreventionKey = (p.attribution.container_ref, p.rule, p.operation, p.path)
        acc = self._acc.get(key)
        if acc is None:
            if len(self._acc) >= self.max_records:
                self.overflowed += 1
                return
            acc = self._acc[key] = _Acc(
                p.attribution.pod_uid,
                p.time,
                p.time,
                p.mode,
                p.event.killed,
                p.sha256,
                p.event.upper_layer,
                p.policy_revision,
            )
        acc.first_seen = min(acc.first_seen, p.time)
        if p.time >= acc.last_seen:
            acc.last_seen = p.time
            acc.mode, acc.killed, acc.policy_revision = p.mode, p.event.killed, p.policy_revision
        acc.sha256 = acc.sha256 or p.sha256
        acc.count += 1
        if len(acc.samples) < MAX_SAMPLES:
            acc.samples.append(p.sample())

    def take(self) -> dict[PreventionKey, _Acc]:
        acc, self._acc = self._acc, {}
        return acc

    @staticmethod
    def records(acc: dict[PreventionKey, _Acc]) -> list[PreventionRecord]:
        return [
            PreventionRecord(
                container_id=cid,
                pod_uid=v.pod_uid,
                rule=rule,
                mode=v.mode,
                killed=v.killed,
                path=path,
                operation=op,
                sha256=v.sha256,
                upper_layer=v.upper_layer,
                policy_revision=v.policy_revision,
                first_seen=v.first_seen,
                last_seen=v.last_seen,
                count=v.count,
                samples=v.samples,
            )
            for (cid, rule, op, path), v in acc.items()
        ]
