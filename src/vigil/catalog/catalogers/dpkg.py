"""Debian packages: ``var/lib/dpkg/status`` with ``info/*.list`` for owned
files, and distroless ``status.d/`` (one stanza per file, ``*.md5sums`` for
owned files). ``Source:`` is kept: Debian advisories are keyed by source.

A package is listed when its files are on disk: every state ``dpkg-query -W`` lists
(``installed``, ``half-installed``, ``unpacked``, ``half-configured``, ``triggers-awaited``,
``triggers-pending``) but ``config-files`` (removed: only its conffiles are left) and
``not-installed``. In ``status.d/`` only stanza files are read: the control members distroless
puts beside them (``<package>.md5sums``, ``<package>.preinst``...) are not stanzas."""

from __future__ import annotations

import posixpath
import re

from vigil.catalog.catalogers.base import CatalogContext, reading
from vigil.catalog.catalogers.control import Stanza, parse_deb822
from vigil.catalog.fsview import FileView
from vigil.catalog.model import EntryKind, Package
from vigil.catalog.osrelease import os_ecosystem, purl_distro
from vigil.catalog.purls import os_package_purl

STATUS = "/var/lib/dpkg/status"
STATUS_D = "/var/lib/dpkg/status.d/"
INFO = "/var/lib/dpkg/info/"
_SOURCE = re.compile(r"^(\S+)(?:\s+\((\S+)\))?$")
_DEB_OS_IDS = {"debian", "ubuntu"}
# The states (the third word of "want flag state") in which the package's files are on disk.
FILES_ON_DISK = frozenset(
    ("installed", "half-installed", "unpacked", "half-configured", "triggers-awaited", "triggers-pending")
)
# dpkg's control members, as distroless writes them into status.d beside each stanza file.
_CONTROL_MEMBERS = frozenset(
    ("conffiles", "config", "list", "md5sums", "postinst", "postrm", "preinst", "prerm", "shlibs", "symbols")
    + ("templates", "triggers")
)


def _installed_state(status: str) -> bool:
    # "hold ok installed" is as installed as "install ok installed": the want word is a wish.
    words = status.split()
    return len(words) == 3 and words[2] in FILES_ON_DISK


def is_stanza_file(name: str) -> bool:
    """Is this file of status.d a package's stanza, not one of its control members?"""
    stem, dot, suffix = name.rpartition(".")
    return not (dot and stem and suffix in _CONTROL_MEMBERS)


def package_from_stanza(stanza: Stanza, file: str, ctx: CatalogContext, require_status: bool) -> Package | None:
    """One installed package, or None after a warning naming file and entry."""
    f = stanza.fields
    entry = f.get("Package") or f"stanza at line {stanza.line}"
    if stanza.errors:
        ctx.warnings.warn(file, entry, "corrupt entry skipped: " + "; ".join(stanza.errors))
        return None
    name, version = f.get("Package", ""), f.get("Version", "")
    if not name:
        ctx.warnings.warn(file, entry, "entry skipped: no Package field")
        return None
    if not version:
        ctx.warnings.warn(file, entry, "entry skipped: no Version field")
        return None
    status = f.get("Status")
    if status is not None or require_status:
        if not status or not _installed_state(status):
            ctx.warnings.warn(file, entry, f"entry skipped: status {status!r}: its files are not on disk")
            return None
    source_name, source_version = name, version
    if f.get("Source"):
        m = _SOURCE.match(f["Source"])
        if m is None:
            ctx.warnings.warn(file, entry, f"Source field {f['Source']!r} not understood; package name used as source")
        else:
            source_name, source_version = m.group(1), m.group(2) or version
    os = ctx.os
    namespace = os.id if os is not None and os.id in _DEB_OS_IDS else "debian"
    upstream = None
    if source_name != name or source_version != version:
        upstream = source_name if source_version == version else f"{source_name}@{source_version}"
    arch = f.get("Architecture") or None
    return Package(
        type="deb",
        name=name,
        version=version,
        purl=os_package_purl("deb", namespace, name, version, arch=arch, distro=purl_distro(os), upstream=upstream),
        ecosystem=os_ecosystem(os) if os is not None and os.id in _DEB_OS_IDS else None,
        cataloger="dpkg",
        found_in=file,
        source_name=source_name,
        source_version=source_version,
        arch=arch,
        metadata={"installed_size": f.get("Installed-Size")} if f.get("Installed-Size") else {},
    )


def _owned_from_list(view: FileView, text: str) -> list[str]:
    out = []
    for line in text.splitlines():
        path = line.strip()
        if not path or path == "/." or not path.startswith("/"):
            continue
        path = posixpath.normpath(path)
        # Through symlinked parents (usrmerge: /lib -> usr/lib), not the last component.
        real_parent = view.resolve(posixpath.dirname(path))
        if real_parent is not None:
            entry = view.tree.get(posixpath.join(real_parent, posixpath.basename(path)))
            if entry is not None and entry.kind is EntryKind.DIRECTORY:
                continue
        out.append(path)
    return out


def _owned_from_md5sums(text: str) -> list[str]:
    out = []
    for line in text.splitlines():
        parts = line.split(None, 1)
        if len(parts) == 2:
            out.append("/" + parts[1].strip().lstrip("/"))
    return out


class DpkgCataloger:
    name = "dpkg"
    version = 2

    def keeps(self, path: str, mode: int, head: bytes) -> bool:
        if path == STATUS or path.startswith(STATUS_D):
            return True
        return path.startswith(INFO) and path.endswith(".list")

    def _read(self, view: FileView, path: str, ctx: CatalogContext) -> str | None:
        try:
            return view.read_bytes(path).decode("utf-8", "replace")
        except (OSError, ValueError) as exc:
            ctx.warnings.unreadable(path, f"not readable, skipped: {exc}")
            return None

    def catalog(self, view: FileView, ctx: CatalogContext) -> list[Package]:
        packages: list[Package] = []
        if view.regular_file(STATUS) == STATUS:
            with reading(ctx, STATUS, "dpkg status database"):
                packages.extend(self._status(view, ctx))
        status_d = STATUS_D.rstrip("/")
        if view.is_dir(status_d):
            for path in view.listdir(status_d):
                if not is_stanza_file(posixpath.basename(path)) or view.regular_file(path) != path:
                    continue
                with reading(ctx, path, "dpkg status file"):
                    packages.extend(self._status_d_file(view, path, ctx))
        return packages

    def _status(self, view: FileView, ctx: CatalogContext) -> list[Package]:
        out: list[Package] = []
        for stanza in parse_deb822(self._read(view, STATUS, ctx) or ""):
            pkg = package_from_stanza(stanza, STATUS, ctx, require_status=True)
            if pkg is None:
                continue
            for list_name in (f"{pkg.name}:{pkg.arch}.list", f"{pkg.name}.list"):
                list_path = INFO + list_name
                if view.regular_file(list_path) == list_path:
                    pkg.files = _owned_from_list(view, self._read(view, list_path, ctx) or "")
                    break
            out.append(pkg)
        return out

    def _status_d_file(self, view: FileView, path: str, ctx: CatalogContext) -> list[Package]:
        out: list[Package] = []
        for stanza in parse_deb822(self._read(view, path, ctx) or ""):
            pkg = package_from_stanza(stanza, path, ctx, require_status=False)
            if pkg is None:
                continue
            sums = path + ".md5sums"
            if view.regular_file(sums) == sums:
                pkg.files = _owned_from_md5sums(self._read(view, sums, ctx) or "")
            out.append(pkg)
        return out
