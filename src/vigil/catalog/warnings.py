"""Collect what the catalog skipped, so nothing is dropped silently.

Every warning goes both to Python logging (operators) and to the result's
``warnings`` list (users, API). It names the file and, where there is one, the
entry inside it.
"""

from __future__ import annotations

import logging

from vigil.catalog.model import CatalogWarning

log = logging.getLogger("vigil.catalog")


# A hostile file can be wrong in every one of its entries (a million tar members, an rpm database
# of corrupt rows): past this many warnings about one file, one more says the rest are not listed.
# Warnings that say a file was not read past are counted apart, so a thousand corrupt rows never
# crowd out the one saying the read stopped (and that the scan is incomplete).
MAX_WARNINGS_PER_FILE = 1000


class WarningSink:
    def __init__(self) -> None:
        self.items: list[CatalogWarning] = []
        self.incomplete = False  # part of the image was not read: what the scan lists may be short
        self.unread: list[str] = []  # files a cataloger could not read, in the order they were met
        self._per_file: dict[tuple[str, bool], int] = {}

    def warn(self, file: str, entry: str | None, message: str) -> None:
        self._add(file, entry, message, stopped=False)

    def _add(self, file: str, entry: str | None, message: str, *, stopped: bool) -> None:
        key = (file, stopped)
        seen = self._per_file.get(key, 0) + 1
        self._per_file[key] = seen
        if seen > MAX_WARNINGS_PER_FILE + 1:
            return
        if seen == MAX_WARNINGS_PER_FILE + 1:
            entry, message = None, f"more than {MAX_WARNINGS_PER_FILE} warnings; the rest are not listed"
        item = CatalogWarning(file=file, entry=entry, message=message)
        log.warning("%s", item)
        self.items.append(item)

    def unreadable(self, file: str, message: str, entry: str | None = None) -> None:
        """A file a cataloger could not read: warned, listed in the scan's unread files, and the scan
        marked incomplete (the packages that file holds are missing)."""
        self.warn_incomplete(file, entry, message)
        if file not in self.unread:
            self.unread.append(file)

    def warn_incomplete(self, file: str, entry: str | None, message: str) -> None:
        """A warning about input that could not be read past: the scan is marked incomplete."""
        self._add(file, entry, message, stopped=True)
        self.incomplete = True
