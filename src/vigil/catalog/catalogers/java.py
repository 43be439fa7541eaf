"""Java archives (.jar, .war, .ear, .par, Jenkins .hpi/.jpi): one package per Maven project an
archive declares (``javacoords`` says from what, in which order), and the same for the archives
nested in it (an ear's wars, a war's ``WEB-INF/lib``, a Spring Boot jar's ``BOOT-INF/lib``) down to
``max_archive_depth`` levels.

Every entry is judged on its claimed sizes before it is inflated (``max_archive_entry_bytes``,
``max_expansion_ratio``); the archives nested in one file may inflate to ``max_nested_archive_bytes``
in all, and an archive that contains itself (a zip quine) is refused, so no archive makes the
scanner loop or fill its disk."""

from __future__ import annotations

import hashlib
import re
import struct
import tempfile
import zipfile
import zlib
from dataclasses import dataclass, field
from typing import IO

from vigil.catalog.catalogers.base import CatalogContext, reading
from vigil.catalog.fsview import FileView
from vigil.catalog.javacoords import (
    Coordinates,
    PomError,
    from_manifest,
    from_pom_properties,
    from_pom_xml,
    is_agent,
    parse_manifest,
    parse_properties,
)
from vigil.catalog.limits import limit_text
from vigil.catalog.model import Package
from vigil.catalog.purls import maven_purl

ARCHIVE_SUFFIXES = (".jar", ".war", ".ear", ".par", ".jpi", ".hpi")
_POM_FILE = re.compile(r"^META-INF/maven/(?P<group>[^/]+)/(?P<artifact>[^/]+)/(?P<file>pom\.properties|pom\.xml)$")
_NESTED_SPOOL_IN_MEMORY = 8 << 20  # bigger nested archives spill to the work dir
# pom.properties, pom.xml and manifests are a few KiB; a bigger one is not metadata worth reading.
_MAX_METADATA_BYTES = 1 << 20
# What reading an entry may raise besides OSError: a bad deflate stream, an encrypted or
# truncated member, an unsupported compression method, a malformed extra field.
_UNREADABLE = (
    OSError,
    zipfile.BadZipFile,
    ValueError,
    RuntimeError,
    NotImplementedError,
    EOFError,
    zlib.error,
    struct.error,
)

__all__ = ["ARCHIVE_SUFFIXES", "JavaArchiveCataloger", "parse_manifest", "parse_properties"]


@dataclass(slots=True)
class _Nesting:
    """What the archives nested in one file of the image have cost so far."""

    top: str  # the image file they are all inside
    inflated: int = 0
    ancestors: list[tuple[str, str]] = field(default_factory=list)  # (sha256, location) from the top down


def _entry_count(f: IO[bytes], limit: int) -> int | None:
    """Entries in the zip's central directory, counted as zipfile will parse them (by the directory's
    size, whatever count the end record claims), up to one past ``limit``; None if it is no zip."""
    f.seek(0)
    record = zipfile._EndRecData(f)  # type: ignore[attr-defined]
    if record is None:
        f.seek(0)
        return None
    size = record[zipfile._ECD_SIZE]  # type: ignore[attr-defined]
    end = record[zipfile._ECD_LOCATION]  # type: ignore[attr-defined]
    if record[zipfile._ECD_SIGNATURE] == zipfile.stringEndArchive64:  # type: ignore[attr-defined]
        end -= zipfile.sizeEndCentDir64 + zipfile.sizeEndCentDir64Locator  # type: ignore[attr-defined]
    pos, count = end - size, 0
    while pos < end and count <= limit:
        f.seek(pos)
        header = f.read(46)
        if len(header) < 46 or header[:4] != b"PK\x01\x02":
            break  # zipfile reports what is wrong there
        pos += 46 + int.from_bytes(header[28:30], "little") + int.from_bytes(header[30:32], "little")
        pos += int.from_bytes(header[32:34], "little")
        count += 1
    f.seek(0)
    return count


def _is_archive(name: str) -> bool:
    return name.lower().endswith(ARCHIVE_SUFFIXES)


class JavaArchiveCataloger:
    name = "java-archive"
    version = 2

    def keeps(self, path: str, mode: int, head: bytes) -> bool:
        return _is_archive(path)

    def catalog(self, view: FileView, ctx: CatalogContext) -> list[Package]:
        out: list[Package] = []
        for path, entry in sorted(view.iter_files()):
            if not _is_archive(path):
                continue
            with reading(ctx, path, "Java archive"):
                try:
                    with view.open(path) as f:
                        nesting = _Nesting(path, ancestors=[(entry.sha256 or "", path)])
                        out.extend(self._archive(f, path, path, ctx, 1, nesting))
                except FileNotFoundError:
                    continue
                except _UNREADABLE as exc:
                    ctx.warnings.unreadable(path, f"Java archive skipped: {exc}")
        return out

    def _archive(
        self, f: IO[bytes], location: str, owner: str, ctx: CatalogContext, depth: int, nesting: _Nesting
    ) -> list[Package]:
        out: list[Package] = []
        limit = ctx.budget.limits.max_archive_entries
        entries = _entry_count(f, limit)
        if entries is not None and entries > limit:
            # zipfile reads the whole central directory into objects of a few hundred bytes each: a
            # 30 MiB jar of 300,000 empty entries takes 180 MB before one entry is looked at.
            ctx.warnings.warn_incomplete(
                location,
                None,
                f"Java archive skipped: more entries than the limit {limit_text('max_archive_entries', limit)}",
            )
            return out
        with zipfile.ZipFile(f) as z:
            names = z.namelist()
            for coords in self._declared(z, names, location, ctx):
                out.append(self._package(coords, location, owner))
            limit = ctx.budget.limits.max_archive_depth
            for name in names:
                if not _is_archive(name) or name.endswith("/"):
                    continue
                if depth >= limit:
                    ctx.warnings.warn_incomplete(
                        location,
                        name,
                        f"nested Java archive skipped: deeper than the limit {limit_text('max_archive_depth', limit)}",
                    )
                elif self._within_limits(z, name, location, ctx) and self._nested_fits(z, name, location, ctx, nesting):
                    out.extend(self._nested(z, name, f"{location}:{name}", owner, ctx, depth + 1, nesting))
        return out

    def _declared(self, z: zipfile.ZipFile, names: list[str], location: str, ctx: CatalogContext) -> list[Coordinates]:
        """The Maven projects the archive declares: per ``META-INF/maven/<group>/<artifact>/``, its
        pom.properties, else its pom.xml; with neither, what the manifest and file name say."""
        poms: dict[tuple[str, str], dict[str, str]] = {}
        for name in names:
            m = _POM_FILE.match(name)
            if m:
                poms.setdefault((m["group"], m["artifact"]), {})[m["file"]] = name
        out: list[Coordinates] = []
        for (dir_group, dir_artifact), files in sorted(poms.items()):
            coords = None
            if "pom.properties" in files:
                text = self._metadata(z, files["pom.properties"], location, ctx)
                if text is not None:
                    coords = from_pom_properties(parse_properties(text.decode("utf-8", "replace")), dir_group)
                    if coords is None:
                        ctx.warnings.warn(
                            location, files["pom.properties"], "pom.properties skipped: no artifactId or version"
                        )
            elif "pom.xml" in files:
                data = self._metadata(z, files["pom.xml"], location, ctx)
                if data is not None:
                    try:
                        coords = from_pom_xml(data, dir_group, dir_artifact)
                    except PomError as exc:
                        ctx.warnings.warn(location, files["pom.xml"], f"pom.xml skipped: {exc}")
                        continue
                    if coords is None:
                        ctx.warnings.warn(
                            location, files["pom.xml"], "pom.xml skipped: no version, not even from <parent>"
                        )
            if coords is not None:
                out.append(coords)
        if out or poms:
            return out
        manifest: dict[str, str] = {}
        if "META-INF/MANIFEST.MF" in names:
            data = self._metadata(z, "META-INF/MANIFEST.MF", location, ctx)
            if data is not None:
                manifest = parse_manifest(data.decode("utf-8", "replace"))
        stem = location.rsplit("/", 1)[-1].rsplit(":", 1)[-1].rsplit(".", 1)[0]
        coords = from_manifest(manifest, stem)
        if coords is None:
            # An agent without Maven identity is not a package (javacoords); an archive that only holds
            # others (an ear, a war of libraries) is listed through what it holds.
            if not is_agent(manifest) and not any(_is_archive(n) and not n.endswith("/") for n in names):
                ctx.warnings.warn(location, None, "Java archive has no Maven coordinates and no version; skipped")
            return []
        return [coords]

    def _metadata(self, z: zipfile.ZipFile, name: str, location: str, ctx: CatalogContext) -> bytes | None:
        if not self._within_limits(z, name, location, ctx):
            return None
        size = z.getinfo(name).file_size
        if size > _MAX_METADATA_BYTES:
            ctx.warnings.warn(location, name, f"skipped: {size} bytes, more than {_MAX_METADATA_BYTES} for metadata")
            return None
        return z.read(name)

    @staticmethod
    def _nested_fits(z: zipfile.ZipFile, name: str, location: str, ctx: CatalogContext, nesting: _Nesting) -> bool:
        """Do the archives nested in ``nesting.top`` stay within ``max_nested_archive_bytes`` with this one?
        A zip bomb of nested archives (42.zip) passes every per-entry check at every level."""
        limit = ctx.budget.limits.max_nested_archive_bytes
        size = z.getinfo(name).file_size
        if nesting.inflated + size > limit:
            ctx.warnings.warn_incomplete(
                location,
                name,
                f"nested Java archive skipped: the archives nested in {nesting.top} would inflate to "
                f"{nesting.inflated + size} bytes, over the limit {limit_text('max_nested_archive_bytes', limit)}",
            )
            return False
        nesting.inflated += size
        return True

    @staticmethod
    def _within_limits(z: zipfile.ZipFile, name: str, location: str, ctx: CatalogContext) -> bool:
        """May this entry be inflated? Judged on its sizes before one byte is: a zip bomb claims them truly,
        and zipfile never inflates past the size an entry claims."""
        info = z.getinfo(name)
        limits = ctx.budget.limits
        if info.file_size > limits.max_archive_entry_bytes:
            ctx.warnings.warn_incomplete(
                location,
                name,
                f"archive entry of {info.file_size} bytes skipped: over the limit "
                f"{limit_text('max_archive_entry_bytes', limits.max_archive_entry_bytes)}",
            )
            return False
        ratio = limits.max_expansion_ratio
        if info.file_size > 1 << 20 and info.file_size > ratio * max(info.compress_size, 1):
            ctx.warnings.warn_incomplete(
                location,
                name,
                f"archive entry skipped: {info.compress_size} bytes inflate to {info.file_size}, over the limit "
                f"{limit_text('max_expansion_ratio', ratio)}",
            )
            return False
        ctx.budget.read_bytes(info.file_size, f"{location}:{name}")
        return True

    def _nested(
        self,
        z: zipfile.ZipFile,
        name: str,
        location: str,
        owner: str,
        ctx: CatalogContext,
        depth: int,
        nesting: _Nesting,
    ) -> list[Package]:
        with tempfile.SpooledTemporaryFile(max_size=_NESTED_SPOOL_IN_MEMORY, dir=str(ctx.workdir)) as spool:
            try:
                digest = hashlib.sha256()
                with z.open(name) as src:
                    while chunk := src.read(1 << 20):
                        digest.update(chunk)
                        spool.write(chunk)
                sha = digest.hexdigest()
                container = next((loc for s, loc in nesting.ancestors if s == sha), None)
                if container is not None:
                    ctx.warnings.warn_incomplete(
                        location, None, f"nested Java archive skipped: it is {container}, which contains it (a cycle)"
                    )
                    return []
                spool.seek(0)
                nesting.ancestors.append((sha, location))
                try:
                    return self._archive(spool, location, owner, ctx, depth, nesting)
                finally:
                    nesting.ancestors.pop()
            except _UNREADABLE as exc:
                ctx.warnings.warn(location, None, f"nested Java archive skipped: {exc}")
                return []

    @staticmethod
    def _package(coords: Coordinates, location: str, owner: str) -> Package:
        group, artifact = coords.group, coords.artifact
        return Package(
            type="maven",
            name=f"{group}:{artifact}" if group else artifact,
            version=coords.version,
            purl=maven_purl(group, artifact, coords.version),
            ecosystem="Maven",
            cataloger="java-archive",
            found_in=location,
            files=[owner],
            metadata={"group_id": group, "artifact_id": artifact, "from": coords.source},
        )
