"""Go binaries: main module, dependencies and toolchain ("stdlib") from the
build info the Go linker embeds."""

from __future__ import annotations

import mmap

from vigil.catalog.catalogers.base import CatalogContext
from vigil.catalog.fsview import FileView
from vigil.catalog.gobuildinfo import BuildInfoError, GoBuildInfo, GoModule, parse_build_info
from vigil.catalog.model import Package
from vigil.catalog.purls import golang_purl

ELF_MAGIC = b"\x7fELF"
_ANY_EXEC = 0o111


def stdlib_version(go_version: str) -> str:
    """ "go1.19.8" -> "1.19.8": the Go vulnerability database versions the
    standard library (package "stdlib") without the prefix."""
    return go_version[2:] if go_version.startswith("go") else go_version


def packages_from_build_info(info: GoBuildInfo, binary: str) -> list[Package]:
    common = {"go_version": info.go_version}
    out: list[Package] = []

    def add(mod: GoModule, role: str) -> None:
        effective = mod.replaced_by or mod
        meta = dict(common, role=role)
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
        add(info.main, "main")
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
    version = 1

    def keeps(self, path: str, mode: int, head: bytes) -> bool:
        return bool(mode & _ANY_EXEC) and head.startswith(ELF_MAGIC)

    def catalog(self, view: FileView, ctx: CatalogContext) -> list[Package]:
        out: list[Package] = []
        for path, entry in sorted(view.iter_files()):
            if not entry.mode & _ANY_EXEC or entry.size < 64:
                continue
            try:
                with view.open(path) as f:
                    if f.read(4) != ELF_MAGIC:
                        continue
                    with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
                        info = parse_build_info(data)
            except FileNotFoundError:
                continue  # not kept: not an ELF executable
            except (OSError, ValueError, BuildInfoError, IndexError) as exc:
                ctx.warnings.warn(path, None, f"Go build info not readable, binary skipped: {exc}")
                continue
            if info is not None:
                out.extend(packages_from_build_info(info, path))
        return out
