"""Real parts for runtime analysis end-to-end tests: a loopback docker-registry and a private
containerd (the sensor tests' harness), started once per session."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sensor"))

from runtime_e2e import RegistryServer, find_registry_binary, missing_tools

from vigil.devtools.containerd import start_containerd


@pytest.fixture(scope="session")
def registry(tmp_path_factory):
    if find_registry_binary() is None:
        pytest.skip("docker-registry binary missing (Debian package docker-registry)")
    reg = RegistryServer(workdir=tmp_path_factory.mktemp("rt-registry")).start()
    yield reg
    reg.close()


@pytest.fixture(scope="session")
def containerd(tmp_path_factory):
    missing = missing_tools()
    if missing:
        pytest.skip(f"missing {', '.join(missing)}")
    c = start_containerd(tmp_path_factory.mktemp("rt-ctd") / "c")
    yield c
    c.stop()
