"""Go binaries: main module, dependencies and toolchain ("stdlib") from the
build info the Go linker embeds.

The main module of a binary built from a checkout is ``(devel)`` in its build info (before Go
1.24); its version is then taken, as syft does, from a version variable the linker set
(``-ldflags "-X main.version=v1.2.3"``, the common release practice), else from the VCS build
settings as a pseudo-version (``v0.0.0-20230102150405-abcdef123456``). Go build info is read
from ELF binaries; a Go binary in another format (Mach-O, PE) is a warning, not a silent skip."""

from __future__ import annotations

import mmap
import re
import struct
from datetime import datetime

from vigil.catalog.catalogers.base import CatalogContext, reading
from vigil.catalog.fsview import FileView
from vigil.catalog.gobuildinfo import MAGIC, BuildInfoError, GoBuildInfo, GoModule, parse_build_info
from vigil.catalog.model import Package
from vigil.catalog.purls import golang_purl

ELF_MAGIC = b"\x7fELF"
_ANY_EXEC = 0o111
# Executable formats Go also builds for, which this cataloger does not read: named in a warning.
OTHER_FORMATS = (
    (b"\xfe\xed\xfa\xce", "Mach-O"),
    (b"\xfe\xed\xfa\xcf", "Mach-O"),
    (b"\xce\xfa\xed\xfe", "Mach-O"),
    (b"\xcf\xfa\xed\xfe", "Mach-O"),
    (b"\xca\xfe\xba\xbe", "Mach-O universal"),  # also a Java class file's: only executables are kept
    (b"MZ", "PE"),
)
_DEVEL = "(devel)"
# A linker-set version variable: -X <package path ending in main or version>.<Version|version|...>=<value>
_LDFLAGS_VERSION = re.compile(
    r"""-X[= ]['"]?(?:\S*/)?(?:main|version|buildinfo)\."""
    r"""(?:[vV]ersion|[gG]it[vV]ersion|[gG]it[tT]ag|[rR]elease)=['"]?([^\s'"]+)"""
)
_SEMVER = re.compile(r"^v?\d+\.\d+\.\d+(?:[-+][0-9A-Za-z.+-]*)?$")


def other_format(head: bytes) -> str | None:
    return next((name for magic, name in OTHER_FORMATS if head.startswith(magic)), None)


def main_module_version(info: GoBuildInfo) -> tuple[str, str | None]:
    """The main module's version and where it came from (None: the build info's own).

    A ``(devel)`` main module takes the version a linker flag set, when it reads as a semantic
    version (``v`` added as Go spells module versions), else a pseudo-version from
    ``vcs.revision`` and ``vcs.time`` (git builds), else stays ``(devel)``."""
    version = info.main.version if info.main is not None else ""
    if version not in ("", _DEVEL):
        return version, None
    for m in _LDFLAGS_VERSION.finditer(info.settings.get("-ldflags", "")):
        value = m.group(1)
        if _SEMVER.match(value):
            return (value if value.startswith("v") else "v" + value), "ldflags"
    revision, when = info.settings.get("vcs.revision", ""), info.settings.get("vcs.time", "")
    if info.settings.get("vcs") == "git" and len(revision) >= 12 and when:
        try:
            stamp = datetime.strptime(when, "%Y-%m-%dT%H:%M:%SZ")
        except ValueError:
            return version, None
        return f"v0.0.0-{stamp:%Y%m%d%H%M%S}-{revision[:12]}", "vcs"
    return version, None


def stdlib_version(go_version: str) -> str:
    """ "go1.19.8" -> "1.19.8": the Go vulnerability database versions the
    standard library (package "stdlib") without the prefix."""
    return go_version[2:] if go_version.startswith("go") else go_version


def packages_from_build_info(info: GoBuildInfo, binary: str) -> list[Package]:
    common = {"go_version": info.go_version}
    out: list[Package] = []

    def add(mod: GoModule, role: str, version_from: str | None = None) -> None:
        effective = mod.replaced_by or mod
        meta = dict(common, role=role)
        if version_from is not None:
            meta["version_from"] = version_from
        if mod.replaced_by is not None:
            meta["replaces"] = f"{mod.path}@{mod.version}"
        if effective.sum:
            meta["h1"] = effective.sum
        out.append(
            Package(
                type="golang",
                name=effective.path,
                version=effective.version,
                purl=golang_purl(effective.path, effective.version),
                ecosystem="Go",
                cataloger="go-binary",
                found_in=binary,
                files=[binary],
                metadata=meta,
            )
        )

    if info.main is not None:
        version, version_from = main_module_version(info)
        main = info.main if version_from is None else GoModule(info.main.path, version, info.main.sum)
        add(main, "main", version_from)
    elif info.path:
        # GOPATH-mode build (as Debian builds Go): a main package, no module version.
        add(GoModule(info.path, ""), "main")
    for dep in info.deps:
        add(dep, "dependency")
    if info.go_version:
        v = stdlib_version(info.go_version)
        out.append(
            Package(
                type="golang",
                name="stdlib",
                version=v,
                purl=golang_purl("stdlib", v),
                ecosystem="Go",
                cataloger="go-binary",
                found_in=binary,
                files=[binary],
                metadata=dict(common, role="toolchain"),
            )
        )
    return out


class GoBinaryCataloger:
    name = "go-binary"
    version = 2

    def keeps(self, path: str, mode: int, head: bytes) -> bool:
        if head.startswith(ELF_MAGIC):
            return bool(mode & _ANY_EXEC)
        return other_format(head) is not None and (bool(mode & _ANY_EXEC) or path.lower().endswith(".exe"))

    def catalog(self, view: FileView, ctx: CatalogContext) -> list[Package]:
        out: list[Package] = []
        for path, entry in sorted(view.iter_files()):
            if not (entry.mode & _ANY_EXEC or path.lower().endswith(".exe")) or entry.size < 64:
                continue
            with reading(ctx, path, "Go binary"):
                out.extend(self._binary(view, path, ctx))
        return out

    def _binary(self, view: FileView, path: str, ctx: CatalogContext) -> list[Package]:
        try:
            with view.open(path) as f:
                head = f.read(4)
                fmt = None if head == ELF_MAGIC else other_format(head)
                if head != ELF_MAGIC and fmt is None:
                    return []
                with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
                    if fmt is not None:
                        if data.find(MAGIC) >= 0:
                            ctx.warnings.unreadable(
                                path, f"Go binary in {fmt} format not read: build info is read from ELF binaries only"
                            )
                        return []
                    info = parse_build_info(data)
        except FileNotFoundError:
            return []  # not kept: not an executable of a format Go builds
        except (OSError, ValueError, BuildInfoError, IndexError, struct.error) as exc:
            ctx.warnings.unreadable(path, f"Go build info not readable, binary skipped: {exc}")
            return []
        return packages_from_build_info(info, path) if info is not None else []
