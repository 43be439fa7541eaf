"""Raw ring-buffer records -> attributed, hashed executions (and process exits)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from vigil.sensor.aggregate import Execution
from vigil.sensor.cgroups import CgroupResolver
from vigil.sensor.events import ExecEvent, ExitEvent, ForkEvent, ProcessEvent, decode_batch
from vigil.sensor.executables import script_from_argv
from vigil.sensor.hashing import FileHasher

log = logging.getLogger(__name__)


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
    host_skipped: int = 0
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
        skip_cgroup=None,
        with_libraries: bool = True,
    ):
        self.resolver = resolver
        self.hasher = hasher
        self.include_host = include_host
        self.skip_cgroup = skip_cgroup
        self.with_libraries = with_libraries
        self._skipped_cgroups: set[int] = set()

    def _wall(self, boot_ns: int, offset: int) -> datetime:
        return datetime.fromtimestamp((boot_ns + offset) / 1e9, tz=UTC)

    def resolve(self, records: list[bytes]) -> Resolved:
        events, errors = decode_batch(records)
        out = Resolved(decode_errors=len(errors))
        for err in errors:
            log.warning("dropped undecodable ring-buffer record: %s", err)
        offset = boot_to_wall_offset_ns()
        # Execs first so that hashing reads /proc while the processes still live;
        # forks and exits only book-keep which processes can serve as a namespace's window.
        for ev in events:
            if isinstance(ev, (ForkEvent, ExecEvent)):
                self.hasher.note_process(ev.proc.tgid, ev.proc.mnt_ns)
        for ev in events:
            self._one(ev, offset, out)
        for ev in events:
            if isinstance(ev, ExitEvent):
                self.hasher.forget_process(ev.proc.tgid)
        return out

    def _one(self, ev: ProcessEvent, offset: int, out: Resolved) -> None:
        attribution = self.resolver.attribute(ev.proc.cgroup_id, ev.proc.tgid, ev.proc.timestamp_boot_ns)
        if attribution.is_host and not self.include_host:
            out.host_skipped += 1
            cg = ev.proc.cgroup_id
            # Only a cgroup positively known as the host's is filtered in the kernel from
            # now on; an unknown one may be a container whose cgroup was not seen yet.
            if self.skip_cgroup is not None and cg not in self._skipped_cgroups and self.resolver.is_known_host(cg):
                self._skipped_cgroups.add(cg)
                self.skip_cgroup(cg)
            return
        when = self._wall(ev.proc.timestamp_boot_ns, offset)
        if isinstance(ev, ExitEvent):
            out.exits.append(Exit(ev, when, attribution.container_ref, attribution.pod_uid))
            return
        if not isinstance(ev, ExecEvent):
            return
        pid, mnt = ev.proc.tgid, ev.proc.mnt_ns
        binary = self.hasher.executed_binary(ev)
        script = None
        if ev.interp != ev.filename:
            script = ev.filename  # a #! script: the kernel loaded its interpreter
        else:
            script = script_from_argv(ev.interp, ev.argv)
        script_sha = self.hasher.file_in_process(pid, mnt, script) if script else None
        if script and script_sha is None:
            log.warning("cannot read script %s of pid %d: process gone or file unreadable", script, pid)
        libs = self.hasher.mapped_libraries(pid, ev.file) if self.with_libraries else []
        out.executions.append(Execution(ev, attribution, when, binary, script, script_sha, libs))
