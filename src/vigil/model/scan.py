"""What the scanner and the service's store exchange through the scan queue.

The scanner claims a ``ScanJob``, pulls and catalogs the image, and hands back a ``ScanResult``
(or an error); the store keeps it under the running digest. ``ScanOutcome`` is what one job came
to, as the scanner reports it to whoever ran it.

A scan records the version of every cataloger it ran and how many packages each found
(``ScanResult.catalogers``); ``is_stale`` says, from that record and the catalogers a scanner
runs now, whether the stored contents must be catalogued again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypedDict


@dataclass(frozen=True, slots=True)
class ScanJob:
    """A claimed scan: the digest, the platform to pick in an index, where it can be pulled from."""

    digest: str
    platform: str
    attempts: int
    worker: str
    sources: tuple[tuple[str, str], ...]  # (registry, repository) of every image row with this digest


class FileRow(TypedDict):
    path: str
    kind: Literal["file", "symlink"]
    sha256: str | None
    size: int | None
    mode: int | None
    target: str | None


class PackageRow(TypedDict):
    type: str
    name: str
    version: str
    purl: str
    ecosystem: str | None
    cataloger: str
    found_in: str
    source_name: str | None
    source_version: str | None
    arch: str | None
    files: list[str]
    details: dict[str, Any]


class CatalogerRecord(TypedDict):
    """One cataloger's part in a stored scan."""

    version: int
    packages: int  # how many it found
    failed: bool  # it raised; its packages are missing


CatalogerVersions = Mapping[str, int]  # cataloger name -> version, as a scanner runs them now


def is_stale(recorded: Mapping[str, CatalogerRecord] | None, current: CatalogerVersions) -> bool:
    """Must a stored scan be catalogued again by a scanner running the ``current`` catalogers?

    Yes when the scan recorded no catalogers (it predates the record), when a current cataloger
    did not run in it (a new one may find packages in any image), or when a cataloger that took
    part in it (found packages, or failed) now has another version or is gone. A version change
    of a cataloger that found nothing in the image leaves the scan alone: it found nothing there
    to read differently. (A cataloger that learns to read files it never looked at before is a
    new cataloger, under a new name: every image is then catalogued again.)
    """
    if not recorded:
        return True
    if any(name not in recorded for name in current):
        return True
    return any(
        (run["packages"] > 0 or run["failed"]) and current.get(name) != run["version"] for name, run in recorded.items()
    )


@dataclass(frozen=True, slots=True)
class ScanResult:
    """What a worker read, ready for the store (built from ``vigil.catalog.ImageContents``)."""

    manifest_digest: str
    source: str
    platform: str
    os: dict[str, Any] | None
    files: list[FileRow]
    packages: list[PackageRow]
    warnings: list[str]
    catalogers: dict[str, CatalogerRecord] = field(default_factory=dict)  # by cataloger name
    incomplete: bool = False  # part of the image could not be read (the warnings say where)
    unread_files: list[str] = field(default_factory=list)  # files a cataloger could not read (the warnings say why)


ScanStatus = Literal["done", "failed", "lost"]  # lost: another worker took the job over


@dataclass(frozen=True)
class ScanOutcome:
    digest: str
    status: ScanStatus
    error: str | None = None
    seconds: float = 0.0
    packages: int = 0
    files: int = 0


QueueCounts = dict[str, int]  # what one enqueue did: queued, retried, requeued (, recatalogued)
