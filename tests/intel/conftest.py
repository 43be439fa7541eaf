from __future__ import annotations

from pathlib import Path

import pytest

# The repository and shared/ are siblings (/work/main and /work/shared, likewise in CI).
SHARED_DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
OSV_DATA = SHARED_DATA / "osv"
VERSION_VECTORS = SHARED_DATA / "versions"


def require(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"shared test data {path} is missing (expected ../shared/data beside the repository)")
    return path


@pytest.fixture(scope="session")
def osv_data() -> Path:
    return require(OSV_DATA)


@pytest.fixture(scope="session")
def all_osv(osv_data: Path):
    """Every advisory of ../shared/data/osv, loaded once for the session."""
    from vigil.intel.loader import load_osv

    return load_osv([osv_data])


@pytest.fixture(scope="session")
def real_index(all_osv):
    from vigil.intel.matching import AdvisoryIndex

    return AdvisoryIndex.from_advisories(all_osv[0])
