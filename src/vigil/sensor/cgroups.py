"""cgroup id -> cgroup path -> container, cached, following containers as they come and go.

The kernel reports a process's cgroup v2 id (the inode number of its
directory in the unified hierarchy). The resolver maps ids to paths by walking
that hierarchy: a miss means a cgroup appeared since the last walk (a
container started), so it walks again (see below for when).
Cgroups that disappear (a container stopped) are retired after a grace
period, so events still in flight for them attribute correctly. When no
unified hierarchy is mounted, or the id is unknown, the process's own
/proc/<pid>/cgroup is read instead.

A miss triggers a walk only when the last walk is older than the event (in
CLOCK_BOOTTIME, the clock the kernel stamps events with): a cgroup that
existed at the event but not at the walk is new; one missing from a walk made
after the event is already gone, and walking again would not find it.
"""

from __future__ import annotations

import logging
import os
import time
from collections import OrderedDict
from pathlib import Path

from vigil.sensor.attribution import (
    HOST,
    Attribution,
    attribute_cgroup_path,
    attribute_proc_cgroup,
)

log = logging.getLogger(__name__)


def cgroup_procs(directory: Path, limit: int = 8) -> list[int]:
    """Up to ``limit`` live processes of a cgroup (its cgroup.procs); none when it is gone."""
    try:
        text = (directory / "cgroup.procs").read_text()
    except OSError:
        return []
    return [int(x) for x in text.split()[:limit]]


def unified_mount(mountinfo: str) -> Path | None:
    """The mount point of the cgroup v2 hierarchy from /proc/self/mountinfo text, if any."""
    for line in mountinfo.splitlines():
        left, sep, right = line.partition(" - ")
        if sep and right.split(" ", 1)[0] == "cgroup2":
            return Path(left.split(" ")[4])
    return None


class CgroupResolver:
    def __init__(
        self,
        root: Path | None = None,
        proc: Path = Path("/proc"),
        *,
        default_runtime: str = "containerd",
        retire_after_s: float = 60.0,
        max_attributions: int = 65536,
    ):
        if root is None:
            root = unified_mount((proc / "self" / "mountinfo").read_text())
        self.root = root
        self.proc = proc
        self.default_runtime = default_runtime
        self.retire_after_s = retire_after_s
        self._paths: dict[int, str] = {}
        self._gone_since: dict[int, float] = {}
        self._last_scan_boot_ns = -1
        # cgroup ids are never reused while the system runs, so an id's attribution never changes.
        self._attributions: OrderedDict[int, Attribution] = OrderedDict()
        self._max = max_attributions
        self.rescans = 0
        if self.root is not None:
            self._scan()

    def _scan(self) -> None:
        now = time.monotonic()
        self._last_scan_boot_ns = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
        self.rescans += 1
        seen: dict[int, str] = {}
        assert self.root is not None
        root = str(self.root)
        for dirpath, _dirs, _files in os.walk(root):
            try:
                ino = os.stat(dirpath).st_ino
            except FileNotFoundError:
                continue  # removed during the walk
            rel = dirpath[len(root) :] or "/"
            seen[ino] = rel
        for cid in self._paths.keys() - seen.keys():
            self._gone_since.setdefault(cid, now)
        for cid, since in list(self._gone_since.items()):
            if cid in seen:
                del self._gone_since[cid]
            elif now - since > self.retire_after_s:
                del self._gone_since[cid]
                self._paths.pop(cid, None)
        self._paths.update(seen)

    def path_of(self, cgroup_id: int, seen_boot_ns: int | None = None) -> str | None:
        """The cgroup's path under the unified root; ``seen_boot_ns`` is when the kernel saw it in use."""
        if self.root is None:
            return None
        path = self._paths.get(cgroup_id)
        if path is None and (seen_boot_ns is None or self._last_scan_boot_ns < seen_boot_ns):
            self._scan()
            path = self._paths.get(cgroup_id)
        return path

    def attribute(self, cgroup_id: int, pid: int | None = None, seen_boot_ns: int | None = None) -> Attribution:
        """The container (or HOST) of a process, from its cgroup id, else from /proc/<pid>/cgroup."""
        cached = self._attributions.get(cgroup_id)
        if cached is not None:
            return cached
        found: Attribution | None = None
        path = self.path_of(cgroup_id, seen_boot_ns)
        if path is not None:
            found = attribute_cgroup_path(path, default_runtime=self.default_runtime)
            if found.is_host and pid is not None:
                # A runtime that joined only the v1 hierarchies leaves the process in a
                # unified-hierarchy parent; its v1 paths still name the container.
                found = self._from_proc(pid) or found
        elif pid is not None:
            found = self._from_proc(pid)
        if found is None:
            log.warning("cgroup id %d (pid %s) has no known path; attributing to the host", cgroup_id, pid)
            return HOST
        self._attributions[cgroup_id] = found
        if len(self._attributions) > self._max:
            self._attributions.popitem(last=False)
        return found

    def _from_proc(self, pid: int) -> Attribution | None:
        try:
            text = (self.proc / str(pid) / "cgroup").read_text()
        except OSError:
            return None
        found = attribute_proc_cgroup(text, default_runtime=self.default_runtime)
        return None if found.is_host else found

    def is_known_host(self, cgroup_id: int) -> bool:
        """True when the cgroup exists and its path is a host path: safe to filter in the kernel."""
        found = self._attributions.get(cgroup_id)
        return cgroup_id in self._paths and found is not None and found.is_host
