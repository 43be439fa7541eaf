"""Watched paths: which file accesses the kernel reports, as prefix tables it matches.

The kernel matches an access's absolute path against one longest-prefix-match
table (``watch_paths`` in bpf/vigil.bpf.c). A prefix ending in ``/`` watches
everything under it; any other entry watches that exact path. Because the
kernel finds only the longest matching entry, each entry carries the flags of
every shorter prefix that covers it (``/etc/shadow`` is read-watched itself and
write-watched through ``/etc/``). ``/proc/`` is special: the kernel reports reads
under it only for a ``/proc/<pid>/environ`` path.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

WATCH_WRITE, WATCH_READ, WATCH_PROC = 1, 2, 4
PATH_LEN = 256  # the kernel's path buffer, NUL included

WRITE_WATCHED: tuple[str, ...] = (
    "/bin/",
    "/sbin/",
    "/usr/bin/",
    "/usr/sbin/",
    "/usr/local/bin/",
    "/usr/local/sbin/",
    "/lib/",
    "/lib64/",
    "/usr/lib/",
    "/usr/lib64/",
    "/usr/local/lib/",
    "/etc/",
    "/proc/sys/",
    "/sys/kernel/",
    "/sys/fs/cgroup/",
    "/proc/sysrq-trigger",
    "/root/.ssh/",
)
READ_WATCHED: tuple[str, ...] = (
    "/etc/shadow",
    "/etc/gshadow",
    "/etc/sudoers",
    "/etc/ssl/private/",
    "/root/.ssh/",
    "/var/run/secrets/kubernetes.io/serviceaccount/",
    "/run/secrets/kubernetes.io/serviceaccount/",
)
PROC_PREFIX = "/proc/"


@dataclass(frozen=True)
class WatchEntry:
    """One row of the kernel's table."""

    path: str
    prefix_flags: int
    exact_flags: int


def _check(path: str) -> None:
    if not path.startswith("/") or len(path.encode()) >= PATH_LEN:
        raise ValueError(f"watched path {path!r} must be absolute and shorter than {PATH_LEN} bytes")


def watch_entries(write: tuple[str, ...] = WRITE_WATCHED, read: tuple[str, ...] = READ_WATCHED) -> list[WatchEntry]:
    own: dict[str, list[int]] = {}  # path -> [prefix flags, exact flags]
    for paths, flag in ((write, WATCH_WRITE), (read, WATCH_READ)):
        for p in paths:
            _check(p)
            slot = own.setdefault(p, [0, 0])
            slot[0 if p.endswith("/") else 1] |= flag
    own.setdefault(PROC_PREFIX, [0, 0])[0] |= WATCH_PROC
    out = []
    for path, (prefix, exact) in own.items():
        inherited = 0
        for other, (oprefix, _) in own.items():
            if other != path and other.endswith("/") and path.startswith(other):
                inherited |= oprefix
        out.append(WatchEntry(path, prefix | inherited, exact))
    return sorted(out, key=lambda e: e.path)


def watches(path: str, paths: frozenset[str]) -> bool:
    """Whether ``paths`` (a trailing ``/``: everything under it) covers ``path``."""
    if path in paths:
        return True
    i = path.rfind("/")
    while i > 0:
        if path[: i + 1] in paths:
            return True
        i = path.rfind("/", 0, i)
    return False


def flags_of(path: str, entries: list[WatchEntry]) -> int:
    """What the kernel's table says of path (for paths user space had to resolve itself)."""
    best: WatchEntry | None = None
    for e in entries:
        if path.startswith(e.path) and (best is None or len(e.path) > len(best.path)):
            best = e
    if best is None:
        return 0
    flags = best.prefix_flags | (best.exact_flags if best.path == path else 0)
    if flags & WATCH_PROC and path.endswith("/environ"):
        flags |= WATCH_READ
    return flags


def normalise(path: str, cwd: str | None) -> str | None:
    """An absolute, normalised form of path (relative ones against cwd); None when unknown."""
    if not path.startswith("/"):
        if cwd is None:
            return None
        path = posixpath.join(cwd, path)
    out = posixpath.normpath(path)
    return "/" + out.lstrip("/")
