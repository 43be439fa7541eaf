"""An image's file manifest seen as a filesystem: follow symlinks in every path component.

The sensor reports the path a process gave to execve (``/bin/ls``), which may be a symlink
(busybox applets) or go through a symlinked directory (usrmerge: ``/bin -> usr/bin``), while
the manifest holds regular files at their real paths (``/usr/bin/ls``) and symlinks as
entries. Package databases list files the way the package shipped them (dpkg: ``/bin/ls``),
so both sides are resolved to the real path before they are compared.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

# Linux gives up after 40 symlinks in one lookup (ELOOP); so do we.
MAX_SYMLINK_HOPS = 40


@dataclass
class ImageFileSystem:
    """Regular files (path -> sha256) and symlinks (path -> target) of one image."""

    files: Mapping[str, str | None]
    symlinks: Mapping[str, str]
    _by_sha: set[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._by_sha = {sha for sha in self.files.values() if sha}

    def resolve(self, path: str) -> str | None:
        """The real path of the regular file ``path`` names in the image, or None when it
        names no regular file (absent, a directory, a dangling or looping symlink, relative)."""
        if not path.startswith("/"):
            return None
        pending = [p for p in path.split("/") if p and p != "."]
        real: list[str] = []
        hops = 0
        while pending:
            part = pending.pop(0)
            if part == "..":
                if real:
                    real.pop()
                continue
            candidate = "/" + "/".join([*real, part])
            target = self.symlinks.get(candidate)
            if target is None:
                real.append(part)
                continue
            hops += 1
            if hops > MAX_SYMLINK_HOPS:
                return None
            if target.startswith("/"):
                real = []
            pending = [p for p in target.split("/") if p and p != "."] + pending
        final = "/" + "/".join(real)
        return final if final in self.files else None

    def sha256_at(self, real_path: str) -> str | None:
        return self.files.get(real_path)

    def holds_sha256(self, sha256: str) -> bool:
        return sha256 in self._by_sha


def owned_paths(fs: ImageFileSystem, package_files: Iterable[str]) -> set[str]:
    """The real paths of the regular files a package lists (symlinks it ships resolve to their targets)."""
    out = set()
    for f in package_files:
        f = f if f.startswith("/") else "/" + f
        real = fs.resolve(f)
        out.add(real if real is not None else posixpath.normpath(f))
    return out
