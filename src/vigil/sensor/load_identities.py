"""Package files by identity: each file of a container's load watch as (device, inode) in the kernel's ``load_files``.

The kernel's path tables see an open only by the path it was opened by: a hard link or another bind mount of a
watched file opens it by another path. So each container's watched paths are resolved to the identities of the
files they name, through the root of a live process of that container (openat2 ``RESOLVE_IN_ROOT``, as the hasher
reads a container's files: its absolute symlinks resolve inside it), a watched directory walked for its regular
files, and entered per container cgroup (struct load_key in bpf/vigil.bpf.c). The kernel then reports an open for
read of such a file from that cgroup whatever its path, checked before any path is built; user space names it by
the watched path it was resolved from (``path_of``).

Until a container's identities are known (no process of it was running, or none whose root could be read),
its paths stay its only match (vigil.sensor.load_watch), and the kernel's event of such a path match carries the
file's identity as the kernel has it, which is entered then (``learn``): also where the device numbers ``stat``
gives differ from the kernel's (overlayfs with layers on several file systems and no ``xino``).

The set follows the policy: a container's entries are resolved again when its paths change, removed when they
leave its load watch or its cgroup goes. Resolution runs in its own thread, never on the drain path.

Bounded, as the files read are the container's (untrusted): ``MAX_FILES_PER_CONTAINER`` identities and
``MAX_WALK_ENTRIES`` directory entries visited per resolution, directories ``MAX_DEPTH`` deep, and the kernel's
65,536 entries for the node; past a bound, the rest stays matched by path, said once in the log.
"""

from __future__ import annotations

import logging
import os
import stat
import struct
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Protocol

from vigil.sensor.activity import RUNTIME_INIT_COMMS
from vigil.sensor.cgroups import cgroup_procs
from vigil.sensor.enforcer import container_cgroup_dirs
from vigil.sensor.events import st_dev_to_kernel_dev
from vigil.sensor.hashing import open_in_root
from vigil.sensor.watch import watches

log = logging.getLogger(__name__)

MAX_FILES_PER_CONTAINER = 4096
MAX_WALK_ENTRIES = 50_000
MAX_DEPTH = 16
# A container seen before its workload runs (the runtime's init is still on the host's root): tried again after
# these delays, in seconds.
RETRY_DELAYS = (0.2, 0.5, 1.0, 2.0, 5.0, 10.0)
_LOAD_KEY = struct.Struct("<QQII")  # struct load_key: cgroup id, inode, device (kernel encoding), padding

Identity = tuple[int, int]  # (st_dev, st_ino)


class LoadFiles(Protocol):
    def set_load_file(self, key: bytes) -> None: ...
    def clear_load_file(self, key: bytes) -> None: ...


def load_key(cgroup_id: int, ident: Identity) -> bytes:
    """A file identity in one cgroup as the kernel's struct load_key."""
    st_dev, ino = ident
    return _LOAD_KEY.pack(cgroup_id, ino, st_dev_to_kernel_dev(st_dev), 0)


def resolve_paths(
    root: Path, paths: Iterable[str], max_files: int = MAX_FILES_PER_CONTAINER, max_entries: int = MAX_WALK_ENTRIES
) -> dict[Identity, str]:
    """The regular files ``paths`` name as seen from ``root``: identity -> path. An exact path names that file; a
    path ending in ``/`` every regular file under it (symbolic links are not followed, nothing is opened for
    reading). A path that is not there is skipped. Raises OSError when ``root`` itself cannot be opened."""
    os.close(os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC))
    out: dict[Identity, str] = {}
    budget = max_entries
    for path in sorted(paths):
        if len(out) >= max_files or budget <= 0:
            break
        try:
            fd = open_in_root(root, path.rstrip("/") or "/", os.O_PATH | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            st = os.fstat(fd)
            if not path.endswith("/"):
                if stat.S_ISREG(st.st_mode):
                    out.setdefault((st.st_dev, st.st_ino), path)
                continue
            if stat.S_ISDIR(st.st_mode):
                budget = _walk(fd, path, out, max_files, budget)
        finally:
            os.close(fd)
    return out


def _walk(fd: int, base: str, out: dict[Identity, str], max_files: int, budget: int) -> int:
    """Adds the regular files under the directory ``fd`` (named ``base``, ending in ``/``); returns the budget left."""
    try:
        for dirpath, dirnames, filenames, dirfd in os.fwalk(".", dir_fd=fd, follow_symlinks=False):
            rel = dirpath[2:]  # "./a/b" -> "a/b"
            depth = rel.count("/") + 1 if rel else 0
            dirnames.sort()
            if depth >= MAX_DEPTH:
                dirnames.clear()
            for name in sorted(filenames):
                budget -= 1
                if budget <= 0 or len(out) >= max_files:
                    return budget
                try:
                    st = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
                except OSError:
                    continue
                if stat.S_ISREG(st.st_mode):
                    out.setdefault((st.st_dev, st.st_ino), f"{base}{rel}/{name}" if rel else f"{base}{name}")
            budget -= len(dirnames)
            if budget <= 0:
                return budget
    except OSError:
        pass  # a directory removed during the walk: what was found stays
    return budget


class LoadIdentities:
    def __init__(
        self,
        kernel: LoadFiles,
        cgroup_root: Path | None,
        *,
        default_runtime: str = "containerd",
        proc: Path = Path("/proc"),
        max_files: int = MAX_FILES_PER_CONTAINER,
    ) -> None:
        self.kernel = kernel
        self.cgroup_root = cgroup_root
        self.default_runtime = default_runtime
        self.proc = proc
        self.max_files = max_files
        self._host_mnt_ns = self._mnt_ns("1")
        self._lock = threading.Lock()  # the entries, and the kernel's map that mirrors them
        self._entries: dict[int, dict[Identity, str]] = {}  # cgroup id -> what load_files holds for it
        self._resolved: dict[int, frozenset[str]] = {}  # cgroup id -> the paths its entries were resolved from
        self._wanted: dict[str, frozenset[str]] = {}  # container ref -> its watched paths
        self._refused = False  # the kernel refused an entry (its map is full): said once
        # Work for the resolver thread: a full pass (a new policy) and cgroups to resolve (a container seen).
        self._work = threading.Condition()
        self._full = False
        self._pending: set[int] = set()
        self._retry: dict[int, tuple[int, float]] = {}  # cgroup id -> (attempts made, when to try again)
        self._busy = False
        self._stop = False
        self._thread: threading.Thread | None = None

    # -- requests (any thread) ---------------------------------------------------
    def want(self, wanted: Mapping[str, frozenset[str]]) -> None:
        """The load watch of every container (ref -> paths): resolved in the background."""
        with self._work:
            self._wanted = dict(wanted)
            self._full = True
            self._start()
            self._work.notify()

    def note_container(self, cgroup_id: int, ref: str | None) -> None:
        """A container cgroup seen in an event (a container started after the policy): resolved if it has a load
        watch and no identities yet."""
        if ref is None or ref not in self._wanted or cgroup_id in self._resolved:
            return
        with self._work:
            self._pending.add(cgroup_id)
            self._start()
            self._work.notify()

    def settle(self, timeout: float = 30.0) -> bool:
        """Wait until every request made so far is done (tests, benchmarks); False on timeout."""
        with self._work:
            return self._work.wait_for(lambda: not (self._full or self._pending or self._busy), timeout)

    def close(self) -> None:
        with self._work:
            self._stop = True
            self._work.notify_all()
        if self._thread is not None:
            self._thread.join(10)

    # -- lookups (the drain thread) -----------------------------------------------
    def path_of(self, cgroup_id: int, ident: Identity) -> str | None:
        """The watched path a file identity was entered under for this cgroup; None when it is not (any more)."""
        return self._entries.get(cgroup_id, {}).get(ident)

    def learn(self, cgroup_id: int, ref: str | None, ident: Identity, path: str) -> None:
        """A watched path of this container opened, matched by path, with the file's identity as the kernel has
        it: entered, so the next open of the file by any path matches by identity."""
        if ref is None or not ident[1] or ident in self._entries.get(cgroup_id, {}):
            return
        paths = self._wanted.get(ref)
        if paths is None or not watches(path, paths):
            return
        with self._lock:
            have = self._entries.setdefault(cgroup_id, {})
            if len(have) < self.max_files and self._enter(cgroup_id, ident):
                have[ident] = path
        if cgroup_id not in self._resolved:
            self.note_container(cgroup_id, ref)

    def entries(self) -> dict[int, dict[Identity, str]]:
        with self._lock:
            return {cg: dict(e) for cg, e in self._entries.items()}

    # -- the resolver thread -------------------------------------------------------
    def _start(self) -> None:
        if self._thread is None and not self._stop:
            self._thread = threading.Thread(target=self._run, name="vigil-load-identities", daemon=True)
            self._thread.start()

    def _due(self) -> bool:
        now = time.monotonic()
        for cg, (_n, at) in list(self._retry.items()):
            if at <= now:
                self._pending.add(cg)
        return self._stop or self._full or bool(self._pending)

    def _next_retry(self) -> float | None:
        if not self._retry:
            return None
        return max(0.0, min(at for _n, at in self._retry.values()) - time.monotonic())

    def _run(self) -> None:
        while True:
            with self._work:
                while not self._due():
                    self._work.wait(self._next_retry())
                if self._stop:
                    return
                full, self._full = self._full, False
                pending, self._pending = self._pending, set()
                wanted = self._wanted
                self._busy = True
            try:
                self._pass(wanted, full, pending)
            except Exception:
                log.exception("package file identities not resolved; their paths still match")
            finally:
                with self._work:
                    self._busy = False
                    self._work.notify_all()

    def _pass(self, wanted: Mapping[str, frozenset[str]], full: bool, pending: set[int]) -> None:
        dirs = container_cgroup_dirs(self.cgroup_root, self.default_runtime)
        if full:
            for cg in list(self._entries):
                ref = dirs[cg][0] if cg in dirs else None
                if ref not in wanted:
                    self._drop(cg)
            todo = [cg for cg, (ref, _) in dirs.items() if ref in wanted and self._resolved.get(cg) != wanted[ref]]
        else:
            todo = [cg for cg in pending if cg in dirs and dirs[cg][0] in wanted and cg not in self._resolved]
        for cg in sorted(todo):
            ref, directory = dirs[cg]
            self._resolve(cg, ref, directory, wanted[ref])

    def _drop(self, cg: int) -> None:
        with self._lock:
            for ident in self._entries.pop(cg, {}):
                self.kernel.clear_load_file(load_key(cg, ident))
            self._resolved.pop(cg, None)
        with self._work:
            self._retry.pop(cg, None)

    def _resolve(self, cg: int, ref: str, directory: Path, paths: frozenset[str]) -> None:
        found = None
        for pid in cgroup_procs(directory):
            if not self._usable(pid):
                continue
            try:
                found = resolve_paths(self.proc / str(pid) / "root", paths, self.max_files)
                break
            except OSError:
                continue  # gone meanwhile: the next one
        with self._lock:
            have = self._entries.setdefault(cg, {})
            # Entries (resolved or learned) whose path is no longer watched go; with no process to read the files
            # through, the rest stay as they were.
            keep = {i: p for i, p in have.items() if watches(p, paths)}
            new = {**keep, **(found or {})}
            if len(new) > self.max_files:
                new = dict(sorted(new.items(), key=lambda kv: kv[1])[: self.max_files])
            for ident in [i for i in have if i not in new]:
                self.kernel.clear_load_file(load_key(cg, ident))
                del have[ident]
            for ident, path in new.items():
                if ident not in have and self._enter(cg, ident):
                    have[ident] = path
                elif ident in have:
                    have[ident] = path
            if found is not None:
                self._resolved[cg] = paths
            count = len(have)
        with self._work:
            attempts = self._retry.pop(cg, (0, 0.0))[0]
            if found is None and attempts < len(RETRY_DELAYS):
                self._retry[cg] = (attempts + 1, time.monotonic() + RETRY_DELAYS[attempts])
        if found is None:
            log.info("container %s (cgroup %d): no process to resolve its package files through yet", ref, cg)
        else:
            log.info("container %s (cgroup %d): %d package files watched by identity", ref, cg, count)

    def _enter(self, cg: int, ident: Identity) -> bool:
        try:
            self.kernel.set_load_file(load_key(cg, ident))
        except RuntimeError as exc:
            if not self._refused:
                log.error("package loads: not every package file is watched by identity (paths still are): %s", exc)
                self._refused = True
            return False
        return True

    def _mnt_ns(self, pid: str) -> int | None:
        try:
            return os.stat(self.proc / pid / "ns" / "mnt").st_ino
        except OSError:
            return None

    def _usable(self, pid: int) -> bool:
        """Whether a process's root is its container's: not the runtime's init still on the host's root."""
        try:
            comm = (self.proc / str(pid) / "comm").read_text().strip()
        except OSError:
            return False
        if comm.startswith(RUNTIME_INIT_COMMS):
            return False
        ns = self._mnt_ns(str(pid))
        return ns is not None and ns != self._host_mnt_ns
