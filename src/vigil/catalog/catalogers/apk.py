"""Alpine packages from ``lib/apk/db/installed`` (owned files from F:/R:)."""

from __future__ import annotations

from vigil.catalog.catalogers.base import CatalogContext, reading
from vigil.catalog.catalogers.control import parse_apk_installed
from vigil.catalog.fsview import FileView
from vigil.catalog.model import Package
from vigil.catalog.osrelease import os_ecosystem, purl_distro
from vigil.catalog.purls import os_package_purl

INSTALLED = "/lib/apk/db/installed"
_APK_OS_IDS = {"alpine", "wolfi", "chainguard", "postmarketos"}


class ApkCataloger:
    name = "apk"
    version = 1

    def keeps(self, path: str, mode: int, head: bytes) -> bool:
        return path == INSTALLED

    def catalog(self, view: FileView, ctx: CatalogContext) -> list[Package]:
        if view.regular_file(INSTALLED) != INSTALLED:
            return []
        out: list[Package] = []
        with reading(ctx, INSTALLED, "apk database"):
            try:
                text = view.read_bytes(INSTALLED).decode("utf-8", "replace")
            except (OSError, ValueError) as exc:
                ctx.warnings.unreadable(INSTALLED, f"not readable, skipped: {exc}")
                return []
            out = packages_from_apk_db(text, INSTALLED, ctx)
        return out


def packages_from_apk_db(text: str, file: str, ctx: CatalogContext) -> list[Package]:
    os = ctx.os
    namespace = os.id if os is not None and os.id in _APK_OS_IDS else "alpine"
    ecosystem = os_ecosystem(os) if os is not None and os.id in _APK_OS_IDS else None
    out: list[Package] = []
    for rec in parse_apk_installed(text):
        f = rec.fields
        entry = f.get("P") or f"record at line {rec.line}"
        if rec.errors:
            ctx.warnings.warn(file, entry, "corrupt entry skipped: " + "; ".join(rec.errors))
            continue
        if not f.get("P") or not f.get("V"):
            ctx.warnings.warn(file, entry, "entry skipped: no package name (P:) or version (V:)")
            continue
        name, version, arch = f["P"], f["V"], f.get("A") or None
        origin = f.get("o") or name
        out.append(
            Package(
                type="apk",
                name=name,
                version=version,
                purl=os_package_purl(
                    "apk",
                    namespace,
                    name,
                    version,
                    arch=arch,
                    distro=purl_distro(os),
                    upstream=origin if origin != name else None,
                ),
                ecosystem=ecosystem,
                cataloger="apk",
                found_in=file,
                source_name=origin,
                source_version=version,
                arch=arch,
                files=rec.files,
                metadata={k: f[v] for k, v in (("commit", "c"), ("license", "L")) if v in f},
            )
        )
    return out
