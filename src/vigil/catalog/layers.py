"""Apply image layers, in order, into a ``Tree`` without extracting them.

Each layer is read once, as a stream: the blob is hashed while it is
decompressed, each regular file is hashed while its tar member is read, and
only the files some cataloger asked for (package databases, metadata, ELF
executables, archives) are spooled to the work dir. Whiteouts (``.wh.NAME``)
and opaque directories (``.wh..wh..opq``) hide what lower layers wrote, per the
OCI image spec: never what the same layer wrote.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import shutil
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, Self

from vigil.catalog.compression import HashingReader, open_decompressed
from vigil.catalog.fsview import Entry, FileView, Tree, parent_of
from vigil.catalog.limits import LimitExceeded, ScanBudget, limit_text
from vigil.catalog.model import EntryKind, LayerRecord
from vigil.catalog.warnings import WarningSink

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
HEAD_SIZE = 4096
_CHUNK = 1 << 20

# (path, mode, first bytes) -> keep the file's bytes for the catalogers?
KeepRule = Callable[[str, int, bytes], bool]
ProgressHook = Callable[[int], None]  # compressed bytes read so far


class UnsafePath(ValueError):
    pass


class _CorruptHeader(Exception):
    """A tar header past the first that does not parse. tarfile itself stops there and reports a
    normal end of archive, so the rest of the layer would vanish without a word."""

    def __init__(self, offset: int, reason: str) -> None:
        super().__init__(f"offset {offset}: {reason}")
        self.offset = offset
        self.reason = reason


# Not in typeshed, but part of tarfile since Python 3.2.
_END_OF_ARCHIVE = (tarfile.EOFHeaderError, tarfile.EmptyHeaderError)  # type: ignore[attr-defined]


class _CheckedTarInfo(tarfile.TarInfo):
    max_header = 1 << 20  # set per scan (a subclass per layer): tarfile reads a whole extended header at once

    def _check_header_size(self) -> None:
        if self.size > self.max_header:
            raise LimitExceeded(
                "max_header_bytes", self.max_header, f"a {self.size}-byte extended tar header at offset {self.offset}"
            )

    def _proc_pax(self, tarfile_: tarfile.TarFile) -> tarfile.TarInfo:
        self._check_header_size()
        return super()._proc_pax(tarfile_)  # type: ignore[misc, no-any-return]

    def _proc_gnulong(self, tarfile_: tarfile.TarFile) -> tarfile.TarInfo:
        self._check_header_size()
        return super()._proc_gnulong(tarfile_)  # type: ignore[misc, no-any-return]

    @classmethod
    def fromtarfile(cls, tarfile_: tarfile.TarFile) -> Self:
        offset = tarfile_.offset  # where this header starts in the uncompressed tar
        try:
            return super().fromtarfile(tarfile_)
        except _END_OF_ARCHIVE:
            raise  # the end-of-archive blocks, or the stream's end: a real end
        except tarfile.HeaderError as exc:
            if offset == 0:
                raise  # not a tar at all: the layer fails as before
            raise _CorruptHeader(offset, str(exc) or type(exc).__name__) from None


def normalize_member_path(name: str) -> tuple[str, bool]:
    """A tar member name as an absolute image path. Returns (path, was_absolute).
    Raises UnsafePath on a ``..`` component: such a member could only have
    been written to escape the root."""
    was_absolute = name.startswith("/")
    parts = []
    for part in name.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            raise UnsafePath("a '..' component")
        parts.append(part)
    return "/" + "/".join(parts), was_absolute


class LayeredView(FileView):
    def __init__(self, tree: Tree, workdir: Path) -> None:
        super().__init__(tree)
        self.workdir = workdir

    def open(self, path: str) -> BinaryIO:
        return self.local_path(path).open("rb")

    def local_path(self, path: str) -> Path:
        entry = self.tree.get(path)
        if entry is None or entry.kind is not EntryKind.FILE or entry.stored is None:
            raise FileNotFoundError(f"{path}: not kept from the image layers")
        return entry.stored


class LayerApplier:
    def __init__(self, keep: KeepRule, workdir: Path, warnings: WarningSink, budget: ScanBudget | None = None) -> None:
        self.keep = keep
        self.workdir = workdir
        self.warnings = warnings
        self.budget = budget or ScanBudget()
        self.stopped: LimitExceeded | None = None  # a limit for the whole scan: no more layers are read
        self.truncated = False  # the last layer was cut short by a limit
        self.tree = Tree()
        self._stored = 0
        self.layers: list[LayerRecord] = []

    def view(self) -> LayeredView:
        return LayeredView(self.tree, self.workdir)

    def apply(self, media_type: str, blob: BinaryIO, progress: ProgressHook | None = None) -> LayerRecord:
        index = len(self.layers)
        compressed = HashingReader(blob, progress)
        uncompressed = HashingReader(open_decompressed(media_type, compressed))
        layer_name = f"layer {index} ({media_type})"
        count = 0
        broken: tuple[int, str] | None = None  # (offset, reason) where reading the tar stopped early
        limited: LimitExceeded | None = None
        tarinfo = type("_LimitedTarInfo", (_CheckedTarInfo,), {"max_header": self.budget.limits.max_header_bytes})
        try:
            with tarfile.open(fileobj=uncompressed, mode="r|", tarinfo=tarinfo) as tar:
                member_at = 0  # header offset of the member read last: the one whose data ran short
                try:
                    for member in tar:
                        count += 1
                        member_at = member.offset
                        self._apply_member(tar, member, index, layer_name)
                except _CorruptHeader as exc:
                    broken = (exc.offset, f"corrupt tar header ({exc.reason})")
                except tarfile.ReadError as exc:
                    broken = (member_at, f"unreadable tar member ({exc})")
        except LimitExceeded as exc:
            limited = exc
        if limited is not None:
            # Not drained: the rest of a hostile layer is what the limit keeps from being read.
            self.warnings.warn_incomplete(
                f"layer {index} ({media_type})", None, f"{limited}; the rest of the layer was not read"
            )
            if limited.name != "max_header_bytes":
                self.stopped = limited
        else:
            uncompressed.drain()  # tar padding after the end-of-archive blocks (or what was not read)
            compressed.drain()
        if broken is not None:
            offset, reason = broken
            self.warnings.warn_incomplete(
                f"layer {index} ({compressed.digest})",
                None,
                f"{reason} at offset {offset} of the uncompressed tar; the rest of the layer was not read, "
                "so the scan is incomplete",
            )
        record = LayerRecord(
            index=index,
            media_type=media_type,
            digest=compressed.digest,
            diff_id=uncompressed.digest,
            size=compressed.count,
            entries=count,
        )
        self.truncated = limited is not None  # the digests cover only what was read
        self.layers.append(record)
        return record

    # -- one tar member -------------------------------------------------------

    def _apply_member(self, tar: tarfile.TarFile, m: tarfile.TarInfo, layer: int, layer_name: str) -> None:
        self.budget.count_file(m.name)
        try:
            path, was_absolute = normalize_member_path(m.name)
        except UnsafePath as exc:
            self.warnings.warn(layer_name, m.name, f"tar member skipped: {exc} in its path")
            return
        if was_absolute:
            self.warnings.warn(layer_name, m.name, "tar member has an absolute path; read relative to the image root")
        if path == "/":
            if m.isdir():
                self.tree.entries["/"].mode = m.mode
            return
        directory, base = posixpath.split(path)
        if base == OPAQUE_MARKER:
            self._ensure_dir(directory, layer)
            self.tree.remove_children(directory, below_layer=layer)
            return
        if base.startswith(WHITEOUT_PREFIX):
            name = base[len(WHITEOUT_PREFIX) :]
            if name in ("", ".", ".."):
                # ".wh." would hide the directory holding it, at the top the image root itself.
                self.warnings.warn(layer_name, m.name, f"whiteout skipped: it names no entry of {directory}")
                return
            hidden = posixpath.join(directory, name)
            self.tree.remove(hidden, below_layer=layer)
            return

        self._ensure_dir(directory, layer)
        existing = self.tree.get(path)
        if m.isdir():
            if existing is not None and existing.kind is EntryKind.DIRECTORY:
                existing.mode, existing.layer = m.mode, layer
                return
            self._replace(path, Entry(EntryKind.DIRECTORY, m.mode, layer=layer))
        elif m.issym():
            self._replace(path, Entry(EntryKind.SYMLINK, m.mode, target=m.linkname, layer=layer))
        elif m.islnk():
            self._hardlink(path, m, layer, layer_name)
        elif m.isreg():
            self._regular(tar, m, path, layer)
        else:
            self._replace(path, Entry(EntryKind.OTHER, m.mode, layer=layer))

    def _replace(self, path: str, entry: Entry) -> None:
        if path in self.tree.entries:
            self.tree.remove(path)
        self.tree.put(path, entry)

    def _ensure_dir(self, directory: str, layer: int) -> None:
        missing = []
        d = directory
        while d != "/":
            e = self.tree.get(d)
            if e is not None and e.kind is EntryKind.DIRECTORY:
                break
            missing.append(d)
            d = parent_of(d)
        for d in reversed(missing):
            # Overlay semantics: a directory in an upper layer hides a
            # non-directory (e.g. a symlink) of the same name below it.
            self._replace(d, Entry(EntryKind.DIRECTORY, 0o755, layer=layer))

    def _regular(self, tar: tarfile.TarFile, m: tarfile.TarInfo, path: str, layer: int) -> None:
        limit = self.budget.limits.max_file_bytes
        if m.size > limit:
            # A sparse member is counted by its real size: a few KiB of tar can claim gigabytes.
            self.budget.read_bytes(_stored_size(m), path)  # tarfile still reads past its data
            self.warnings.warn_incomplete(
                f"layer {layer}",
                m.name,
                f"file of {m.size} bytes skipped: over the limit {limit_text('max_file_bytes', limit)}",
            )
            if path in self.tree.entries:
                self.tree.remove(path)
            return
        self.budget.read_bytes(m.size, path)
        src = tar.extractfile(m)
        assert src is not None
        digest = hashlib.sha256()
        head = src.read(min(HEAD_SIZE, m.size)) if m.size else b""
        digest.update(head)
        stored: Path | None = None
        if self.keep(path, m.mode, head):
            self.budget.store_bytes(m.size, path)
            self._stored += 1
            stored = self.workdir / f"{self._stored:08d}"
            with stored.open("wb") as out:
                out.write(head)
                while chunk := src.read(_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
        else:
            while chunk := src.read(_CHUNK):
                digest.update(chunk)
        self._replace(path, Entry(EntryKind.FILE, m.mode, m.size, digest.hexdigest(), layer=layer, stored=stored))

    def _hardlink(self, path: str, m: tarfile.TarInfo, layer: int, layer_name: str) -> None:
        try:
            target, _ = normalize_member_path(m.linkname)
        except UnsafePath as exc:
            self.warnings.warn(layer_name, m.name, f"hard link skipped: {exc} in its target {m.linkname!r}")
            return
        src = self.tree.get(target)
        if src is None or src.kind is not EntryKind.FILE:
            self.warnings.warn(
                layer_name, m.name, f"hard link skipped: target {target} is not a regular file in the image"
            )
            return
        # A link reads no bytes from the layer and writes none: its kept copy is a hard link in the
        # work dir too (a name of its own, so a later whiteout of the source leaves it), and neither
        # counts against the byte limits. Fifty links to one large file cost its bytes once.
        stored = None
        if src.stored is not None:
            self._stored += 1
            stored = self.workdir / f"{self._stored:08d}"
            try:
                os.link(src.stored, stored)
            except OSError:  # a work dir on a file system without hard links: a copy, counted as one
                self.budget.store_bytes(src.size, path)
                shutil.copyfile(src.stored, stored)
        self._replace(path, Entry(EntryKind.FILE, src.mode, src.size, src.sha256, layer=layer, stored=stored))


def _stored_size(m: tarfile.TarInfo) -> int:
    """Bytes a member takes in the tar: a sparse member's data blocks only."""
    sparse = getattr(m, "sparse", None)
    if sparse:
        return sum(length for _offset, length in sparse)
    return m.size
