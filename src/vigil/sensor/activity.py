"""File and kernel activity events -> one ActivityRecord per (container, kind, target).

The kernel already kept only what is watched (bpf/vigil.bpf.c); here each event
gets its target and details in the wire's terms, the process's executable, argv
and parent chain (from /proc while the process lives, else from the execs the
sensor saw), and is aggregated with counts, first/last seen and a few samples.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from vigil.sensor.attribution import Attribution
from vigil.sensor.events import ActivityEvent, ExecEvent
from vigil.sensor.watch import WATCH_READ, WATCH_WRITE, WatchEntry, flags_of, normalise
from vigil.wire.runtime import (
    MAX_ARGV_ITEMS,
    MAX_DETAIL_VALUE,
    MAX_PARENTS,
    MAX_PATH,
    MAX_SAMPLES,
    ActivityKind,
    ActivityRecord,
    ActivitySample,
)

# CLONE_NEW* flags (linux/sched.h), in the order they are named.
CLONE_NS = {
    0x00020000: "CLONE_NEWNS",
    0x02000000: "CLONE_NEWCGROUP",
    0x04000000: "CLONE_NEWUTS",
    0x08000000: "CLONE_NEWIPC",
    0x10000000: "CLONE_NEWUSER",
    0x20000000: "CLONE_NEWPID",
    0x40000000: "CLONE_NEWNET",
    0x00000080: "CLONE_NEWTIME",
}
OPEN_FLAGS = {0o1: "O_WRONLY", 0o2: "O_RDWR", 0o100: "O_CREAT", 0o1000: "O_TRUNC", 0o2000: "O_APPEND"}
PTRACE_REQUESTS = {16: "PTRACE_ATTACH", 0x4206: "PTRACE_SEIZE"}
# enum bpf_prog_type (linux/bpf.h), the ones worth naming; others are given by number.
BPF_PROG_TYPES = {
    1: "socket_filter",
    2: "kprobe",
    3: "sched_cls",
    4: "sched_act",
    5: "tracepoint",
    6: "xdp",
    7: "perf_event",
    8: "cgroup_skb",
    9: "cgroup_sock",
    17: "raw_tracepoint",
    26: "tracing",
    29: "lsm",
}
# runc's init stages name themselves so (prctl PR_SET_NAME) while they set the container up:
# their mounts, pivot_root and /proc/sys writes are the runtime's, not the workload's.
RUNTIME_INIT_COMMS = ("runc:[",)
PATH_KINDS = frozenset({"file_write", "file_read", "file_rename", "file_chmod", "file_unlink"})


def ns_flag_names(flags: int) -> str:
    names = [name for bit, name in CLONE_NS.items() if flags & bit]
    return "|".join(names) if names else "0"


def open_flag_names(flags: int) -> str:
    names = [name for bit, name in OPEN_FLAGS.items() if flags & bit]
    return "|".join(names) if names else "O_RDONLY"


@dataclass(frozen=True)
class ProcessInfo:
    exe: str
    argv: list[str]
    parents: list[str]


class ProcessTable:
    """What the sensor knows of processes: /proc first, the execs it saw when a process is gone."""

    def __init__(self, proc: Path = Path("/proc"), max_entries: int = 16384) -> None:
        self.proc = proc
        self.max_entries = max_entries
        self._execs: OrderedDict[int, tuple[str, list[str], int, str]] = OrderedDict()  # pid -> exe, argv, ppid, comm

    def note_exec(self, ev: ExecEvent) -> None:
        self._execs[ev.proc.tgid] = (ev.path, ev.argv, ev.proc.ppid, ev.proc.comm)
        self._execs.move_to_end(ev.proc.tgid)
        while len(self._execs) > self.max_entries:
            self._execs.popitem(last=False)

    def _read(self, rel: str) -> bytes | None:
        try:
            return (self.proc / rel).read_bytes()
        except OSError:
            return None

    def _stat(self, pid: int) -> tuple[str, int] | None:
        """(comm, ppid) from /proc/<pid>/stat."""
        raw = self._read(f"{pid}/stat")
        if raw is None:
            return None
        text = raw.decode(errors="replace")
        lo, hi = text.find("("), text.rfind(")")
        if lo < 0 or hi < 0:
            return None
        fields = text[hi + 2 :].split()
        return text[lo + 1 : hi], int(fields[1]) if len(fields) > 1 else 0

    def _pid_ns(self, pid: int) -> int | None:
        try:
            return os.stat(self.proc / str(pid) / "ns" / "pid").st_ino
        except OSError:
            return None

    def info(self, pid: int, ppid: int, pid_ns: int | None = None) -> ProcessInfo:
        try:
            exe = os.readlink(self.proc / str(pid) / "exe")
        except OSError:
            exe = ""
        raw = self._read(f"{pid}/cmdline")
        argv = [a.decode("utf-8", "surrogateescape") for a in raw.split(b"\0")[:-1]] if raw else []
        known = self._execs.get(pid)
        if known is not None:
            exe = exe or known[0]
            argv = argv or known[1]
        return ProcessInfo(exe[:MAX_PATH], argv[:MAX_ARGV_ITEMS], self.parents(pid, ppid, pid_ns))

    def parents(self, pid: int, ppid: int, pid_ns: int | None = None) -> list[str]:
        """comm of each ancestor, nearest first, up to the pid namespace's boundary (the runtime's shim).
        ``pid_ns``: the process's pid namespace as the kernel reported it, for a process already gone (else
        the walk would run on through the host's processes above the container)."""
        own_ns = self._pid_ns(pid) or pid_ns
        out: list[str] = []
        cur = ppid
        while cur > 0 and len(out) < MAX_PARENTS:
            if own_ns is not None and self._pid_ns(cur) not in (own_ns, None):
                break
            st = self._stat(cur)
            if st is None:
                known = self._execs.get(cur)
                if known is None:
                    break
                out.append(known[3][:16])
                cur = known[2]
                continue
            out.append(st[0][:16])
            cur = st[1]
        return out

    def host_pid(self, pid_ns: int, ns_pid: int) -> int | None:
        """The host pid of the process known as ns_pid in the pid namespace pid_ns (an inode number)."""
        for entry in self.proc.iterdir():
            if not entry.name.isdigit():
                continue
            status = self._read(f"{entry.name}/status")
            if status is None:
                continue
            for line in status.decode(errors="replace").splitlines():
                if line.startswith("NSpid:"):
                    pids = line.split()[1:]
                    if pids and int(pids[-1]) == ns_pid and self._pid_ns(int(entry.name)) == pid_ns:
                        return int(entry.name)
                    break
        return None

    def comm(self, pid: int) -> str:
        st = self._stat(pid)
        return st[0] if st else ""


@dataclass(frozen=True)
class Activity:
    """An activity event resolved to its container, target and details."""

    event: ActivityEvent
    attribution: Attribution
    time: datetime
    target: str
    detail: dict[str, str]
    process: ProcessInfo

    def sample(self) -> ActivitySample:
        p = self.event.proc
        return ActivitySample(
            time=self.time,
            pid=p.tgid,
            ppid=p.ppid,
            uid=p.uid,
            comm=p.comm,
            exe=self.process.exe,
            argv=self.process.argv,
            parents=self.process.parents,
            result=self.event.result,
        )


def _cwd(proc: Path, pid: int) -> str | None:
    try:
        return os.readlink(proc / str(pid) / "cwd")
    except OSError:
        return None


def describe(ev: ActivityEvent, table: ProcessTable, watch: list[WatchEntry]) -> tuple[str, dict[str, str]] | None:
    """(target, detail) of an event in the wire's terms; None when, resolved, it is not watched."""
    detail: dict[str, str] = {}
    kind = ev.kind
    target = ev.path
    if kind in PATH_KINDS and ev.unresolved:
        # A path with "." components or an unknown dirfd: normalised here, and filtered as the kernel would.
        resolved = normalise(ev.path, _cwd(table.proc, ev.proc.tgid))
        if resolved is None:
            return None
        need = WATCH_READ if kind == "file_read" else WATCH_WRITE
        if not flags_of(resolved, watch) & need:
            return None
        target = resolved
    if kind == "file_write":
        detail["flags"] = open_flag_names(ev.aux)
    elif kind == "file_rename":
        source = normalise(ev.path2, _cwd(table.proc, ev.proc.tgid)) if ev.path2 else None
        detail["source"] = source or ev.path2
    elif kind == "file_chmod":
        detail["mode"] = f"{ev.aux & 0o7777:04o}"
    elif kind == "ptrace":
        host = table.host_pid(ev.proc.pid_ns, ev.aux)
        pid = host if host is not None else ev.aux
        target = f"pid:{pid} comm:{table.comm(pid) if host is not None else ''}"
        detail["request"] = PTRACE_REQUESTS.get(ev.aux2, str(ev.aux2))
    elif kind in ("setns", "unshare"):
        detail["flags"] = ns_flag_names(ev.aux)
        target = detail["flags"] if kind == "unshare" or ev.aux else "any"
    elif kind == "mount":
        detail["source"] = ev.path2
        detail["fstype"] = ev.name
        detail["flags"] = f"{ev.aux2:#x}"
        target = ev.path or "?"
    elif kind == "pivot_root":
        detail["put_old"] = ev.path2
        target = ev.path or "?"
    elif kind == "bpf_load":
        detail["prog_type"] = BPF_PROG_TYPES.get(ev.aux, str(ev.aux))
        target = f"prog_type:{detail['prog_type']}"
    elif kind == "module_load":
        target = ev.path or "init_module"
    elif kind == "memfd_create":
        detail["name"] = ev.name
        detail["flags"] = f"{ev.aux:#x}"
        target = f"memfd:{ev.name}"
    if ev.truncated:
        detail["truncated"] = "true"
    detail = {k: v[:MAX_DETAIL_VALUE] for k, v in detail.items()}
    return (target or "?")[:MAX_PATH], detail


ActivityKey = tuple[str | None, str | None, ActivityKind, str]


@dataclass
class _Acc:
    first_seen: datetime
    last_seen: datetime
    detail: dict[str, str]
    upper_layer: bool | None
    count: int = 0
    samples: list[ActivitySample] = field(default_factory=list)


class ActivityAggregator:
    """Accumulates activities until ``take``; a bounded number of distinct records per window."""

    def __init__(self, max_records: int = 50_000, samples_per_record: int = MAX_SAMPLES) -> None:
        self._acc: dict[ActivityKey, _Acc] = {}
        self.max_records = max_records
        self.samples_per_record = samples_per_record
        self.overflowed = 0

    def __len__(self) -> int:
        return len(self._acc)

    def add(self, a: Activity) -> None:
        key: ActivityKey = (a.attribution.container_ref, a.attribution.pod_uid, a.event.kind, a.target)
        acc = self._acc.get(key)
        if acc is None:
            if len(self._acc) >= self.max_records:
                self.overflowed += 1
                return
            acc = self._acc[key] = _Acc(a.time, a.time, a.detail, a.event.upper_layer)
        acc.first_seen = min(acc.first_seen, a.time)
        acc.last_seen = max(acc.last_seen, a.time)
        acc.count += 1
        if a.event.upper_layer:
            acc.upper_layer = True
        if len(acc.samples) < self.samples_per_record:
            acc.samples.append(a.sample())

    def add_repeats(self, a: Activity, count: int, first: datetime, last: datetime) -> None:
        """``count`` more of the same activity the kernel counted without queueing, between first and last."""
        key: ActivityKey = (a.attribution.container_ref, a.attribution.pod_uid, a.event.kind, a.target)
        acc = self._acc.get(key)
        if acc is None:
            if len(self._acc) >= self.max_records:
                self.overflowed += count
                return
            acc = self._acc[key] = _Acc(first, last, a.detail, a.event.upper_layer)
        acc.first_seen = min(acc.first_seen, first)
        acc.last_seen = max(acc.last_seen, last)
        acc.count += count

    def take(self) -> dict[ActivityKey, _Acc]:
        acc, self._acc = self._acc, {}
        return acc

    @staticmethod
    def records(acc: dict[ActivityKey, _Acc]) -> list[ActivityRecord]:
        return [
            ActivityRecord(
                container_id=cid,
                pod_uid=pod,
                kind=kind,
                target=target,
                upper_layer=v.upper_layer,
                detail=v.detail,
                first_seen=v.first_seen,
                last_seen=v.last_seen,
                count=v.count,
                samples=v.samples,
            )
            for (cid, pod, kind, target), v in acc.items()
        ]
