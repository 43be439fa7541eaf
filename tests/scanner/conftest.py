"""Real parts for the scanner tests: the cached Debian rootfs, PyPI wheels and a Debian-built
Go binary (the catalog tests' fixtures, reused), a docker-registry on loopback, a live service."""

from __future__ import annotations

import pytest

# The catalog tests build and cache these real parts; reuse them rather than build twice.
from catalog.conftest import debian_go_binary, debian_rootfs, python_site  # noqa: F401
from vigil.devtools.registry_server import RegistryServer


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    with RegistryServer.for_pytest(tmp_path_factory.mktemp("registry")) as server:
        yield server
