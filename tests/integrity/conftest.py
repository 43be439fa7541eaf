"""Fixtures: real docker-registry servers (anonymous and htpasswd, deletes enabled) and a real service."""

from __future__ import annotations

import pytest

from vigil.devtools.registry_server import RegistryServer
from vigil.devtools.service import LiveService

from .integrity_helpers import USERS


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    with RegistryServer.for_pytest(tmp_path_factory.mktemp("registry")) as server:
        yield server


@pytest.fixture(scope="module")
def auth_registry(tmp_path_factory):
    with RegistryServer.for_pytest(tmp_path_factory.mktemp("auth-registry"), users=USERS) as server:
        yield server


@pytest.fixture
def service(tmp_path):
    svc = LiveService(tmp_path / "data").start()
    yield svc
    svc.stop()
