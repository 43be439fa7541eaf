"""Shared fixtures: real stores (SQLite and a throwaway PostgreSQL) and a live service on loopback."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from vigil.devtools.postgres import PostgresUnavailable, ThrowawayPostgres
from vigil.devtools.service import LiveService

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared test data missing at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def postgres():
    try:
        pg = ThrowawayPostgres().start()
    except PostgresUnavailable as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"PostgreSQL unavailable: {exc}")
    yield pg
    pg.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'vigil.db'}"
    pg = request.getfixturevalue("postgres")
    pg.reset()
    return pg.url


@pytest.fixture
def live_service(tmp_path):
    """A real service (uvicorn on loopback, SQLite in a temp dir)."""
    svc = LiveService(tmp_path / "data").start()
    yield svc
    svc.stop()


@pytest.fixture
def service_on(tmp_path, database_url):
    """A real service on each store backend (SQLite, PostgreSQL)."""
    svc = LiveService(tmp_path / "data", database_url).start()
    yield svc
    svc.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """In CI every capability is installed (.ci/run): a skip there is a missing capability, so it fails."""
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CI") and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, where every capability must be present: {reason}"
