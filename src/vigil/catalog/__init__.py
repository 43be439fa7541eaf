"""Image contents: layers -> file manifest (path, sha256, size, mode) and
packages (dpkg, apk, rpm, Python, npm, Go binaries, Java archives).

Public entry points: ``catalog_layers`` (layer streams, e.g. from a registry),
``catalog_oci_layout``, ``catalog_rootfs`` and ``catalog_path`` (either, told
apart on disk). Each returns an ``ImageContents``.
"""

from vigil.catalog.catalogers import CATALOGERS, cataloger_versions
from vigil.catalog.model import (
    CatalogerRun,
    CatalogWarning,
    FileManifest,
    FileRecord,
    ImageContents,
    LayerRecord,
    OSRelease,
    Package,
    SymlinkRecord,
)
from vigil.catalog.oci import LayoutError
from vigil.catalog.osrelease import os_ecosystem
from vigil.catalog.scan import (
    LayerBlob,
    LayerDigestMismatch,
    catalog_layers,
    catalog_oci_layout,
    catalog_path,
    catalog_rootfs,
)

__all__ = [
    "CATALOGERS",
    "CatalogerRun",
    "CatalogWarning",
    "FileManifest",
    "FileRecord",
    "ImageContents",
    "LayerBlob",
    "LayerDigestMismatch",
    "LayerRecord",
    "LayoutError",
    "OSRelease",
    "Package",
    "SymlinkRecord",
    "catalog_layers",
    "catalog_oci_layout",
    "catalog_path",
    "catalog_rootfs",
    "cataloger_versions",
    "os_ecosystem",
]
