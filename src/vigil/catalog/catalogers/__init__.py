"""The package catalogers, registered in one table.

To support a new ecosystem, write a class with ``name``, ``keeps`` and
``catalog`` (see ``base.Cataloger``) and add it here; nothing else changes.
"""

from __future__ import annotations

from vigil.catalog.catalogers.apk import ApkCataloger
from vigil.catalog.catalogers.base import CatalogContext, Cataloger
from vigil.catalog.catalogers.dpkg import DpkgCataloger
from vigil.catalog.catalogers.golang import GoBinaryCataloger
from vigil.catalog.catalogers.java import JavaArchiveCataloger
from vigil.catalog.catalogers.npm import NpmCataloger
from vigil.catalog.catalogers.python import PythonCataloger
from vigil.catalog.catalogers.rpm import RpmCataloger

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
    )
}

__all__ = ["CATALOGERS", "CatalogContext", "Cataloger"]
