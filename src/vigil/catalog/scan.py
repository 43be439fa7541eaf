"""Entry points: an image (layer streams, an OCI layout, a rootfs directory)
in, ``ImageContents`` (OS, file manifest, packages, warnings) out."""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from vigil.catalog.catalogers import CATALOGERS, CatalogContext, Cataloger
from vigil.catalog.fsview import FileView
from vigil.catalog.layers import KeepRule, LayerApplier
from vigil.catalog.limits import LimitExceeded, ScanBudget, ScanLimits
from vigil.catalog.model import CatalogerRun, ImageContents, LayerRecord
from vigil.catalog.oci import LayoutError, blob_path, is_oci_layout, resolve_image
from vigil.catalog.osrelease import OS_RELEASE_PATHS, detect_os
from vigil.catalog.rootfs import walk_rootfs
from vigil.catalog.unread_databases import warn_unread_databases
from vigil.catalog.warnings import WarningSink


class LayerDigestMismatch(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class LayerBlob:
    """One layer as a caller (an OCI layout, a registry client) hands it over:
    a readable stream positioned at the blob's first byte. With ``digest``, the
    bytes read are checked against it."""

    media_type: str
    stream: BinaryIO
    digest: str | None = None
    size: int | None = None


# A layer given as (media_type, stream) or (media_type, stream, digest).
LayerTuple = tuple[str, BinaryIO] | tuple[str, BinaryIO, str | None]


class Progress(Protocol):
    def layer_started(self, index: int, total: int | None, media_type: str, size: int | None) -> None: ...
    def layer_advanced(self, index: int, read: int) -> None: ...
    def layer_finished(self, record: LayerRecord) -> None: ...
    def cataloging(self, cataloger: str) -> None: ...


def _keep_rule(catalogers: Iterable[Cataloger]) -> KeepRule:
    chosen = tuple(catalogers)
    os_files = set(OS_RELEASE_PATHS)

    def keep(path: str, mode: int, head: bytes) -> bool:
        return path in os_files or any(c.keeps(path, mode, head) for c in chosen)

    return keep


def _run_catalogers(
    view: FileView,
    warnings: WarningSink,
    workdir: Path,
    catalogers: Iterable[Cataloger],
    layers: list[LayerRecord],
    progress: Progress | None,
    budget: ScanBudget,
) -> ImageContents:
    os = detect_os(view, warnings)
    ctx = CatalogContext(os=os, warnings=warnings, workdir=workdir, budget=budget)
    packages = []
    runs: dict[str, CatalogerRun] = {}
    for cataloger in catalogers:
        if progress is not None:
            progress.cataloging(cataloger.name)
        try:
            budget.check_deadline()
            found = cataloger.catalog(view, ctx)
        except LimitExceeded as exc:
            warnings.warn_incomplete(f"cataloger {cataloger.name}", None, f"{exc}; its packages may be missing")
            runs[cataloger.name] = CatalogerRun(cataloger.version, 0, failed=True)
            continue
        except Exception as exc:  # one broken cataloger must not lose the others' results
            warnings.warn(f"cataloger {cataloger.name}", None, f"failed, its packages are missing: {exc!r}")
            runs[cataloger.name] = CatalogerRun(cataloger.version, 0, failed=True)
            continue
        packages.extend(found)
        runs[cataloger.name] = CatalogerRun(cataloger.version, len(found))
    warn_unread_databases(view, warnings)
    packages.sort(key=lambda p: (p.type, p.name, p.version, p.found_in))
    return ImageContents(
        os=os,
        manifest=view.manifest(),
        packages=packages,
        warnings=warnings.items,
        layers=layers,
        catalogers=runs,
        incomplete=warnings.incomplete,
        unread=sorted(warnings.unread),
    )


def catalog_layers(
    layers: Iterable[LayerBlob | LayerTuple],
    *,
    catalogers: Iterable[Cataloger] | None = None,
    progress: Progress | None = None,
    total: int | None = None,
    limits: ScanLimits | None = None,
) -> ImageContents:
    """Apply layer blobs in order (lowest first) and catalog the result.

    Each item is a ``LayerBlob`` or a ``(media_type, stream[, digest])`` tuple.
    Streams are read once, front to back; nothing is held in memory beyond a
    read buffer and the files catalogers asked to keep (spooled to a temp dir).
    """
    chosen = list(catalogers if catalogers is not None else CATALOGERS.values())
    warnings = WarningSink()
    budget = ScanBudget(limits or ScanLimits())
    with tempfile.TemporaryDirectory(prefix="vigil-catalog-") as tmp:
        work = Path(tmp)
        (work / "files").mkdir()
        (work / "scratch").mkdir()
        applier = LayerApplier(_keep_rule(chosen), work / "files", warnings, budget)
        for n, item in enumerate(layers):
            if applier.stopped is not None:
                break  # a limit for the whole scan was reached: the warning says which
            blob = item if isinstance(item, LayerBlob) else LayerBlob(*item)
            if progress is not None:
                progress.layer_started(n, total, blob.media_type, blob.size)
            hook = (lambda read, n=n: progress.layer_advanced(n, read)) if progress is not None else None
            record = applier.apply(blob.media_type, blob.stream, hook)
            if blob.digest is not None and blob.digest != record.digest and not applier.truncated:
                raise LayerDigestMismatch(f"layer {n}: blob read has digest {record.digest}, expected {blob.digest}")
            if progress is not None:
                progress.layer_finished(record)
        return _run_catalogers(applier.view(), warnings, work / "scratch", chosen, applier.layers, progress, budget)


def catalog_oci_layout(
    path: str | Path,
    platform: str | None = None,
    *,
    ref: str | None = None,
    catalogers: Iterable[Cataloger] | None = None,
    progress: Progress | None = None,
    limits: ScanLimits | None = None,
) -> ImageContents:
    """Catalog the image of an OCI image layout directory (``platform`` like
    ``linux/amd64`` chooses in a multi-platform index)."""
    layout = Path(path)
    if not is_oci_layout(layout):
        raise LayoutError(f"{layout}: not an OCI image layout (needs oci-layout and index.json)")
    image = resolve_image(layout, platform, ref)

    def blobs() -> Iterator[LayerBlob]:
        for d in image.layers:
            p = blob_path(layout, d.digest)
            if not p.is_file():
                raise LayoutError(f"{layout}: layer blob {d.digest} is missing")
            with p.open("rb") as f:
                yield LayerBlob(d.media_type, f, d.digest, d.size)

    return catalog_layers(blobs(), catalogers=catalogers, progress=progress, total=len(image.layers), limits=limits)


def catalog_rootfs(
    path: str | Path,
    *,
    catalogers: Iterable[Cataloger] | None = None,
    progress: Progress | None = None,
    limits: ScanLimits | None = None,
) -> ImageContents:
    """Catalog an unpacked root filesystem directory, read in place."""
    chosen = list(catalogers if catalogers is not None else CATALOGERS.values())
    warnings = WarningSink()
    view = walk_rootfs(Path(path), warnings)
    with tempfile.TemporaryDirectory(prefix="vigil-catalog-") as tmp:
        return _run_catalogers(view, warnings, Path(tmp), chosen, [], progress, ScanBudget(limits or ScanLimits()))


def catalog_path(
    path: str | Path,
    platform: str | None = None,
    *,
    progress: Progress | None = None,
    limits: ScanLimits | None = None,
) -> ImageContents:
    """An OCI layout directory or a rootfs directory, told apart by ``oci-layout``."""
    p = Path(path)
    if is_oci_layout(p):
        return catalog_oci_layout(p, platform, progress=progress, limits=limits)
    if p.is_dir():
        return catalog_rootfs(p, progress=progress, limits=limits)
    raise NotADirectoryError(f"{p}: neither an OCI image layout nor a rootfs directory")
