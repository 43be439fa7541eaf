"""Collect what the catalog skipped, so nothing is dropped silently.

Every warning goes both to Python logging (operators) and to the result's
``warnings`` list (users, API). It names the file and, where there is one, the
entry inside it.
"""

from __future__ import annotations

import logging

from vigil.catalog.model import CatalogWarning

log = logging.getLogger("vigil.catalog")


class WarningSink:
    def __init__(self) -> None:
        self.items: list[CatalogWarning] = []
        self.incomplete = False  # part of the image was not read: what the scan lists may be short

    def warn(self, file: str, entry: str | None, message: str) -> None:
        item = CatalogWarning(file=file, entry=entry, message=message)
        log.warning("%s", item)
        self.items.append(item)

    def warn_incomplete(self, file: str, entry: str | None, message: str) -> None:
        """A warning about input that could not be read past: the scan is marked incomplete."""
        self.warn(file, entry, message)
        self.incomplete = True
