"""The package catalogers, registered in one table.

To support a new ecosystem, write a class with ``name``, ``version``, ``keeps`` and
``catalog`` (see ``base.Cataloger``) and add it here; nothing else changes. A scan
records the version of every cataloger it ran, so stored scans are catalogued again
when a cataloger that found packages in them changes (``vigil.model.scan.is_stale``).
"""

from __future__ import annotations

from vigil.catalog.catalogers.apk import ApkCataloger
from vigil.catalog.catalogers.base import CatalogContext, Cataloger
from vigil.catalog.catalogers.composer import ComposerCataloger
from vigil.catalog.catalogers.dotnet import DotnetDepsCataloger
from vigil.catalog.catalogers.dpkg import DpkgCataloger
from vigil.catalog.catalogers.golang import GoBinaryCataloger
from vigil.catalog.catalogers.java import JavaArchiveCataloger
from vigil.catalog.catalogers.npm import NpmCataloger
from vigil.catalog.catalogers.python import PythonCataloger
from vigil.catalog.catalogers.rpm import RpmCataloger
from vigil.catalog.catalogers.ruby import RubyGemCataloger
from vigil.catalog.catalogers.rust import CargoAuditableCataloger

CATALOGERS: dict[str, Cataloger] = {
    c.name: c
    for c in (
        DpkgCataloger(),
        ApkCataloger(),
        RpmCataloger(),
        PythonCataloger(),
        NpmCataloger(),
        GoBinaryCataloger(),
        JavaArchiveCataloger(),
        RubyGemCataloger(),
        ComposerCataloger(),
        DotnetDepsCataloger(),
        CargoAuditableCataloger(),
    )
}


def cataloger_versions() -> dict[str, int]:
    """name -> version of every registered cataloger (read at each call: the table is the truth)."""
    return {name: c.version for name, c in CATALOGERS.items()}


__all__ = ["CATALOGERS", "CatalogContext", "Cataloger", "cataloger_versions"]
