"""Python distributions: ``*.dist-info`` (METADATA + RECORD) and
``*.egg-info`` (PKG-INFO + installed-files.txt, or a single PKG-INFO file)."""

from __future__ import annotations

import csv
import io
import posixpath
from email.parser import HeaderParser

from vigil.catalog.catalogers.base import CatalogContext
from vigil.catalog.fsview import FileView
from vigil.catalog.model import Package
from vigil.catalog.purls import pypi_purl

_KEPT_IN_DIST_INFO = {"METADATA", "RECORD"}
_KEPT_IN_EGG_INFO = {"PKG-INFO", "installed-files.txt"}


def parse_metadata(text: str) -> tuple[str, str]:
    headers = HeaderParser().parsestr(text, headersonly=True)
    return (headers.get("Name") or "").strip(), (headers.get("Version") or "").strip()


def record_paths(text: str, site_dir: str) -> list[str]:
    out = []
    for row in csv.reader(io.StringIO(text)):
        if row and row[0]:
            out.append(posixpath.normpath(posixpath.join(site_dir, row[0])))
    return out


class PythonCataloger:
    name = "python"
    version = 1

    def keeps(self, path: str, mode: int, head: bytes) -> bool:
        parent, base = posixpath.split(path)
        if parent.endswith(".dist-info"):
            return base in _KEPT_IN_DIST_INFO
        if parent.endswith(".egg-info"):
            return base in _KEPT_IN_EGG_INFO
        return base.endswith(".egg-info")

    def catalog(self, view: FileView, ctx: CatalogContext) -> list[Package]:
        out: list[Package] = []
        for path, _entry in sorted(view.iter_files()):
            parent, base = posixpath.split(path)
            if base == "METADATA" and parent.endswith(".dist-info"):
                pkg = self._package(view, ctx, path, posixpath.join(parent, "RECORD"), csv_record=True)
            elif base == "PKG-INFO" and parent.endswith(".egg-info"):
                pkg = self._package(view, ctx, path, posixpath.join(parent, "installed-files.txt"), csv_record=False)
            elif base.endswith(".egg-info"):
                pkg = self._package(view, ctx, path, None, csv_record=False)
            else:
                continue
            if pkg is not None:
                out.append(pkg)
        return out

    def _package(
        self, view: FileView, ctx: CatalogContext, meta_path: str, files_path: str | None, csv_record: bool
    ) -> Package | None:
        try:
            name, version = parse_metadata(view.read_bytes(meta_path, limit=16 << 20).decode("utf-8", "replace"))
        except (OSError, ValueError) as exc:
            ctx.warnings.warn(meta_path, None, f"not readable, skipped: {exc}")
            return None
        if not name or not version:
            ctx.warnings.warn(meta_path, name or None, "distribution skipped: metadata has no Name or no Version")
            return None
        files: list[str] = []
        if files_path is not None and view.regular_file(files_path) == files_path:
            try:
                text = view.read_bytes(files_path).decode("utf-8", "replace")
            except (OSError, ValueError) as exc:
                ctx.warnings.warn(files_path, name, f"owned files not readable: {exc}")
            else:
                if csv_record:
                    files = record_paths(text, posixpath.dirname(posixpath.dirname(meta_path)))
                else:
                    base = posixpath.dirname(meta_path)
                    files = [
                        posixpath.normpath(posixpath.join(base, line.strip()))
                        for line in text.splitlines()
                        if line.strip()
                    ]
        return Package(
            type="pypi",
            name=name,
            version=version,
            purl=pypi_purl(name, version),
            ecosystem="PyPI",
            cataloger="python",
            found_in=meta_path,
            files=files,
        )
