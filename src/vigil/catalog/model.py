"""What the catalog tells about an image: its files, its packages, its OS.

Plain dataclasses (DESIGN.md section 7: dataclasses inside); ``to_dict`` gives
the JSON form used by the CLI and, later, the wire models.
"""

from __future__ import annotations

import enum
import stat
from dataclasses import asdict, dataclass, field
from typing import Any


class EntryKind(str, enum.Enum):
    FILE = "file"
    SYMLINK = "symlink"
    DIRECTORY = "dir"
    OTHER = "other"  # devices, fifos: present in the tree, not in the manifest


@dataclass(frozen=True, slots=True)
class FileRecord:
    """One regular file of the final image filesystem."""

    path: str  # absolute, normalized: "/usr/bin/ls"
    sha256: str
    size: int
    mode: int  # permission bits, e.g. 0o755

    @property
    def executable(self) -> bool:
        return bool(self.mode & (stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH))

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "sha256": self.sha256,
            "size": self.size,
            "mode": f"{self.mode:04o}",
            "executable": self.executable,
        }


@dataclass(frozen=True, slots=True)
class SymlinkRecord:
    path: str
    target: str  # as stored in the link, not resolved

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "target": self.target}


@dataclass(slots=True)
class FileManifest:
    files: dict[str, FileRecord] = field(default_factory=dict)
    symlinks: dict[str, SymlinkRecord] = field(default_factory=dict)

    def by_sha256(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for rec in self.files.values():
            out.setdefault(rec.sha256, []).append(rec.path)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "files": [self.files[p].to_dict() for p in sorted(self.files)],
            "symlinks": [self.symlinks[p].to_dict() for p in sorted(self.symlinks)],
        }


@dataclass(frozen=True, slots=True)
class OSRelease:
    id: str
    version_id: str | None = None
    version_codename: str | None = None
    id_like: tuple[str, ...] = ()
    pretty_name: str | None = None
    source_file: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["id_like"] = list(self.id_like)
        return d


@dataclass(slots=True)
class Package:
    """A package found in the image.

    ``type`` is the purl type (deb, apk, rpm, pypi, npm, golang, maven);
    ``ecosystem`` is the OSV ecosystem advisories are matched in, or None when
    the OS is unknown for an OS package.
    """

    type: str
    name: str
    version: str
    purl: str
    ecosystem: str | None
    cataloger: str
    found_in: str  # the database or metadata file it was read from
    source_name: str | None = None
    source_version: str | None = None
    arch: str | None = None
    files: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.type, self.name, self.version, self.found_in)

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "name": self.name,
            "version": self.version,
            "purl": self.purl,
            "ecosystem": self.ecosystem,
            "cataloger": self.cataloger,
            "found_in": self.found_in,
            "source_name": self.source_name,
            "source_version": self.source_version,
            "arch": self.arch,
            "files": list(self.files),
            "metadata": dict(self.metadata),
        }


@dataclass(frozen=True, slots=True)
class CatalogWarning:
    """Something skipped or doubtful; ``file`` and ``entry`` say which."""

    file: str
    entry: str | None
    message: str

    def __str__(self) -> str:
        where = self.file if self.entry is None else f"{self.file} [{self.entry}]"
        return f"{where}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "entry": self.entry, "message": self.message}


@dataclass(frozen=True, slots=True)
class LayerRecord:
    index: int
    media_type: str
    digest: str  # sha256 of the blob as read (compressed)
    diff_id: str  # sha256 of the uncompressed tar
    size: int  # compressed bytes read
    entries: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class CatalogerRun:
    """What one cataloger did in one scan: its version, how many packages it found, whether it
    failed (its packages are then missing)."""

    version: int
    packages: int
    failed: bool = False


@dataclass(slots=True)
class ImageContents:
    os: OSRelease | None
    manifest: FileManifest
    packages: list[Package]
    warnings: list[CatalogWarning]
    layers: list[LayerRecord] = field(default_factory=list)
    catalogers: dict[str, CatalogerRun] = field(default_factory=dict)  # by cataloger name
    incomplete: bool = False  # part of a layer could not be read (the warnings say where)
    unread: list[str] = field(default_factory=list)  # files a cataloger could not read (warnings say why)

    def packages_of(self, type_: str) -> list[Package]:
        return [p for p in self.packages if p.type == type_]

    def to_dict(self) -> dict[str, Any]:
        return {
            "os": self.os.to_dict() if self.os else None,
            "layers": [layer.to_dict() for layer in self.layers],
            "packages": [p.to_dict() for p in self.packages],
            "manifest": self.manifest.to_dict(),
            "warnings": [w.to_dict() for w in self.warnings],
            "incomplete": self.incomplete,
            "unread_files": list(self.unread),
        }
