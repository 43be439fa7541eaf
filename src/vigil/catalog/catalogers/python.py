"""Python distributions: ``*.dist-info`` (METADATA + RECORD) and
``*.egg-info`` (PKG-INFO + installed-files.txt, or a single PKG-INFO file).

Directory names are matched in any letter case, as ``importlib.metadata`` lists them
(``Foo.Dist-Info`` is a distribution); the interpreter's own ``Python-X.Y.egg-info`` (which
CPython's ``make install`` and Debian's python packages put beside the standard library) is the
interpreter, not a PyPI package, and is left out."""

from __future__ import annotations

import csv
import io
import posixpath
import re
from email.parser import HeaderParser

from vigil.catalog.catalogers.base import CatalogContext, reading
from vigil.catalog.fsview import FileView
from vigil.catalog.model import Package
from vigil.catalog.purls import pypi_purl

_KEPT_IN_DIST_INFO = {"METADATA", "RECORD"}
_KEPT_IN_EGG_INFO = {"PKG-INFO", "installed-files.txt"}
_INTERPRETER_EGG_INFO = re.compile(r"^Python-\d+\.\d+\.egg-info$")


def _is_dist_info(name: str) -> bool:
    return name.lower().endswith(".dist-info")


def _is_egg_info(name: str) -> bool:
    return name.lower().endswith(".egg-info")


def is_interpreter_metadata(meta_path: str, name: str) -> bool:
    """The CPython interpreter's own egg-info (``Name: Python``), not a distribution from PyPI."""
    parent, base = posixpath.split(meta_path)
    egg = base if _is_egg_info(base) else posixpath.basename(parent)
    return name.lower() == "python" and bool(_INTERPRETER_EGG_INFO.match(egg))


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
    version = 2

    def keeps(self, path: str, mode: int, head: bytes) -> bool:
        parent, base = posixpath.split(path)
        if _is_dist_info(parent):
            return base in _KEPT_IN_DIST_INFO
        if _is_egg_info(parent):
            return base in _KEPT_IN_EGG_INFO
        return _is_egg_info(base)

    def catalog(self, view: FileView, ctx: CatalogContext) -> list[Package]:
        out: list[Package] = []
        for path, _entry in sorted(view.iter_files()):
            parent, base = posixpath.split(path)
            if base == "METADATA" and _is_dist_info(parent):
                files_path: str | None = posixpath.join(parent, "RECORD")
            elif base == "PKG-INFO" and _is_egg_info(parent):
                files_path = posixpath.join(parent, "installed-files.txt")
            elif _is_egg_info(base):
                files_path = None
            else:
                continue
            with reading(ctx, path, "Python distribution metadata"):
                pkg = self._package(view, ctx, path, files_path, csv_record=base == "METADATA")
                if pkg is not None:
                    out.append(pkg)
        return out

    def _package(
        self, view: FileView, ctx: CatalogContext, meta_path: str, files_path: str | None, csv_record: bool
    ) -> Package | None:
        try:
            name, version = parse_metadata(view.read_bytes(meta_path, limit=16 << 20).decode("utf-8", "replace"))
        except (OSError, ValueError) as exc:
            ctx.warnings.unreadable(meta_path, f"not readable, skipped: {exc}")
            return None
        if is_interpreter_metadata(meta_path, name):
            return None
        if not name or not version:
            ctx.warnings.warn(meta_path, name or None, "distribution skipped: metadata has no Name or no Version")
            return None
        files: list[str] = []
        if files_path is not None and view.regular_file(files_path) == files_path:
            try:
                text = view.read_bytes(files_path).decode("utf-8", "replace")
                if csv_record:
                    files = record_paths(text, posixpath.dirname(posixpath.dirname(meta_path)))
            except (OSError, ValueError, csv.Error) as exc:
                # The distribution is still listed: only which files it owns is unknown.
                ctx.warnings.unreadable(files_path, f"owned files not readable: {type(exc).__name__}: {exc}", name)
            else:
                if not csv_record:
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
