"""The scanner: pull running images, catalog their contents, match advisories.

- ``pull``: an image digest in a registry -> ``vigil.catalog.ImageContents`` (layers streamed).
- ``worker``: jobs taken from the service's store (``image_scans``), results written back.
- ``sbom``: CycloneDX and SPDX 2.3 documents of an image's packages.
- ``cli``: ``vigil scan``, ``vigil sbom`` and ``vigil scanner`` (a separate worker).
"""
