"""Where a Java package lives (pure): the archive file on disk and, for a nested jar, its place inside it.

The Java cataloger (vigil.catalog.catalogers.java) records each package's ``found_in`` as the archive's path,
with each level of nesting appended after a ``:`` (``/app/app.jar:BOOT-INF/lib/log4j-core-2.14.1.jar``, an
ear's ``/srv/app.ear:web.war:WEB-INF/lib/x.jar``), and its ``files`` as the one file on disk that holds it:
the outermost archive. A JVM opens that file and reads the nested jars out of it, so the kernel sees only the
outer archive; a jar of an exploded directory (``/srv/app/WEB-INF/lib/x.jar`` on disk) is a file of its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["ArchivePlace", "archive_place"]


@dataclass(frozen=True, slots=True)
class ArchivePlace:
    archive: str  # the file on disk, as the catalog spells it
    entry: str  # the nested jar's path inside it (levels joined by ":"); empty for the archive itself

    @property
    def nested(self) -> bool:
        return bool(self.entry)


def archive_place(found_in: str, files: Sequence[str]) -> ArchivePlace | None:
    """Where a maven package's code is, from its catalog row; None when the row names no archive.

    Without ``files`` (rows that predate them) the archive is ``found_in`` itself: a path is never split at a
    ``:`` it may hold, so such a nested row names no file on disk, which no open matches."""
    archive = files[0] if files else found_in
    if not archive:
        return None
    if found_in == archive or not found_in.startswith(archive + ":"):
        return ArchivePlace(archive, "")
    return ArchivePlace(archive, found_in[len(archive) + 1 :])
