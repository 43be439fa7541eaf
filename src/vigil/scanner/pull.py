"""An image in a registry -> its contents: manifest (the platform's, in an index),
then each layer streamed from the registry through ``vigil.catalog``.

Nothing is held in memory beyond the catalog's read buffer: each layer blob is
read once, front to back, and verified against its digest by the registry
client as it streams (a tampered layer raises ``DigestMismatch``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from vigil.catalog import ImageContents, LayerBlob, catalog_layers
from vigil.catalog.limits import ScanLimits
from vigil.catalog.scan import Progress
from vigil.model.image import ImageRef
from vigil.registry import ImageIndex, ImageManifest, Platform, RegistryClient

DEFAULT_PLATFORM = Platform("linux", "amd64")


@dataclass(frozen=True, slots=True)
class PulledImage:
    contents: ImageContents
    manifest_digest: str  # the platform manifest that was cataloged
    platform: str  # the platform chosen in an index, or the manifest's own ("" if unknown)


def platform_manifest(
    client: RegistryClient, ref: ImageRef, reference: str, platform: Platform
) -> tuple[ImageManifest, str]:
    """The image manifest for ``reference`` (a tag or digest); in an index, the one for ``platform``."""
    manifest = client.get_manifest(ref, reference)
    if isinstance(manifest, ImageManifest):
        return manifest, ""
    assert isinstance(manifest, ImageIndex)
    child, entry = client.index_entry(ref, manifest, platform, reference)
    return child, str(entry.platform)


def pull_contents(
    client: RegistryClient,
    ref: ImageRef,
    reference: str,
    platform: Platform = DEFAULT_PLATFORM,
    progress: Progress | None = None,
    limits: ScanLimits | None = None,
) -> PulledImage:
    """Catalog ``ref`` at ``reference`` (a digest, or a tag for people on the CLI)."""
    manifest, chosen = platform_manifest(client, ref, reference, platform)

    def blobs() -> Iterator[LayerBlob]:
        for layer in manifest.layers:
            with client.open_blob(ref, layer.digest, layer.size) as reader:
                yield LayerBlob(layer.media_type, reader, layer.digest, layer.size)  # type: ignore[arg-type]

    contents = catalog_layers(blobs(), progress=progress, total=len(manifest.layers), limits=limits)
    return PulledImage(contents, manifest.digest, chosen)
