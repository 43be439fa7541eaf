"""Real parts for the sensor's end-to-end tests: a loopback docker-registry holding an image the tests
build, and a private containerd that pulled it from there. Started once per session."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bpf_support import bpf_unavailable
from sensor_e2e import pull, push_image

from vigil.devtools.containerd import missing_tools, start_containerd
from vigil.devtools.registry_server import RegistryServer, find_registry_binary


def e2e_unavailable() -> str | None:
    """Why the end-to-end sensor tests cannot run here, or None."""
    missing = missing_tools() + ([] if find_registry_binary() else ["docker-registry"])
    if missing:
        return f"missing {', '.join(missing)}"
    return bpf_unavailable()


@pytest.fixture(scope="session")
def pushed_image(tmp_path_factory):
    """The test image, pushed to a real docker-registry on loopback (which stays up for the session)."""
    if find_registry_binary() is None:
        pytest.skip("docker-registry binary missing (Debian package docker-registry)")
    registry = RegistryServer(workdir=tmp_path_factory.mktemp("registry")).start()
    try:
        yield push_image(registry)
    finally:
        registry.close()


@pytest.fixture(scope="session")
def containerd_pulled(tmp_path_factory, pushed_image):
    """A private containerd (own root, state, socket) that pulled the test image with --plain-http."""
    missing = missing_tools()
    if missing:
        pytest.skip(f"missing {', '.join(missing)}")
    c = start_containerd(tmp_path_factory.mktemp("ctd-e2e") / "c")
    try:
        pull(c, pushed_image)
        yield c
    finally:
        c.stop()
