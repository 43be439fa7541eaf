"""Suspicious executions: one table of rules, each with an id, a description and a severity,
and an allow-list per workload so that expected behaviour can be silenced.

Exec sessions: the sensor gives each exec's pid and parent pid (host pids). A process whose
parent is not a process of its container (and which is not the container's entry point) was
started by the container runtime from outside: ``kubectl exec`` / ``crictl exec`` /
``ctr task exec`` all enter through runc, whose exec process is the parent. Terminals cannot
be told from what the sensor sends today (no tty in the event); see docs/runtime-analysis.md.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from vigil.service.analysis.runtime.model import (
    ContainerProcesses,
    ExecRecord,
    Sample,
    Workload,
)

SHELLS = frozenset({"sh", "bash", "dash", "ash", "zsh", "ksh", "mksh", "pdksh", "csh", "tcsh", "fish"})
TEMP_DIRS = ("/tmp/", "/var/tmp/", "/dev/shm/", "/run/shm/")
# execveat(fd, "", AT_EMPTY_PATH) reports /dev/fd/N; /proc/self/fd/N and /proc/<pid>/fd/N
# name an open file (often a memfd); map paths of memfds read "/memfd:<name> (deleted)".
_FD_PATH = re.compile(r"^/(dev/fd|proc/(self|thread-self|\d+)/fd)/\d+$")


@dataclass(frozen=True, slots=True)
class Hit:
    reason: str
    sample: Sample | None


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    description: str
    severity: str
    kinds: frozenset[str]
    check: Callable[[ExecRecord, ContainerProcesses], Hit | None]

    def as_dict(self) -> dict:
        return {"id": self.id, "description": self.description, "severity": self.severity, "kinds": sorted(self.kinds)}


def _is_shell(record: ExecRecord, s: Sample) -> bool:
    names = {posixpath.basename(record.path), posixpath.basename(s.filename)}
    if s.argv:
        argv0 = posixpath.basename(s.argv[0]).lstrip("-")  # a login shell's argv[0] is "-sh"
        names.add(argv0)
        if argv0 == "busybox" and len(s.argv) > 1:
            names.add(s.argv[1])  # `busybox sh`: the applet is the first argument
    return bool(names & SHELLS)


def shell_from_exec_session(record: ExecRecord, procs: ContainerProcesses) -> Hit | None:
    for s in record.samples:
        if _is_shell(record, s) and procs.entered_from_outside(s):
            return Hit(
                f"shell {record.path} started by pid {s.ppid}, "
                "which is not a process of the container (an exec session)",
                s,
            )
    return None


def in_temp_dir(record: ExecRecord, procs: ContainerProcesses) -> Hit | None:
    for d in TEMP_DIRS:
        if record.path.startswith(d):
            return Hit(
                f"{record.path} is in {d.rstrip('/')}, a world-writable scratch directory", record.first_sample()
            )
    return None


def memfd_or_deleted(record: ExecRecord, procs: ContainerProcesses) -> Hit | None:
    p = record.path
    if p.startswith("/memfd:") or "memfd:" in posixpath.basename(p):
        return Hit(f"{p} is an anonymous memory file (memfd): the code never existed on disk", record.first_sample())
    if p.endswith(" (deleted)"):
        return Hit(f"{p} was deleted after it was started", record.first_sample())
    if _FD_PATH.match(p):
        return Hit(f"{p} was executed through a file descriptor (fexecve), typically a memfd", record.first_sample())
    return None


EXECUTED = frozenset({"executable", "script"})
ANY_CODE = frozenset({"executable", "script", "library"})

RULES: tuple[Rule, ...] = (
    Rule(
        "shell-in-exec-session",
        "A shell was started in a running container through an exec session (kubectl exec, crictl/ctr exec): "
        "someone is working inside the container by hand",
        "medium",
        frozenset({"executable"}),
        shell_from_exec_session,
    ),
    Rule(
        "exec-from-temp-dir",
        "Code ran from /tmp, /var/tmp or /dev/shm: "
        "files there are written at run time, a common drop point for payloads",
        "high",
        ANY_CODE,
        in_temp_dir,
    ),
    Rule(
        "exec-from-memfd-or-deleted",
        "Code ran from an anonymous memory file (memfd, fexecve) or a file deleted after start: fileless execution",
        "high",
        ANY_CODE,
        memfd_or_deleted,
    ),
)
RULE_IDS = tuple(r.id for r in RULES)


@dataclass(frozen=True, slots=True)
class AllowEntry:
    """Silences ``rule`` ('*': every rule) for workloads that match every given field."""

    id: int
    rule: str
    cluster: str = ""
    namespace: str = ""
    workload: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    reason: str = ""

    def matches(self, rule_id: str, w: Workload) -> bool:
        if self.rule not in ("*", rule_id):
            return False
        if self.cluster and self.cluster not in (w.cluster_id, w.cluster_name):
            return False
        if self.namespace and self.namespace != w.namespace:
            return False
        if self.workload and self.workload != w.name:
            return False
        return all(w.labels.get(k) == v for k, v in self.labels.items())


def check_allow_entry(rule: str, labels: Mapping[str, str]) -> None:
    """Refuse an entry naming an unknown rule (a typo would silence nothing, silently)."""
    if rule != "*" and rule not in RULE_IDS:
        raise ValueError(f"rule {rule!r} is not one of *, {', '.join(RULE_IDS)}")
    for k, v in labels.items():
        if not isinstance(k, str) or not isinstance(v, str) or not k:
            raise ValueError(f"label {k!r}={v!r}: labels are non-empty string keys with string values")


def allowed_by(entries: Iterable[AllowEntry], rule_id: str, w: Workload) -> AllowEntry | None:
    return next((e for e in entries if e.matches(rule_id, w)), None)
