"""Java archives (.jar, .war, .ear): Maven coordinates from
``META-INF/maven/**/pom.properties``, else from ``META-INF/MANIFEST.MF``;
archives nested in them (WEB-INF/lib, BOOT-INF/lib) too, down to ``max_archive_depth``.
Every entry is judged on its claimed sizes before it is inflated (``max_archive_entry_bytes``,
``max_expansion_ratio``)."""

from __future__ import annotations

import re
import shutil
import tempfile
import zipfile
from typing import IO

from vigil.catalog.catalogers.base import CatalogContext
from vigil.catalog.fsview import FileView
from vigil.catalog.limits import limit_text
from vigil.catalog.model import Package
from vigil.catalog.purls import maven_purl

ARCHIVE_SUFFIXES = (".jar", ".war", ".ear", ".jpi", ".hpi")
_POM_PROPERTIES = re.compile(r"^META-INF/maven/[^/]+/[^/]+/pom\.properties$")
_NAME_VERSION = re.compile(r"^(?P<name>.+?)-(?P<version>\d[\w.+-]*)$")
_NESTED_SPOOL_IN_MEMORY = 8 << 20  # bigger nested archives spill to the work dir


def parse_properties(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#!":
            continue
        key, sep, value = line.partition("=")
        if sep:
            out[key.strip()] = value.strip()
    return out


def parse_manifest(text: str) -> dict[str, str]:
    """Main section of a JAR manifest (continuation lines start with a space)."""
    out: dict[str, str] = {}
    last = None
    for line in text.splitlines():
        if not line.strip():
            break  # end of the main section
        if line.startswith(" ") and last is not None:
            out[last] += line[1:]
            continue
        key, sep, value = line.partition(":")
        if sep:
            last = key.strip()
            out[last] = value.strip()
    return out


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
    version = 1

    def keeps(self, path: str, mode: int, head: bytes) -> bool:
        return _is_archive(path)

    def catalog(self, view: FileView, ctx: CatalogContext) -> list[Package]:
        out: list[Package] = []
        for path, _entry in sorted(view.iter_files()):
            if not _is_archive(path):
                continue
            try:
                with view.open(path) as f:
                    out.extend(self._archive(f, path, path, ctx, depth=1))
            except FileNotFoundError:
                continue
            except (OSError, zipfile.BadZipFile, ValueError) as exc:
                ctx.warnings.warn(path, None, f"Java archive skipped: {exc}")
        return out

    def _archive(self, f: IO[bytes], location: str, owner: str, ctx: CatalogContext, depth: int) -> list[Package]:
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
            for name in names:
                if _POM_PROPERTIES.match(name) and self._within_limits(z, name, location, ctx):
                    props = parse_properties(z.read(name).decode("utf-8", "replace"))
                    group, artifact, version = props.get("groupId"), props.get("artifactId"), props.get("version")
                    if not artifact or not version:
                        ctx.warnings.warn(location, name, "pom.properties skipped: no artifactId or version")
                        continue
                    out.append(self._package(group, artifact, version, location, owner, "pom.properties"))
            if not out:
                pkg = self._from_manifest(z, names, location, owner, ctx)
                if pkg is not None:
                    out.append(pkg)
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
                elif self._within_limits(z, name, location, ctx):
                    out.extend(self._nested(z, name, f"{location}:{name}", owner, ctx, depth + 1))
        return out

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
        self, z: zipfile.ZipFile, name: str, location: str, owner: str, ctx: CatalogContext, depth: int
    ) -> list[Package]:
        with tempfile.SpooledTemporaryFile(max_size=_NESTED_SPOOL_IN_MEMORY, dir=str(ctx.workdir)) as spool:
            try:
                with z.open(name) as src:
                    shutil.copyfileobj(src, spool, 1 << 20)
                spool.seek(0)
                return self._archive(spool, location, owner, ctx, depth)
            except (OSError, zipfile.BadZipFile, ValueError) as exc:
                ctx.warnings.warn(location, None, f"nested Java archive skipped: {exc}")
                return []

    def _from_manifest(
        self, z: zipfile.ZipFile, names: list[str], location: str, owner: str, ctx: CatalogContext
    ) -> Package | None:
        manifest = {}
        if "META-INF/MANIFEST.MF" in names and self._within_limits(z, "META-INF/MANIFEST.MF", location, ctx):
            manifest = parse_manifest(z.read("META-INF/MANIFEST.MF").decode("utf-8", "replace"))
        stem = location.rsplit("/", 1)[-1].rsplit(":", 1)[-1].rsplit(".", 1)[0]
        from_name = _NAME_VERSION.match(stem)
        artifact = (
            (from_name.group("name") if from_name else None)
            or manifest.get("Implementation-Title")
            or manifest.get("Bundle-SymbolicName", "").split(";")[0]
            or stem
        )
        version = (
            manifest.get("Implementation-Version")
            or manifest.get("Bundle-Version")
            or (from_name.group("version") if from_name else None)
        )
        if not version:
            ctx.warnings.warn(location, None, "Java archive has no Maven coordinates and no version; skipped")
            return None
        group = manifest.get("Implementation-Vendor-Id") or None
        return self._package(group, artifact, version, location, owner, "MANIFEST.MF")

    @staticmethod
    def _package(group: str | None, artifact: str, version: str, location: str, owner: str, source: str) -> Package:
        return Package(
            type="maven",
            name=f"{group}:{artifact}" if group else artifact,
            version=version,
            purl=maven_purl(group, artifact, version),
            ecosystem="Maven",
            cataloger="java-archive",
            found_in=location,
            files=[owner],
            metadata={"group_id": group, "artifact_id": artifact, "from": source},
        )
