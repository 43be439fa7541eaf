"""`vigil intel import` and `vigil intel query` on a small record set written here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vigil.intel.cli import app

RECORDS = {
    "PYSEC-2024-1.json": {
        "id": "PYSEC-2024-1",
        "modified": "2024-03-01T00:00:00Z",
        "aliases": ["CVE-2024-0001", "GHSA-aaaa-bbbb-cccc"],
        "summary": "Path traversal in demo-lib",
        "affected": [
            {
                "package": {"ecosystem": "PyPI", "name": "demo-lib"},
                "ranges": [
                    {
                        "type": "ECOSYSTEM",
                        "events": [{"introduced": "0"}, {"fixed": "1.4.2"}],
                    }
                ],
            }
        ],
        "references": [{"type": "ADVISORY", "url": "https://example.org/PYSEC-2024-1"}],
    },
    "GHSA-aaaa-bbbb-cccc.json": {
        "id": "GHSA-aaaa-bbbb-cccc",
        "modified": "2024-03-02T00:00:00Z",
        "aliases": ["CVE-2024-0001"],
        "summary": "demo-lib path traversal",
        "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N"}],
        "affected": [
            {
                "package": {"ecosystem": "PyPI", "name": "Demo_Lib"},
                "ranges": [
                    {
                        "type": "ECOSYSTEM",
                        "events": [{"introduced": "1.0"}, {"fixed": "1.4.2"}],
                    }
                ],
            }
        ],
    },
    "MAL-2024-7.json": {
        "id": "MAL-2024-7",
        "modified": "2024-04-01T00:00:00Z",
        "summary": "Malicious code in demo-lib",
        "affected": [
            {
                "package": {"ecosystem": "PyPI", "name": "demo-lib"},
                "versions": ["1.3.0"],
            }
        ],
    },
    "PYSEC-2024-9.json": {
        "id": "PYSEC-2024-9",
        "modified": "2024-04-01T00:00:00Z",
        "withdrawn": "2024-04-02T00:00:00Z",
        "affected": [
            {
                "package": {"ecosystem": "PyPI", "name": "demo-lib"},
                "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}]}],
            }
        ],
    },
}


@pytest.fixture()
def records(tmp_path: Path) -> Path:
    folder = tmp_path / "records"
    folder.mkdir()
    for name, data in RECORDS.items():
        (folder / name).write_text(json.dumps(data))
    (folder / "broken.yaml").write_text("id: PYSEC-2024-10\nmodified: 2024-01-01\n")
    return folder


def run(*args: str):
    # A wide terminal so that table rows are not wrapped.
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "160"})


def test_import_then_import_again(records: Path, tmp_path: Path) -> None:
    db = tmp_path / "intel.db"
    result = run("import", str(records), "--db", str(db))
    assert result.exit_code == 1  # a record was rejected
    assert result.stdout == (
        "imported 4, updated 0, unchanged 0, rejected 1 (5 records in 5 files; 4 advisories in the database)\n"
        f"rejected: {records / 'broken.yaml'}: PYSEC-2024-10: modified '2024-01-01' is not an RFC 3339 timestamp "
        "(YYYY-MM-DDTHH:MM:SSZ)\n"
    )
    (records / "broken.yaml").unlink()
    updated = dict(RECORDS["MAL-2024-7.json"], modified="2024-05-01T00:00:00Z")
    (records / "MAL-2024-7.json").write_text(json.dumps(updated))
    result = run("import", str(records), "--db", str(db))
    assert result.exit_code == 0
    assert result.stdout == (
        "imported 0, updated 1, unchanged 3, rejected 0 (4 records in 4 files; 4 advisories in the database)\n"
    )


def test_query_table_and_json(records: Path, tmp_path: Path) -> None:
    db = tmp_path / "intel.db"
    run("import", str(records), "--db", str(db))
    result = run(
        "query",
        "--ecosystem",
        "PyPI",
        "--package",
        "Demo.Lib",
        "--version",
        "1.3.0",
        "--db",
        str(db),
    )
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        "PyPI Demo.Lib 1.3.0: 2 vulnerabilities\n"
        "ID             SEVERITY           FIXED  ALIASES                            SUMMARY                   \n"
        "CVE-2024-0001  high 7.5           1.4.2  GHSA-aaaa-bbbb-cccc, PYSEC-2024-1  demo-lib path traversal   \n"
        "MAL-2024-7     MALICIOUS unknown  -      -                                  Malicious code in demo-lib\n"
    )
    result = run(
        "query",
        "--ecosystem",
        "PyPI",
        "--package",
        "demo-lib",
        "--version",
        "0.9",
        "--db",
        str(db),
        "--output",
        "json",
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "ecosystem": "PyPI",
        "package": "demo-lib",
        "version": "0.9",
        "vulnerabilities": [
            {
                "id": "CVE-2024-0001",
                "advisories": ["PYSEC-2024-1"],
                "aliases": ["CVE-2024-0001", "GHSA-aaaa-bbbb-cccc", "PYSEC-2024-1"],
                # PYSEC-2024-1 has no rating; GHSA-aaaa-bbbb-cccc, its alias (for other versions), has.
                "severity": {"level": "high", "score": 7.5, "source": "CVSS_V3", "from": "GHSA-aaaa-bbbb-cccc"},
                "fixed_versions": ["1.4.2"],
                "malicious": False,
                "summary": "Path traversal in demo-lib",
                "links": ["https://example.org/PYSEC-2024-1"],
            }
        ],
    }
    result = run(
        "query",
        "--ecosystem",
        "PyPI",
        "--package",
        "demo-lib",
        "--version",
        "1.4.2",
        "--db",
        str(db),
    )
    assert result.stdout == "PyPI demo-lib 1.4.2: no known vulnerabilities\n"


def test_query_errors(tmp_path: Path, records: Path) -> None:
    missing = tmp_path / "none.db"
    result = run(
        "query",
        "--ecosystem",
        "PyPI",
        "--package",
        "x",
        "--version",
        "1",
        "--db",
        str(missing),
    )
    assert result.exit_code == 2
    assert result.stderr == f"error: advisory database {missing} does not exist; run `vigil intel import` first\n"
    db = tmp_path / "intel.db"
    run("import", str(records), "--db", str(db))
    result = run(
        "query",
        "--ecosystem",
        "Pypi",
        "--package",
        "x",
        "--version",
        "1",
        "--db",
        str(db),
    )
    assert (result.exit_code, result.stderr) == (
        2,
        "error: unknown ecosystem 'Pypi'; did you mean PyPI?\n",
    )


@pytest.fixture
def jinja_db(tmp_path, osv_data):
    db = tmp_path / "intel.db"
    assert run("import", str(osv_data / "pypa" / "jinja2"), "--db", str(db)).exit_code == 0
    return db


def test_query_refuses_a_version_the_scheme_cannot_parse(jinja_db):
    # Five real jinja2 advisories have "introduced: 0"; "zzz" must not be ordered below them.
    result = run("query", "--ecosystem", "PyPI", "--package", "jinja2", "--version", "zzz", "--db", str(jinja_db))
    assert (result.exit_code, result.stdout, result.stderr) == (
        2,
        "",
        "error: version 'zzz' is not a valid PEP 440 version (the version scheme of ecosystem PyPI): "
        "neither PEP 440 nor a legacy version (legacy versions begin with a digit)\n",
    )
    legacy = run("query", "--ecosystem", "PyPI", "--package", "jinja2", "--version", "2.10", "--db", str(jinja_db))
    assert legacy.stdout.startswith("PyPI jinja2 2.10: 2 vulnerabilities\n")


def test_query_suggests_the_ecosystems_spelling(jinja_db):
    result = run("query", "--ecosystem", "pypi", "--package", "jinja2", "--version", "2.10", "--db", str(jinja_db))
    assert (result.exit_code, result.stderr) == (2, "error: unknown ecosystem 'pypi'; did you mean PyPI?\n")
    release = run("query", "--ecosystem", "debian:12", "--package", "x", "--version", "1", "--db", str(jinja_db))
    assert release.stderr == "error: unknown ecosystem 'debian:12'; did you mean Debian:12?\n"
