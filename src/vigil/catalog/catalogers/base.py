"""What every package cataloger is: a name and a version, which files it needs kept while
layers stream past, and how it turns the final filesystem into packages."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from vigil.catalog.fsview import FileView
from vigil.catalog.limits import LimitExceeded, ScanBudget
from vigil.catalog.model import OSRelease, Package
from vigil.catalog.warnings import WarningSink


@dataclass(slots=True)
class CatalogContext:
    os: OSRelease | None
    warnings: WarningSink
    workdir: Path  # scratch space (nested archives), removed after the scan
    budget: ScanBudget = field(default_factory=ScanBudget)  # the scan's limits and what it used of them


class Cataloger(Protocol):
    name: str
    # Raise it whenever the packages read from the same files may differ (what is parsed, how a
    # field is read): stored images this cataloger found packages in are then catalogued again,
    # the others are left alone. Reading files it never looked at is a new cataloger (new name).
    version: int

    def keeps(self, path: str, mode: int, head: bytes) -> bool:
        """Does this cataloger need the bytes of this file? Decided from its
        path, permission bits and first bytes only: layers are streamed."""
        ...

    def catalog(self, view: FileView, ctx: CatalogContext) -> list[Package]: ...


@contextmanager
def reading(ctx: CatalogContext, file: str, what: str) -> Iterator[None]:
    """Read one file of the image: whatever it raises (a parser's own error, ``csv.Error``,
    ``RecursionError``, ``struct.error``, ``zlib.error``, ``RuntimeError``...) is a warning naming
    the file and the error, the file is listed as not read, and the cataloger goes on with the
    next file. A scan limit, or the scan process's memory running out, is no one file's to carry:
    those stop the cataloger (``catalog.scan`` says so)."""
    try:
        yield
    except (LimitExceeded, MemoryError):
        raise
    except Exception as exc:
        ctx.warnings.unreadable(file, f"{what} not read: {type(exc).__name__}: {exc}")
