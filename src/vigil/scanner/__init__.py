"""The scanner: pull running images, catalog their contents, match advisories.

- ``pull``: an image digest in a registry -> ``vigil.catalog.ImageContents`` (layers streamed).
- ``queue``: the scan queue the worker needs (a protocol; the service's store implements it).
- ``worker``: jobs taken from a ``ScanQueue``, images pulled and catalogued, results handed back.
- ``sbom``: CycloneDX and SPDX 2.3 documents of an image's packages.
- ``cli``: ``vigil scan``, ``vigil sbom`` and ``vigil scanner`` (a separate worker).
"""
