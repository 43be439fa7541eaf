"""The final filesystem of an image, as a tree of entries.

Catalogers read the image through a ``FileView``: the entries (path -> kind,
mode, size, sha256, link target) of the final filesystem, and ``open`` for the
contents of the files they asked to keep. The same interface serves a rootfs
directory (contents read in place) and applied layers (contents of kept files
spooled to a work dir), so catalogers never care which one they get.

Paths are absolute and normalized ("/usr/bin/ls"); "/" is the root directory.
"""

from __future__ import annotations

import posixpath
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from vigil.catalog.model import EntryKind, FileManifest, FileRecord, SymlinkRecord

_MAX_SYMLINK_HOPS = 40  # the kernel's own limit (MAXSYMLINKS)


@dataclass(slots=True)
class Entry:
    kind: EntryKind
    mode: int = 0
    size: int = 0
    sha256: str | None = None
    target: str | None = None  # symlink target, verbatim
    layer: int = -1  # index of the layer that last wrote it (-1: rootfs)
    stored: Path | None = None  # where a kept file's bytes are (layers only)


def parent_of(path: str) -> str:
    return posixpath.dirname(path) or "/"


class Tree:
    """A path -> entry map with a children index, so subtrees can be removed
    (whiteouts, a file replacing a directory) without scanning every path."""

    def __init__(self) -> None:
        self.entries: dict[str, Entry] = {"/": Entry(EntryKind.DIRECTORY, 0o755)}
        self.children: dict[str, set[str]] = {"/": set()}

    def get(self, path: str) -> Entry | None:
        return self.entries.get(path)

    def put(self, path: str, entry: Entry) -> None:
        self.entries[path] = entry
        if entry.kind is EntryKind.DIRECTORY:
            self.children.setdefault(path, set())
        if path != "/":
            self.children.setdefault(parent_of(path), set()).add(path)

    def iter_subtree(self, path: str) -> Iterator[str]:
        stack = [path]
        while stack:
            p = stack.pop()
            yield p
            stack.extend(self.children.get(p, ()))

    def remove(self, path: str, below_layer: int | None = None) -> bool:
        """Remove ``path`` and everything under it; with ``below_layer``, only
        what lower layers wrote. Returns True when ``path`` itself is gone."""
        if path not in self.entries:
            return True
        # Iterative, children before parents: a hostile layer can nest directories thousands deep.
        kept: set[str] = set()  # directories that stay because something under them stays
        for p in reversed(list(self.iter_subtree(path))):
            entry = self.entries.get(p)
            if entry is None:
                continue
            if p in kept or (below_layer is not None and entry.layer >= below_layer):
                kept.add(parent_of(p))
                continue
            self._drop(p, entry)
        return path not in self.entries

    def remove_children(self, path: str, below_layer: int | None = None) -> None:
        for child in list(self.children.get(path, ())):
            self.remove(child, below_layer)

    def _drop(self, path: str, entry: Entry) -> None:
        if entry.stored is not None:
            entry.stored.unlink(missing_ok=True)
        del self.entries[path]
        self.children.pop(path, None)
        if path != "/":
            siblings = self.children.get(parent_of(path))
            if siblings is not None:
                siblings.discard(path)


class FileView(ABC):
    """Read access to the final filesystem of an image."""

    def __init__(self, tree: Tree) -> None:
        self.tree = tree

    @property
    def entries(self) -> dict[str, Entry]:
        return self.tree.entries

    def iter_files(self) -> Iterator[tuple[str, Entry]]:
        for path, entry in self.tree.entries.items():
            if entry.kind is EntryKind.FILE:
                yield path, entry

    def listdir(self, path: str) -> list[str]:
        return sorted(self.tree.children.get(path, ()))

    def is_dir(self, path: str) -> bool:
        e = self.tree.get(path)
        return e is not None and e.kind is EntryKind.DIRECTORY

    def resolve(self, path: str) -> str | None:
        """Follow symlinks the way the kernel would inside a chroot: absolute
        targets start at the image root, ``..`` stops at the root. Returns the
        final path, or None when it does not exist or loops."""
        parts = [p for p in path.split("/") if p]
        current = "/"
        hops = 0
        while parts:
            name = parts.pop(0)
            if name == ".":
                continue
            if name == "..":
                current = parent_of(current)
                continue
            candidate = posixpath.join(current, name)
            entry = self.tree.get(candidate)
            if entry is None:
                return None
            if entry.kind is EntryKind.SYMLINK:
                hops += 1
                if hops > _MAX_SYMLINK_HOPS or not entry.target:
                    return None
                target = entry.target
                if target.startswith("/"):
                    current = "/"
                parts = [p for p in target.split("/") if p] + parts
                continue
            current = candidate
        return current

    def regular_file(self, path: str) -> str | None:
        """``path`` resolved to a regular file, or None."""
        real = self.resolve(path)
        if real is None:
            return None
        entry = self.tree.get(real)
        return real if entry is not None and entry.kind is EntryKind.FILE else None

    def read_bytes(self, path: str, limit: int = 64 * 1024 * 1024) -> bytes:
        with self.open(path) as f:
            data = f.read(limit + 1)
        if len(data) > limit:
            raise ValueError(f"{path}: larger than {limit} bytes, not read into memory")
        return data

    @abstractmethod
    def open(self, path: str) -> BinaryIO:
        """The contents of the regular file at ``path`` (no symlink following).
        Raises FileNotFoundError when the view has not kept its bytes."""

    @abstractmethod
    def local_path(self, path: str) -> Path:
        """A path on the local disk holding the bytes (for sqlite, zipfile)."""

    def manifest(self) -> FileManifest:
        out = FileManifest()
        for path, entry in self.tree.entries.items():
            if entry.kind is EntryKind.FILE:
                assert entry.sha256 is not None
                out.files[path] = FileRecord(path, entry.sha256, entry.size, entry.mode & 0o7777)
            elif entry.kind is EntryKind.SYMLINK:
                out.symlinks[path] = SymlinkRecord(path, entry.target or "")
        return out
