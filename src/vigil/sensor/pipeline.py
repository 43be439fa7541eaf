"""Raw ring-buffer records -> attributed, hashed executions, activities (and process exits)."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from vigil.sensor.activity import RUNTIME_INIT_COMMS, Activity, ProcessTable, describe
from vigil.sensor.aggregate import Execution
from vigil.sensor.attribution import Attribution, attribute_cgroup_path
from vigil.sensor.cgroups import CgroupResolver, cgroup_procs
from vigil.sensor.events import (
    EVENT_ACTIVITY,
    EVENT_EXEC,
    EVENT_EXIT,
    EVENT_PREVENTED,
    ActivityEvent,
    EventDecodeError,
    ExecEvent,
    ExitEvent,
    PreventedEvent,
    decode_as,
    route,
)
from vigil.sensor.executables import script_from_argv
from vigil.sensor.hashing import FileHasher
from vigil.sensor.load_watch import LoadWatch
from vigil.sensor.prevention import Prevention
from vigil.sensor.watch import WatchEntry, watch_entries

log = logging.getLogger(__name__)

MAX_CONTAINERS_SEEN = 65536


def host_mount_namespace(proc: str = "/proc") -> int | None:
    """The host's mount namespace: pid 1's (the sensor runs with the host's PID namespace)."""
    try:
        return os.stat(f"{proc}/1/ns/mnt").st_ino
    except OSError:
        return None


def boot_to_wall_offset_ns() -> int:
    """Add to a CLOCK_BOOTTIME timestamp (what the BPF side stamps) to get Unix time."""
    return time.time_ns() - time.clock_gettime_ns(time.CLOCK_BOOTTIME)


@dataclass
class Exit:
    event: ExitEvent
    time: datetime
    container_id: str | None
    pod_uid: str | None


@dataclass
class Resolved:
    executions: list[Execution] = field(default_factory=list)
    exits: list[Exit] = field(default_factory=list)
    activities: list[Activity] = field(default_factory=list)
    preventions: list[Prevention] = field(default_factory=list)
    host_skipped: int = 0
    runtime_helpers: int = 0
    decode_errors: int = 0


class EventPipeline:
    """Turns one drained batch into executions; learns host cgroups to filter in the kernel.

    ``skip_cgroup`` is called with the cgroup id of each host process seen while
    host tracing is off, so the kernel drops that cgroup's next events itself.
    """

    def __init__(
        self,
        resolver: CgroupResolver,
        hasher: FileHasher,
        *,
        include_host: bool = False,
        skip_cgroup: Callable[[int], None] | None = None,
        with_libraries: bool = True,
        with_exits: bool = True,
        watch: list[WatchEntry] | None = None,
        processes: ProcessTable | None = None,
        on_container: Callable[[int, Attribution], None] | None = None,
        policy_revision: Callable[[], str | None] = lambda: None,
        load_watch: LoadWatch | None = None,
    ) -> None:
        self.resolver = resolver
        self.hasher = hasher
        self.include_host = include_host
        self.skip_cgroup = skip_cgroup
        self.with_libraries = with_libraries
        self.with_exits = with_exits  # exits are only printed (--output json), never shipped
        self._skipped_cgroups: set[int] = set()
        self.watch = watch_entries() if watch is None else watch
        self.processes = processes or ProcessTable()
        self.host_mnt_ns = host_mount_namespace()
        # Each container cgroup seen is offered to the enforcer (a container started after the policy).
        self.on_container = on_container
        self.policy_revision = policy_revision
        # Reads of package files: package_load for the containers that watch them (vigil.sensor.load_watch).
        self.load_watch = load_watch
        if load_watch is not None:
            load_watch.on_table = self._set_watch
        self._containers_seen: set[int] = set()

    def _set_watch(self, entries: list[WatchEntry]) -> None:
        self.watch = entries

    def _wall(self, boot_ns: int, offset: int) -> datetime:
        return datetime.fromtimestamp((boot_ns + offset) / 1e9, tz=UTC)

    def resolve(self, records: list[bytes]) -> Resolved:
        """Each record is first routed from a few header fields; only execs (and exits, when
        ``with_exits``) are decoded in full: at thousands of events a second, forks and exits
        must cost next to nothing."""
        out = Resolved()
        routed: list[tuple[tuple[int, int, int, int, int], bytes]] = []
        for raw in records:
            try:
                r = route(raw)
            except EventDecodeError as exc:
                out.decode_errors += 1
                log.warning("dropped undecodable ring-buffer record: %s", exc)
                continue
            routed.append((r, raw))
            # Every process seen can later serve as a window into its mount namespace.
            if r[0] != EVENT_EXIT:
                self.hasher.note_process(r[1], r[4])
        offset = boot_to_wall_offset_ns()
        # Execs first so that hashing reads /proc while the processes still live;
        # exits are forgotten last, after everything in this batch was resolved.
        for (kind, tgid, cgroup_id, ts, mnt), raw in routed:
            attribution = self.resolver.attribute(cgroup_id, tgid, ts)
            if attribution.is_host and not self.include_host:
                out.host_skipped += 1
                self._learn_host(cgroup_id)
                continue
            if self.on_container is not None and not attribution.is_host and cgroup_id not in self._containers_seen:
                if len(self._containers_seen) >= MAX_CONTAINERS_SEEN:
                    self._containers_seen.clear()  # offering a container again is harmless
                self._containers_seen.add(cgroup_id)
                if self._own_cgroup(cgroup_id, attribution):
                    self.on_container(cgroup_id, attribution)
            if kind == EVENT_PREVENTED:
                self._prevented(decode_as(raw, PreventedEvent), attribution, offset, out)
                continue
            if kind == EVENT_EXEC and not attribution.is_host and mnt == self.host_mnt_ns:
                # In a container's cgroup but still in the host's mount namespace: the runtime's
                # own helper on its way in (runc init re-executing itself from /dev/fd/N for a
                # `ctr task exec`/`kubectl exec`), not the container's workload.
                helper = decode_as(raw, ExecEvent)
                out.runtime_helpers += 1
                log.info(
                    "not reporting runtime helper exec %s (pid %d) entering %s",
                    helper.filename,
                    tgid,
                    attribution.container_ref,
                )
                continue
            if kind == EVENT_EXEC:
                self._exec(decode_as(raw, ExecEvent), attribution, offset, out)
            elif kind == EVENT_ACTIVITY:
                self._activity(decode_as(raw, ActivityEvent), attribution, offset, out)
            elif kind == EVENT_EXIT and self.with_exits:
                ev = decode_as(raw, ExitEvent)
                out.exits.append(Exit(ev, self._wall(ts, offset), attribution.container_ref, attribution.pod_uid))
        for (kind, tgid, *_), _raw in routed:
            if kind == EVENT_EXIT:
                self.hasher.forget_process(tgid)
        return out

    def _learn_host(self, cg: int) -> None:
        # Only a cgroup positively known as the host's is filtered in the kernel from
        # now on; an unknown one may be a container whose cgroup was not seen yet.
        if self.skip_cgroup is not None and cg not in self._skipped_cgroups and self.resolver.is_known_host(cg):
            self._skipped_cgroups.add(cg)
            self.skip_cgroup(cg)

    def _activity(self, ev: ActivityEvent, attribution: Attribution, offset: int, out: Resolved) -> None:
        if ev.proc.comm.startswith(RUNTIME_INIT_COMMS) and not ev.workload:
            out.runtime_helpers += 1
            return
        described = describe(ev, self.processes, self.watch)
        if described is None:
            return
        target, detail = described
        info = self.processes.info(ev.proc.tgid, ev.proc.ppid, ev.proc.pid_ns or None)
        when = self._wall(ev.proc.timestamp_boot_ns, offset)
        seen = Activity(ev, attribution, when, target, detail, info)
        act = self.load_watch.classify(seen) if self.load_watch is not None else seen
        if act is not None:
            out.activities.append(act)

    def _own_cgroup(self, cgroup_id: int, attribution: Attribution) -> bool:
        """Whether the cgroup v2 id is the container's own: a runtime that joined only the v1
        hierarchies leaves it in a shared parent, which must never be put under its rules."""
        path = self.resolver.path_of(cgroup_id)
        if path is None:
            return False
        own = attribute_cgroup_path(path, default_runtime=self.resolver.default_runtime)
        return own.container_ref == attribution.container_ref

    def _cgroup_pids(self, cgroup_id: int) -> list[int]:
        """Live processes of a cgroup (the unified hierarchy's cgroup.procs), to read files through."""
        path = self.resolver.path_of(cgroup_id)
        if path is None or self.resolver.root is None:
            return []
        return cgroup_procs(self.resolver.root / path.lstrip("/"))

    def _prevented(self, ev: PreventedEvent, attribution: Attribution, offset: int, out: Resolved) -> None:
        sha = None
        if ev.file is not None:
            # The process was killed (or, in audit mode, may have finished): the file is read from
            # disk afterwards, through whatever still shows the container's root.
            sha = self.hasher.file_by_identity(
                ev.file, ev.proc.tgid, ev.proc.mnt_ns, ev.interp, self._cgroup_pids(ev.proc.cgroup_id)
            )
        parents = self.processes.parents(ev.proc.tgid, ev.proc.ppid, ev.proc.pid_ns or None)
        when = self._wall(ev.proc.timestamp_boot_ns, offset)
        revision = self.policy_revision() or "unknown"
        out.preventions.append(Prevention(ev, attribution, when, sha, parents, revision))

    def _exec(self, ev: ExecEvent, attribution: Attribution, offset: int, out: Resolved) -> None:
        self.processes.note_exec(ev)
        pid, mnt = ev.proc.tgid, ev.proc.mnt_ns
        binary = self.hasher.executed_binary(ev, lambda: self._cgroup_pids(ev.proc.cgroup_id))
        script = None
        if ev.interp != ev.filename and not ev.unlinked:
            script = ev.filename  # a #! script: the kernel loaded its interpreter
        else:
            script = script_from_argv(ev.interp, ev.argv)
        script_sha = self.hasher.file_in_process(pid, mnt, script) if script else None
        if script and script_sha is None:
            log.warning("cannot read script %s of pid %d: process gone or file unreadable", script, pid)
        libs = []
        # A static binary maps no shared libraries: reading its maps would find none.
        if self.with_libraries and self.hasher.may_map_libraries(ev.file):
            libs = self.hasher.mapped_libraries(pid, ev.file)
        when = self._wall(ev.proc.timestamp_boot_ns, offset)
        out.executions.append(Execution(ev, attribution, when, binary, script, script_sha, libs))
