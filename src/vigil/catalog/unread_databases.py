"""Package databases Vigil has no cataloger for, named when an image holds one.

An image whose packages are in a database Vigil cannot read would otherwise show "no packages":
each entry here is a path a package manager keeps its installed-package database at, and finding
it in the image is a warning that says which database was not read (and lists it among the scan's
unread files), never a silent empty list. Judged on the file tree alone: nothing is kept or read.
"""

from __future__ import annotations

from vigil.catalog.fsview import FileView
from vigil.catalog.model import EntryKind
from vigil.catalog.warnings import WarningSink

# (path, the kind of entry there, what it is)
UNREAD_DATABASES: tuple[tuple[str, EntryKind, str], ...] = (
    ("/var/lib/pacman/local", EntryKind.DIRECTORY, "pacman database (Arch Linux)"),
    ("/var/db/pkg", EntryKind.DIRECTORY, "Portage database (Gentoo)"),
    ("/usr/lib/opkg/status", EntryKind.FILE, "opkg database (OpenWrt)"),
    ("/var/lib/opkg/status", EntryKind.FILE, "opkg database"),
    ("/nix/var/nix/db/db.sqlite", EntryKind.FILE, "Nix store database"),
)


def warn_unread_databases(view: FileView, warnings: WarningSink) -> None:
    for path, kind, what in UNREAD_DATABASES:
        entry = view.tree.get(path)
        if entry is not None and entry.kind is kind:
            warnings.unreadable(path, f"{what} not read: Vigil has no cataloger for it; its packages are not listed")
