"""What the scanner and the service's store exchange through the scan queue.

The scanner claims a ``ScanJob``, pulls and catalogs the image, and hands back a ``ScanResult``
(or an error); the store keeps it under the running digest. ``ScanOutcome`` is what one job came
to, as the scanner reports it to whoever ran it.
"""

from __future__ import annotations

from dataclasses import dataclass
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


@dataclass(frozen=True, slots=True)
class ScanResult:
    """What a worker read, ready for the store (built from ``vigil.catalog.ImageContents``)."""

    manifest_digest: str
    source: str
    platform: str
    os: dict | None
    files: list[FileRow]
    packages: list[PackageRow]
    warnings: list[str]


ScanStatus = Literal["done", "failed", "lost"]  # lost: another worker took the job over


@dataclass(frozen=True)
class ScanOutcome:
    digest: str
    status: ScanStatus
    error: str | None = None
    seconds: float = 0.0
    packages: int = 0
    files: int = 0


QueueCounts = dict[str, int]  # what one enqueue did: queued, retried, requeued
