"""What a scan result says about what it checked: advisory coverage per ecosystem
(a Debian image scanned with only PyPI advisories is "incomplete", not "clean"),
where each severity came from and how gates treat unrated vulnerabilities, and
packages whose version the ecosystem's scheme refuses. Advisories: the PyPA records
in ../shared/data, plus records written here in the same OSV format."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vigil.cli import app

from .expected import PYPA, SHARED_DATA
from .helpers import import_advisories, write_record

DEBIAN_STATUS = SHARED_DATA / "pkgdb" / "debian" / "status-multiple"


def run(*args: str):
    return CliRunner().invoke(app, list(args))


def _wheel(root: Path, name: str, version: str) -> None:
    info = root / "usr/lib/python3/dist-packages" / f"{name}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")


@pytest.fixture(scope="module")
def pypa_db(tmp_path_factory):
    path = tmp_path_factory.mktemp("intel") / "intel.db"
    import_advisories(path, PYPA / "jinja2")
    return path


@pytest.fixture
def debian_rootfs(tmp_path):
    root = tmp_path / "debian"
    (root / "etc").mkdir(parents=True)
    (root / "etc/os-release").write_text('PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n')
    (root / "var/lib/dpkg").mkdir(parents=True)
    (root / "var/lib/dpkg/status").write_bytes(DEBIAN_STATUS.read_bytes())
    _wheel(root, "Jinja2", "2.10")
    return root


@pytest.fixture
def jinja_rootfs(tmp_path):
    root = tmp_path / "jinja"
    _wheel(root, "Jinja2", "2.10")
    return root


def test_debian_image_without_debian_advisories_is_incomplete(debian_rootfs, pypa_db):
    table = run("scan", str(debian_rootfs), "--db", str(pypa_db))
    assert table.exit_code == 0, table.output
    assert "advisory coverage: incomplete\n" in table.stdout
    assert "  Debian:12: no advisories loaded (2 packages not checked)\n" in table.stdout
    assert "  PyPI: 5 advisories, as of 2021-11-22T04:57:52.929678Z (1 package)\n" in table.stdout

    doc = json.loads(run("scan", str(debian_rootfs), "--db", str(pypa_db), "-o", "json").stdout)
    assert doc["coverage"]["status"] == "incomplete"
    debian, pypi = doc["coverage"]["ecosystems"]
    assert debian == {"ecosystem": "Debian:12", "packages": 2, "loaded": False, "records": 0, "as_of": None}
    assert (pypi["ecosystem"], pypi["packages"], pypi["loaded"], pypi["records"]) == ("PyPI", 1, True, 5)
    assert pypi["as_of"] == "2021-11-22T04:57:52.929678Z"

    gated = run("scan", str(debian_rootfs), "--db", str(pypa_db), "--fail-on-incomplete", "-o", "json")
    assert gated.exit_code == 1
    assert "advisory coverage incomplete: no advisories for Debian:12: failing (--fail-on-incomplete)" in gated.stderr

    bom = json.loads(run("scan", str(debian_rootfs), "--db", str(pypa_db), "-o", "cyclonedx").stdout)
    props = {p["name"]: p["value"] for p in bom["metadata"]["properties"]}
    assert props["vigil:advisory-coverage"] == "incomplete"
    assert props["vigil:advisory-coverage:Debian:12"] == "Debian:12: no advisories loaded (2 packages not checked)"
    spdx = json.loads(run("scan", str(debian_rootfs), "--db", str(pypa_db), "-o", "spdx").stdout)
    assert spdx["creationInfo"]["comment"].startswith(
        "advisory coverage incomplete: Debian:12: no advisories loaded (2 packages not checked); PyPI: 5 advisories"
    )


def test_covered_scan_is_complete_and_passes_the_gate(jinja_rootfs, pypa_db):
    result = run("scan", str(jinja_rootfs), "--db", str(pypa_db), "--fail-on-incomplete", "-o", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["coverage"]["status"] == "complete"


def test_unrated_vulnerabilities_fail_every_threshold(jinja_rootfs, pypa_db):
    # PYSEC-2019-217 and PYSEC-2021-66 carry no CVSS vector and no rating of their own.
    table = run("scan", str(jinja_rootfs), "--db", str(pypa_db))
    assert "CVE-2019-10906  unknown (unrated)" in table.stdout
    for threshold in ("unknown", "low", "critical"):
        result = run("scan", str(jinja_rootfs), "--db", str(pypa_db), "--fail-on", threshold)
        assert result.exit_code == 1, threshold
        assert (
            f"2 vulnerabilities at or above {threshold} or unrated (2 unknown): failing (--fail-on {threshold})"
            in result.stderr
        )
    ignored = run("scan", str(jinja_rootfs), "--db", str(pypa_db), "--fail-on", "low", "--ignore-unknown")
    assert ignored.exit_code == 0, ignored.output


def test_severity_comes_from_the_aliased_record_and_says_so(jinja_rootfs, tmp_path):
    feed = tmp_path / "feed"
    feed.mkdir()
    write_record(
        feed,
        {
            "id": "GHSA-462w-v97r-4m45",
            "modified": "2024-01-01T00:00:00Z",
            "aliases": ["CVE-2019-10906"],
            "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:N/A:N"}],
            "affected": [
                {
                    "package": {"ecosystem": "PyPI", "name": "jinja2"},
                    "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "2.10.1"}]}],
                }
            ],
        },
    )
    write_record(
        feed,
        {
            "id": "GHSA-g3rq-g295-4j3m",
            "modified": "2024-01-01T00:00:00Z",
            "aliases": ["CVE-2020-28493"],
            "database_specific": {"severity": "MODERATE"},
            "affected": [
                {
                    "package": {"ecosystem": "PyPI", "name": "jinja2"},
                    "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "2.11.3"}]}],
                }
            ],
        },
    )
    db = tmp_path / "intel.db"
    import_advisories(db, PYPA / "jinja2", feed)
    doc = json.loads(run("scan", str(jinja_rootfs), "--db", str(db), "-o", "json").stdout)
    got = {v["id"]: v["severity"] for v in doc["vulnerabilities"]}
    assert got == {
        "CVE-2019-10906": {"level": "high", "score": 8.6, "source": "CVSS_V3", "from": "GHSA-462w-v97r-4m45"},
        "CVE-2020-28493": {
            "level": "medium",
            "score": None,
            "source": "database_specific",
            "from": "GHSA-g3rq-g295-4j3m",
        },
    }
    table = run("scan", str(jinja_rootfs), "--db", str(db))
    assert "CVE-2019-10906  high 8.6 (CVSS_V3)" in table.stdout
    assert "CVE-2020-28493  medium (database_specific)" in table.stdout
    bom = json.loads(run("scan", str(jinja_rootfs), "--db", str(db), "-o", "cyclonedx").stdout)
    sources = {
        v["id"]: next(p["value"] for p in v["properties"] if p["name"] == "vigil:severity-source")
        for v in bom["vulnerabilities"]
    }
    assert sources == {
        "CVE-2019-10906": "CVSS_V3 of GHSA-462w-v97r-4m45",
        "CVE-2020-28493": "database_specific of GHSA-g3rq-g295-4j3m",
    }


def test_a_version_the_scheme_refuses_is_a_warning_not_a_match(tmp_path, pypa_db):
    root = tmp_path / "root"
    _wheel(root, "Jinja2", "zzz")
    result = run("scan", str(root), "--db", str(pypa_db), "-o", "json")
    doc = json.loads(result.stdout)
    assert doc["vulnerabilities"] == []
    assert (
        "pypi/Jinja2 zzz: not matched: version 'zzz' is not a valid PEP 440 version "
        "(the version scheme of ecosystem PyPI): neither PEP 440 nor a legacy version "
        "(legacy versions begin with a digit)"
    ) in doc["warnings"]


def test_severity_comes_from_an_alias_record_that_names_no_package(jinja_rootfs, tmp_path):
    """A CVE record with a CVSS vector and no affected packages rates the PyPA records that alias it,
    in `vigil scan` and in `vigil intel query` alike."""
    feed = tmp_path / "feed"
    feed.mkdir()
    write_record(
        feed,
        {
            "id": "CVE-2019-10906",
            "modified": "2024-01-01T00:00:00Z",
            "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:N/A:N"}],
        },
    )
    db = tmp_path / "intel.db"
    import_advisories(db, PYPA / "jinja2", feed)
    doc = json.loads(run("scan", str(jinja_rootfs), "--db", str(db), "-o", "json").stdout)
    got = {v["id"]: v["severity"] for v in doc["vulnerabilities"]}
    assert got == {
        "CVE-2019-10906": {"level": "high", "score": 8.6, "source": "CVSS_V3", "from": "CVE-2019-10906"},
        "CVE-2020-28493": {"level": "unknown", "score": None, "source": None, "from": None},
    }
    query = run(
        "intel", "query", "--db", str(db), "--ecosystem", "PyPI", "--package", "jinja2", "--version", "2.10",
        "--output", "json",
    )  # fmt: skip
    rated = {v["id"]: v["severity"] for v in json.loads(query.stdout)["vulnerabilities"]}
    assert rated["CVE-2019-10906"] == got["CVE-2019-10906"]
