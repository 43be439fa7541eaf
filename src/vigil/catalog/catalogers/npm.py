"""npm packages installed under ``node_modules`` (each one's package.json)."""

from __future__ import annotations

import json
import posixpath
import re

from vigil.catalog.catalogers.base import CatalogContext, reading
from vigil.catalog.fsview import FileView
from vigil.catalog.model import EntryKind, Package
from vigil.catalog.purls import npm_purl

# node_modules/<name>/package.json or node_modules/@scope/<name>/package.json
_INSTALLED_PACKAGE_JSON = re.compile(r"/node_modules/(?:@[^/]+/)?[^/@.][^/]*/package\.json$")


class NpmCataloger:
    name = "npm"
    version = 1

    def keeps(self, path: str, mode: int, head: bytes) -> bool:
        return bool(_INSTALLED_PACKAGE_JSON.search(path))

    def catalog(self, view: FileView, ctx: CatalogContext) -> list[Package]:
        out: list[Package] = []
        for path, _entry in sorted(view.iter_files()):
            if not _INSTALLED_PACKAGE_JSON.search(path):
                continue
            with reading(ctx, path, "package.json"):
                pkg = self._package(view, path, ctx)
                if pkg is not None:
                    out.append(pkg)
        return out

    def _package(self, view: FileView, path: str, ctx: CatalogContext) -> Package | None:
        try:
            doc = json.loads(view.read_bytes(path, limit=16 << 20))
        except (OSError, ValueError) as exc:
            ctx.warnings.unreadable(path, f"package.json skipped: not valid JSON ({exc})")
            return None
        if not isinstance(doc, dict):
            ctx.warnings.warn(path, None, "package.json skipped: not a JSON object")
            return None
        name, version = doc.get("name"), doc.get("version")
        if not isinstance(name, str) or not name or not isinstance(version, str) or not version:
            ctx.warnings.warn(
                path,
                name if isinstance(name, str) else None,
                "package.json skipped: no string 'name' and 'version'",
            )
            return None
        return Package(
            type="npm",
            name=name,
            version=version,
            purl=npm_purl(name, version),
            ecosystem="npm",
            cataloger="npm",
            found_in=path,
            files=_package_files(view, posixpath.dirname(path)),
        )


def _package_files(view: FileView, package_dir: str) -> list[str]:
    out = []
    for p in view.tree.iter_subtree(package_dir):
        if "/node_modules/" in p[len(package_dir) :] + "/":
            continue  # nested dependencies own their own files
        e = view.tree.get(p)
        if e is not None and e.kind in (EntryKind.FILE, EntryKind.SYMLINK):
            out.append(p)
    return sorted(out)
