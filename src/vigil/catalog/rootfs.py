"""A rootfs directory on local disk as a ``FileView``: walked once without
following symlinks, every regular file hashed in place."""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from vigil.catalog.fsview import Entry, FileView, Tree
from vigil.catalog.model import EntryKind
from vigil.catalog.warnings import WarningSink

_CHUNK = 1 << 20


def _sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb", buffering=0) as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


class RootfsView(FileView):
    def __init__(self, root: Path, tree: Tree) -> None:
        super().__init__(tree)
        self.root = root

    def local_path(self, path: str) -> Path:
        entry = self.tree.get(path)
        if entry is None or entry.kind is not EntryKind.FILE:
            raise FileNotFoundError(f"{path}: not a regular file in {self.root}")
        return self.root / path.lstrip("/")

    def open(self, path: str) -> BinaryIO:
        local = self.local_path(path)
        # O_NOFOLLOW: the walk saw a regular file; refuse if it became a link since.
        fd = os.open(local, os.O_RDONLY | os.O_NOFOLLOW)
        return os.fdopen(fd, "rb")


def walk_rootfs(root: Path, warnings: WarningSink, on_file: Callable[[int], None] | None = None) -> RootfsView:
    root = root.resolve()
    if not root.is_dir():
        raise NotADirectoryError(f"{root}: a rootfs must be a directory")
    tree = Tree()
    stack: list[tuple[str, str]] = [(str(root), "/")]
    while stack:
        local_dir, image_dir = stack.pop()
        try:
            scanner = os.scandir(local_dir)
        except OSError as exc:
            warnings.warn(
                image_dir, None, f"directory not readable, its contents are missing from the manifest: {exc.strerror}"
            )
            continue
        with scanner:
            for de in scanner:
                image_path = image_dir.rstrip("/") + "/" + de.name
                try:
                    st = de.stat(follow_symlinks=False)
                except OSError as exc:
                    warnings.warn(image_path, None, f"not readable: {exc.strerror}")
                    continue
                mode = stat.S_IMODE(st.st_mode)
                if stat.S_ISDIR(st.st_mode):
                    tree.put(image_path, Entry(EntryKind.DIRECTORY, mode))
                    stack.append((de.path, image_path))
                elif stat.S_ISLNK(st.st_mode):
                    tree.put(image_path, Entry(EntryKind.SYMLINK, mode, target=os.readlink(de.path)))
                elif stat.S_ISREG(st.st_mode):
                    try:
                        digest = _sha256_file(de.path)
                    except OSError as exc:
                        warnings.warn(image_path, None, f"file not readable, left out of the manifest: {exc.strerror}")
                        continue
                    tree.put(image_path, Entry(EntryKind.FILE, mode, st.st_size, digest))
                    if on_file is not None:
                        on_file(st.st_size)
                else:
                    tree.put(image_path, Entry(EntryKind.OTHER, mode))
    return RootfsView(root, tree)
