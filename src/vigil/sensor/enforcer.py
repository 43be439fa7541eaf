"""Keeps the kernel's prevention maps equal to the node's runtime policy.

The policy names containers; the kernel knows cgroups. Each policy applied here is mapped to the
containers' cgroups found in the cgroup v2 hierarchy, and a container that appears later gets its
entry as soon as the sensor sees its first event (``note_container``). The deny list is of
sha256s; the kernel matches file identities, so a file enters ``deny_files`` once the sensor has
hashed it (``note_file``): the exec after that is the one stopped. The same for a container's
drift sha256s (bytes its image holds nowhere), per container cgroup in ``drift_files``.

Called from two threads (the policy source's and the drain thread), hence the lock. The kernel
decides on its own once the maps are filled: nothing here is on an exec's path.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Protocol

from vigil.sensor.attribution import Attribution, attribute_cgroup_path
from vigil.sensor.events import FileIdentity
from vigil.sensor.prevention import (
    RuleBits,
    cgroup_entries,
    container_bits,
    drift_entries,
    drift_index,
    drift_key,
    file_key,
)
from vigil.wire.prevention import NodeRuntimePolicy

log = logging.getLogger(__name__)


class PreventionMaps(Protocol):
    def set_cgroup_rules(self, cgroup_id: int, enforce: int, audit: int) -> None: ...
    def clear_cgroup_rules(self, cgroup_id: int) -> None: ...
    def deny_file(self, key: bytes) -> None: ...
    def allow_file(self, key: bytes) -> None: ...
    def drift_file(self, key: bytes) -> None: ...
    def undrift_file(self, key: bytes) -> None: ...


def container_cgroup_dirs(root: Path | None, default_runtime: str = "containerd") -> dict[int, tuple[str, Path]]:
    """cgroup id -> (container ref, its directory) of every container cgroup under the unified hierarchy."""
    out: dict[int, tuple[str, Path]] = {}
    if root is None:
        return out
    base = str(root)
    for dirpath, _dirs, _files in os.walk(base):
        ref = attribute_cgroup_path(dirpath[len(base) :] or "/", default_runtime=default_runtime).container_ref
        if ref is None:
            continue
        try:
            out[os.stat(dirpath).st_ino] = (ref, Path(dirpath))
        except FileNotFoundError:
            continue  # removed during the walk
    return out


def container_cgroups(root: Path | None, default_runtime: str = "containerd") -> dict[int, str]:
    """cgroup id -> container ref of every container cgroup under the unified hierarchy."""
    return {cg: ref for cg, (ref, _dir) in container_cgroup_dirs(root, default_runtime).items()}


class Enforcer:
    def __init__(
        self,
        kernel: PreventionMaps,
        cgroup_root: Path | None,
        *,
        known_files: Callable[[], Iterable[tuple[FileIdentity, str]]] = lambda: (),
        default_runtime: str = "containerd",
    ) -> None:
        self.kernel = kernel
        self.cgroup_root = cgroup_root
        self.known_files = known_files
        self.default_runtime = default_runtime
        self._lock = threading.Lock()
        self.policy: NodeRuntimePolicy | None = None
        self.error: str | None = None
        self._wanted: dict[str, RuleBits] = {}
        self._containers: dict[int, str] = {}  # cgroup id -> container ref, scanned or seen
        self._entries: dict[int, RuleBits] = {}  # what prevent_cgroups holds
        self._deny: frozenset[str] = frozenset()
        self._denied: dict[bytes, str] = {}  # deny_files keys -> their sha256
        self._drift: dict[str, frozenset[str]] = {}  # sha256 -> the container refs it is drift in
        self._drifted: dict[bytes, tuple[str, int]] = {}  # drift_files keys -> (sha256, cgroup id)
        self._drift_refused = False  # the kernel refused a drift_files entry (said once)
        self.changed = threading.Event()  # set when a new revision is in the kernel, or an error
        self.notify: Callable[[], None] | None = None  # told of each change (wakes the heartbeat)

    @property
    def revision(self) -> str | None:
        return self.policy.revision if self.policy is not None else None

    def apply(self, policy: NodeRuntimePolicy) -> None:
        """Fill the kernel's maps for this policy; what the previous one set and this one does not
        is removed."""
        with self._lock:
            # A fresh walk (not added to the old one): cgroups of containers gone since are forgotten.
            self._containers = container_cgroups(self.cgroup_root, self.default_runtime)
            self._wanted = container_bits(policy)
            self._sync(cgroup_entries(self._wanted, self._containers))
            self._deny = frozenset(policy.deny_sha256)
            for key, sha in list(self._denied.items()):
                if sha not in self._deny:
                    self.kernel.allow_file(key)
                    del self._denied[key]
            self._drift = drift_index(policy)
            for key, (sha, cg) in list(self._drifted.items()):
                if self._containers.get(cg) not in self._drift.get(sha, ()):
                    self.kernel.undrift_file(key)
                    del self._drifted[key]
            self.policy = policy
            self.error = None
        for ident, sha in self.known_files():
            self.note_file(ident, sha)
        log.info(
            "runtime policy %s in the kernel: %d containers listed, %d cgroups under rules, %d files deny-listed, "
            "%d file identities drift in a container",
            policy.revision,
            len(self._wanted),
            len(self._entries),
            len(self._denied),
            len(self._drifted),
        )
        self._changed()

    def _changed(self) -> None:
        self.changed.set()
        if self.notify is not None:
            self.notify()

    def _sync(self, want: dict[int, RuleBits]) -> None:
        for cg in list(self._entries):
            if cg not in want:
                self.kernel.clear_cgroup_rules(cg)
                del self._entries[cg]
        for cg, bits in want.items():
            if self._entries.get(cg) != bits:
                self.kernel.set_cgroup_rules(cg, bits.enforce, bits.audit)
                self._entries[cg] = bits

    def note_container(self, cgroup_id: int, attribution: Attribution) -> None:
        """A container's cgroup seen in an event: under its rules from now on if the policy lists it."""
        if cgroup_id in self._containers:
            return
        ref = attribution.container_ref
        if ref is None:
            return
        with self._lock:
            self._containers[cgroup_id] = ref
            bits = self._wanted.get(ref)
            if bits and self._entries.get(cgroup_id) != bits:
                self.kernel.set_cgroup_rules(cgroup_id, bits.enforce, bits.audit)
                self._entries[cgroup_id] = bits
                log.info("container %s (cgroup %d) is under runtime rules from now on", ref, cgroup_id)
            drifts = any(ref in refs for refs in self._drift.values())
        if drifts:
            # Files hashed before this cgroup was known: their next exec in it is judged too.
            for ident, sha in self.known_files():
                self.note_file(ident, sha)

    def note_file(self, ident: FileIdentity, sha256: str | None) -> None:
        """A file the sensor hashed: into the kernel's deny map when its sha256 is deny-listed, and into its
        drift map for each container cgroup whose image does not hold it."""
        if sha256 is None:
            return
        if sha256 in self._drift:
            self._note_drift(ident, sha256)
        if sha256 not in self._deny:
            return
        key = file_key(ident)
        with self._lock:
            if key in self._denied:
                return
            self.kernel.deny_file(key)
            self._denied[key] = sha256
        log.info("deny-listed file %s (inode %d) is stopped at its next exec", sha256, ident.ino)

    def _note_drift(self, ident: FileIdentity, sha256: str) -> None:
        with self._lock:
            for cg in drift_entries(sha256, self._drift, self._containers):
                key = drift_key(ident, cg)
                if key in self._drifted:
                    continue
                try:
                    self.kernel.drift_file(key)
                except RuntimeError as exc:
                    # The map is full (65,536 file-in-cgroup entries): this file is not judged by its sha256 in
                    # this cgroup (the upper-layer check still is). Said once, not once per file.
                    if not self._drift_refused:
                        log.error("runtime prevention: drift by sha256 not in force for every file: %s", exc)
                        self._drift_refused = True
                    return
                self._drifted[key] = (sha256, cg)
                log.info(
                    "file %s (inode %d) is drift in container %s (cgroup %d) from its next exec",
                    sha256,
                    ident.ino,
                    self._containers[cg],
                    cg,
                )

    def fail(self, error: str) -> None:
        """Prevention is not (or no longer) in force as the service wants: the heartbeat says why."""
        if error != self.error:
            log.error("runtime prevention: %s", error)
        self.error = error
        self._changed()

    def entries(self) -> dict[int, RuleBits]:
        with self._lock:
            return dict(self._entries)
