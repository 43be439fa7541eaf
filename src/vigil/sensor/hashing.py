"""sha256 of what a process executed and mapped, each file hashed once.

Files are keyed by (device, inode, size, mtime): the kernel reports that
identity for the executed binary in the exec event, so a binary seen before is
known without touching the file system, even after the process has exited.
A new binary is opened through the process (/proc/<pid>/exe), else through
its root (/proc/<pid>/root/<path>), else through another live process of the
same mount namespace; the opened file must have the identity the kernel
reported, so pid reuse or a file replaced since can never yield a wrong hash.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import stat
import struct
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from vigil.sensor.events import ExecEvent, FileIdentity
from vigil.sensor.executables import executable_file_mappings, parse_maps

log = logging.getLogger(__name__)

_CHUNK = 1 << 20
_SYS_OPENAT2 = 437  # the same number on every architecture
_RESOLVE_IN_ROOT = 0x10
_libc = ctypes.CDLL(None, use_errno=True)


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


_READ_FLAGS = os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK


def open_in_root(root: Path, path: str, flags: int = _READ_FLAGS) -> int:
    """Open path as a process whose root is ``root`` sees it.

    Plain open() of /proc/<pid>/root/<path> follows the container's absolute
    symlinks (/bin/sh -> /bin/busybox) from OUR root; openat2(RESOLVE_IN_ROOT)
    resolves them inside the container's root. ``flags`` O_PATH: to stat what is
    there without opening it (a device node or FIFO in the container's files).
    """
    dirfd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        how = _OpenHow(flags, 0, _RESOLVE_IN_ROOT)
        fd: int = _libc.syscall(
            _SYS_OPENAT2, dirfd, path.encode("utf-8", "surrogateescape"), ctypes.byref(how), ctypes.sizeof(how)
        )
        if fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), path)
        return fd
    finally:
        os.close(dirfd)


def identity_of(st: os.stat_result) -> FileIdentity:
    return FileIdentity(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


_PT_INTERP = 3
_PIDS_PER_NAMESPACE = 8
_MAX_NAMESPACES = 16384


def is_static_elf(head: bytes) -> bool:
    """True when ``head`` (a file's first bytes) is a 64-bit little-endian ELF without PT_INTERP.

    Anything else (32-bit, big-endian, headers past ``head``, not ELF) is "not known static",
    so its libraries are still read: a wrong False costs a /proc read, a wrong True a blind spot.
    """
    if len(head) < 64 or head[:4] != b"\x7fELF" or head[4] != 2 or head[5] != 1:
        return False
    (phoff,) = struct.unpack_from("<Q", head, 32)
    phentsize, phnum = struct.unpack_from("<HH", head, 54)
    if phentsize < 4 or phoff + phentsize * phnum > len(head):
        return False
    return all(struct.unpack_from("<I", head, phoff + i * phentsize)[0] != _PT_INTERP for i in range(phnum))


@dataclass(frozen=True)
class HashedFile:
    path: str
    sha256: str


class FileHasher:
    def __init__(self, proc: Path = Path("/proc"), max_entries: int = 65536, max_bytes: int = 1 << 31):
        self.proc = proc
        self._cache: OrderedDict[FileIdentity, str] = OrderedDict()
        self._static: set[FileIdentity] = set()  # cached binaries that are static ELF executables
        self._max = max_entries
        self.max_bytes = max_bytes
        self.hashed = 0  # files actually read, for tests and metrics
        self._mnt_pids: dict[int, list[int]] = {}
        try:
            self._own_mnt_ns: int | None = os.stat(proc / "self" / "ns" / "mnt").st_ino
        except OSError:
            self._own_mnt_ns = None

    # -- the cache -----------------------------------------------------------
    def cached(self, ident: FileIdentity) -> str | None:
        digest = self._cache.get(ident)
        if digest is not None:
            self._cache.move_to_end(ident)
        return digest

    def _remember(self, ident: FileIdentity, digest: str, static_elf: bool = False) -> None:
        self._cache[ident] = digest
        if static_elf:
            self._static.add(ident)
        if len(self._cache) > self._max:
            old, _ = self._cache.popitem(last=False)
            self._static.discard(old)

    def known(self) -> list[tuple[FileIdentity, str]]:
        """Every (identity, sha256) hashed so far and still cached (read from another thread: a copy)."""
        for _ in range(5):
            try:
                return list(self._cache.items())
            except RuntimeError:  # changed during the copy by the drain thread
                continue
        return []

    def may_map_libraries(self, ident: FileIdentity) -> bool:
        """False for a binary known to be a static ELF (no PT_INTERP): it maps no shared libraries."""
        return ident not in self._static

    def hash_fd(self, fd: int) -> tuple[FileIdentity, str] | None:
        """(identity, sha256) of an open regular file, from the cache when known."""
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None
        ident = identity_of(st)
        digest = self.cached(ident)
        if digest is None:
            if st.st_size > self.max_bytes:
                log.warning("not hashing file of %d bytes (over %d): %s", st.st_size, self.max_bytes, ident)
                return None
            h = hashlib.sha256()
            first = os.read(fd, _CHUNK)
            h.update(first)
            while chunk := os.read(fd, _CHUNK):
                h.update(chunk)
            digest = h.hexdigest()
            self.hashed += 1
            self._remember(ident, digest, is_static_elf(first))
        return ident, digest

    def _open_hash(self, path: Path, expect: FileIdentity | None = None, root: Path | None = None) -> str | None:
        try:
            if root is None:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK)
            else:
                fd = open_in_root(root, str(path))
        except OSError:
            return None
        try:
            got = self.hash_fd(fd)
        except OSError:
            return None
        finally:
            os.close(fd)
        if got is None:
            return None
        ident, digest = got
        if expect is not None and (ident.st_dev, ident.ino) != (expect.st_dev, expect.ino):
            return None
        return digest

    # -- processes -----------------------------------------------------------
    def note_process(self, pid: int, mnt_ns: int) -> None:
        """Remember a process of a mount namespace, to read files through it later."""
        if not mnt_ns:
            return
        pids = self._mnt_pids.get(mnt_ns)
        if pids is None:
            pids = self._mnt_pids[mnt_ns] = []
            if len(self._mnt_pids) > _MAX_NAMESPACES:
                del self._mnt_pids[next(iter(self._mnt_pids))]
        # The first processes of a namespace (its init) tend to outlive the rest: keep them.
        # Room is made when one is found gone (``_roots``), not by evicting the oldest: under
        # an exec flood (and without exit events) the newest are the short-lived ones.
        if pid not in pids and len(pids) < _PIDS_PER_NAMESPACE:
            pids.append(pid)

    def forget_process(self, pid: int) -> None:
        for ns, pids in list(self._mnt_pids.items()):
            if pid in pids:
                pids.remove(pid)
                if not pids:
                    del self._mnt_pids[ns]

    def _roots(self, pid: int, mnt_ns: int) -> list[Path]:
        roots = [self.proc / str(pid) / "root"]
        pids = self._mnt_pids.get(mnt_ns, [])
        for p in list(pids):
            if p != pid and not os.path.exists(f"{self.proc}/{p}"):
                pids.remove(p)  # gone: make room for a live one
        roots += [self.proc / str(p) / "root" for p in pids if p != pid]
        if mnt_ns and mnt_ns == self._own_mnt_ns:
            roots.append(Path("/"))
        return roots

    def executed_binary(self, event: ExecEvent, more_pids: Callable[[], list[int]] | None = None) -> str | None:
        """sha256 of the file the kernel loaded for this exec (the interpreter, for #! scripts).
        ``more_pids``: other processes to read it through (the container's cgroup), asked for only
        when the process and those seen in its mount namespace are gone."""
        digest = self.cached(event.file)
        if digest is not None:
            return digest
        pid = event.proc.tgid
        digest = self._open_hash(self.proc / str(pid) / "exe", event.file)
        if digest is not None:
            return digest
        roots = self._roots(pid, event.proc.mnt_ns)
        for root in roots:
            digest = self._open_hash(Path(event.interp), event.file, root=root)
            if digest is not None:
                return digest
        for p in more_pids() if more_pids is not None else []:
            root = self.proc / str(p) / "root"
            if p != pid and root not in roots:
                digest = self._open_hash(Path(event.interp), event.file, root=root)
                if digest is not None:
                    return digest
        log.warning(
            "cannot read executed file %s of pid %d (mnt ns %d): process and namespace gone",
            event.interp,
            pid,
            event.proc.mnt_ns,
        )
        return None

    def file_by_identity(self, ident: FileIdentity, pid: int, mnt_ns: int, path: str, pids: list[int]) -> str | None:
        """sha256 of a file the kernel named by identity after the process that ran it may be gone (a
        killed exec): through /proc/<pid>/exe, else ``path`` in the root of a process of the same mount
        namespace, or of ``pids`` (the container's cgroup); None when no such file is left."""
        digest = self.cached(ident) or self._open_hash(self.proc / str(pid) / "exe", ident)
        if digest is not None or not path.startswith("/"):
            return digest
        for root in self._roots(pid, mnt_ns) + [self.proc / str(p) / "root" for p in pids if p != pid]:
            digest = self._open_hash(Path(path), ident, root=root)
            if digest is not None:
                return digest
        return None

    def file_in_process(self, pid: int, mnt_ns: int, path: str) -> str | None:
        """sha256 of a path as a process sees it (a script), relative paths from its cwd."""
        if not path.startswith("/"):
            try:
                path = os.path.join(os.readlink(self.proc / str(pid) / "cwd"), path)
            except OSError:
                return None
        for root in self._roots(pid, mnt_ns):
            digest = self._open_hash(Path(path), root=root)
            if digest is not None:
                return digest
        return None

    def mapped_libraries(self, pid: int, exe: FileIdentity | None = None) -> list[HashedFile]:
        """Files the process maps executable besides its program, hashed through map_files."""
        try:
            with open(f"{self.proc}/{pid}/maps", "rb") as f:
                maps = parse_maps(f.read().decode("utf-8", "surrogateescape"))
        except OSError:
            return []
        out = []
        for m in executable_file_mappings(maps, exe.ino if exe else None):
            digest = self._open_hash(self.proc / str(pid) / "map_files" / m.map_files_name)
            if digest is not None:
                out.append(HashedFile(m.path, digest))
        return out
