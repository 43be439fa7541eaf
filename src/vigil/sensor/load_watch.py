"""Package loads: opens of the files the node's runtime policy lists per container (``load_watch``).

An interpreter (``python3``, ``java``, ``node``) opens and reads the code it runs: the files of the packages
with open vulnerable findings in a container's image are watched for reads so that their loading is seen.

The kernel's table of watched paths (vigil.sensor.watch) is one for the node, not per container: each
policy puts the union of every container's paths into it as read-watched entries, beside the built-in ones
(an entry under a write-watched prefix keeps that prefix's flags), and takes out those no container wants
any more. The kernel then reports an open of such a file from any container; here, in user space, an open
in a container whose own load watch lists the file becomes a ``package_load`` activity, and one that only
another container's load watch lists is dropped. A file that is also a built-in read-watched path stays a
``file_read``.

Each container's paths are also resolved to the identities of the files they name (vigil.sensor.load_identities),
per container cgroup in the kernel: an open of such a file by another path (a hard link, another bind mount)
comes as a ``package_load`` the kernel matched by identity, named here by the watched path it was resolved from
(the path it was opened by in ``detail.opened_as``). Paths stay the match where identities are not known yet.

Bounded: at most ``MAX_NODE_PATHS`` paths for the node (the kernel's table holds 1,024 entries, the built-in
ones among them); the paths past it, in sorted order, are left out and said so in the log.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import replace
from typing import Protocol

from vigil.sensor.activity import Activity
from vigil.sensor.attribution import Attribution
from vigil.sensor.load_identities import LoadIdentities
from vigil.sensor.watch import (
    READ_WATCHED,
    WATCH_READ,
    WRITE_WATCHED,
    WatchEntry,
    flags_of,
    watch_entries,
    watches,
)
from vigil.wire.prevention import NodeRuntimePolicy

log = logging.getLogger(__name__)
MAX_NODE_PATHS = 900


class WatchTable(Protocol):
    def set_watch(self, entries: list[WatchEntry]) -> None: ...
    def delete_watch(self, path: str) -> None: ...


class LoadWatch:
    def __init__(
        self,
        kernel: WatchTable,
        on_table: Callable[[list[WatchEntry]], None] = lambda entries: None,
        max_paths: int = MAX_NODE_PATHS,
        identities: LoadIdentities | None = None,
    ) -> None:
        self.kernel = kernel
        self.identities = identities
        self.on_table = on_table  # the pipeline's copy of the table (paths it must resolve itself)
        self.max_paths = max_paths
        self._lock = threading.Lock()
        self._base = watch_entries()
        self._in_kernel: dict[str, WatchEntry] = {e.path: e for e in self._base}
        self._by_container: dict[str, frozenset[str]] = {}
        self.left_out = 0

    def apply(self, policy: NodeRuntimePolicy) -> None:
        """Put this policy's load watch in the kernel's table; never raises (the policy's prevention part
        must not fail for it): what cannot be done is logged."""
        wanted = {w.container_id: frozenset(w.paths) for w in policy.load_watch}
        union = sorted(set().union(*wanted.values())) if wanted else []
        kept, self.left_out = union[: self.max_paths], max(0, len(union) - self.max_paths)
        if self.left_out:
            log.warning(
                "load watch of policy %s: %d package paths over the node's %d left out",
                policy.revision,
                self.left_out,
                self.max_paths,
            )
        allowed = frozenset(kept)
        entries = watch_entries(WRITE_WATCHED, READ_WATCHED + tuple(kept))
        with self._lock:
            new = {e.path: e for e in entries}
            try:
                for path in [p for p in self._in_kernel if p not in new]:
                    self.kernel.delete_watch(path)
                    del self._in_kernel[path]
                changed = [e for e in entries if self._in_kernel.get(e.path) != e]
                self.kernel.set_watch(changed)
                self._in_kernel.update({e.path: e for e in changed})
            except Exception as exc:
                log.error("load watch of policy %s not in the kernel: %s", policy.revision, exc)
                return
            self._by_container = {cid: paths & allowed for cid, paths in wanted.items()}
        if self.identities is not None:
            # Each container's own paths, those past the node's cap too: identities are per cgroup.
            self.identities.want(wanted)
        self.on_table(entries)
        log.info(
            "load watch of policy %s in the kernel: %d containers, %d package paths",
            policy.revision,
            len(wanted),
            len(kept),
        )

    def note_container(self, cgroup_id: int, attribution: Attribution) -> None:
        """A container's cgroup seen in an event: its package files are resolved to identities if it has a load
        watch."""
        if self.identities is not None:
            self.identities.note_container(cgroup_id, attribution.container_ref)

    def classify(self, a: Activity) -> Activity | None:
        """A read of a package file its container watches -> package_load; a read watched only for another
        container -> None (dropped); anything else as it is. A package_load the kernel matched by identity is
        named by the watched path of that identity (None once it is no longer watched)."""
        ev = a.event
        if ev.kind == "package_load" and ev.by_identity:
            path = self.identities.path_of(ev.proc.cgroup_id, (ev.dev, ev.ino)) if self.identities else None
            if path is None:
                return None
            detail = a.detail if not ev.path or ev.path == path else {**a.detail, "opened_as": a.target}
            return replace(a, target=path, detail=detail)
        if ev.kind != "file_read":
            return a
        ref = a.attribution.container_ref
        mine = self._by_container.get(ref or "")
        if mine and watches(a.target, mine):
            if self.identities is not None:
                self.identities.learn(ev.proc.cgroup_id, ref, (ev.dev, ev.ino), a.target)
            return replace(a, event=replace(ev, kind="package_load"))
        if flags_of(a.target, self._base) & WATCH_READ:
            return a
        return None
