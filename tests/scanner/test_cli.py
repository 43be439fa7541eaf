"""`vigil scan` and `vigil sbom` for people and pipelines: a rootfs with PyPI wheels at old
versions, an OCI layout and an image pulled from a real registry; advisories from the PyPA
records; SBOMs checked with the CycloneDX and SPDX projects' own validators."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from vigil.cli import app
from vigil.devtools.oci import build_image, layer_from_dir, push, write_oci_layout

from .expected import PYPA, pypi_advisories
from .helpers import client_for, import_advisories

SITE = "usr/lib/python3/dist-packages"
PACKAGES = {"urllib3": "1.26.4", "Jinja2": "2.10", "idna": "2.8"}


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    path = tmp_path_factory.mktemp("intel") / "intel.db"
    import_advisories(path, *(PYPA / name.lower() for name in PACKAGES))
    return path


@pytest.fixture(scope="module")
def rootfs(tmp_path_factory, python_site):
    root = tmp_path_factory.mktemp("rootfs") / "root"
    shutil.copytree(python_site, root / SITE, symlinks=True)
    return root


@pytest.fixture(scope="module")
def expected():
    out = {}
    for name, version in PACKAGES.items():
        for advisory_id, aliases in pypi_advisories(name, version).items():
            out[advisory_id] = (name, aliases)
    return out


def run(*args: str):
    return CliRunner().invoke(app, list(args))


def test_scan_json_lists_the_records_advisories(rootfs, db, expected):
    result = run("scan", str(rootfs), "--db", str(db), "--output", "json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    got = {a: v["package"]["name"] for v in doc["vulnerabilities"] for a in v["advisory_ids"]}
    assert got == {a: name for a, (name, _) in expected.items()}
    for v in doc["vulnerabilities"]:
        assert set(v["aliases"]) >= {alias for a in v["advisory_ids"] for alias in expected[a][1]}
    assert {(p["name"], p["version"]) for p in doc["packages"] if p["type"] == "pypi"} >= set(PACKAGES.items())
    assert doc["summary"]["vulnerabilities"]["high"] == sum(
        1 for v in doc["vulnerabilities"] if v["severity"]["level"] == "high"
    )


def test_table_and_fail_on(rootfs, db):
    result = run("scan", str(rootfs), "--db", str(db))
    assert result.exit_code == 0
    assert "CVE-2023-43804" in result.stdout and "high 8.1" in result.stdout and "1.26.17, 2.0.6" in result.stdout
    tripped = run("scan", str(rootfs), "--db", str(db), "--fail-on", "high")
    assert tripped.exit_code == 1
    assert "vulnerabilities at or above high or unrated (" in tripped.stderr
    ignoring = run("scan", str(rootfs), "--db", str(db), "--fail-on", "high", "--ignore-unknown")
    assert "2 vulnerabilities at or above high: failing (--fail-on high)" in ignoring.stderr
    assert run("scan", str(rootfs), "--db", str(db), "--fail-on", "critical", "--ignore-unknown").exit_code == 0


def test_malicious_package_fails_on_critical(rootfs, db, tmp_path):
    mal_db = tmp_path / "intel.db"
    shutil.copy(db, mal_db)
    record = {
        "id": "MAL-2025-0002",
        "modified": "2025-01-01T00:00:00Z",
        "summary": "Malicious code in idna",
        "affected": [{"package": {"ecosystem": "PyPI", "name": "idna"}, "versions": ["2.8"]}],
    }
    (tmp_path / "mal").mkdir()
    (tmp_path / "mal" / "MAL-2025-0002.json").write_text(json.dumps(record))
    import_advisories(mal_db, tmp_path / "mal")
    result = run("scan", str(rootfs), "--db", str(mal_db), "--fail-on", "critical", "-o", "json")
    assert result.exit_code == 1
    [mal] = [v for v in json.loads(result.stdout)["vulnerabilities"] if v["malicious"]]
    assert (mal["id"], mal["package"]["name"]) == ("MAL-2025-0002", "idna")


def test_cyclonedx_validates_and_carries_vulnerabilities(rootfs, db):
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    result = run("scan", str(rootfs), "--db", str(db), "--output", "cyclonedx")
    assert result.exit_code == 0, result.output
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(result.stdout) is None
    doc = json.loads(result.stdout)
    purls = {c.get("purl") for c in doc["components"]}
    assert {"pkg:pypi/urllib3@1.26.4", "pkg:pypi/jinja2@2.10", "pkg:pypi/idna@2.8"} <= purls
    refs = {c["bom-ref"]: c["name"] for c in doc["components"]}
    affected = {(v["id"], refs[v["affects"][0]["ref"]]) for v in doc["vulnerabilities"]}
    as_json = json.loads(run("scan", str(rootfs), "--db", str(db), "--output", "json").stdout)
    assert affected == {(v["id"], v["package"]["name"]) for v in as_json["vulnerabilities"]}
    assert {name for _, name in affected} == {"urllib3", "Jinja2", "idna"}


def test_sbom_spdx_validates(rootfs, tmp_path):
    from spdx_tools.spdx.parser.parse_anything import parse_file
    from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

    out = tmp_path / "sbom.spdx.json"
    result = run("sbom", str(rootfs), "--format", "spdx", "--output", str(out))
    assert result.exit_code == 0, result.output
    assert validate_full_spdx_document(parse_file(str(out))) == []
    doc = json.loads(out.read_text())
    purls = {r["referenceLocator"] for p in doc["packages"] for r in p.get("externalRefs", [])}
    assert {"pkg:pypi/urllib3@1.26.4", "pkg:pypi/jinja2@2.10", "pkg:pypi/idna@2.8"} <= purls
    assert doc["spdxVersion"] == "SPDX-2.3"


def test_oci_layout_and_registry_image(rootfs, db, registry, tmp_path):
    image = build_image([layer_from_dir(rootfs)])
    layout = write_oci_layout(tmp_path / "layout", image)
    from_layout = json.loads(run("scan", str(layout), "--db", str(db), "-o", "json").stdout)
    assert from_layout["digest"] == image.digest
    with client_for(registry.host) as client:
        push(client, f"{registry.host}/cli/app:2", image)
    result = run("scan", f"{registry.host}/cli/app:2", "--db", str(db), "-o", "json", "--plain-http", registry.host)
    assert result.exit_code == 0, result.output
    pulled = json.loads(result.stdout)
    assert pulled["digest"] == image.digest and pulled["target"] == f"{registry.host}/cli/app:2"
    assert pulled["vulnerabilities"] == from_layout["vulnerabilities"]
    sbom = run("sbom", f"{registry.host}/cli/app:2", "--plain-http", registry.host)
    assert sbom.exit_code == 0 and json.loads(sbom.stdout)["metadata"]["component"]["version"] == image.digest


def test_errors_name_the_input(rootfs, db, tmp_path):
    missing = run("scan", str(rootfs), "--db", str(tmp_path / "none.db"))
    assert missing.exit_code == 2
    assert f"advisory database {tmp_path / 'none.db'} does not exist" in missing.stderr
    bad = run("scan", "Not A Valid/ref::x", "--db", str(db))
    assert (
        bad.exit_code == 2 and "Not A Valid/ref::x: not a directory, an OCI layout or an image reference" in bad.stderr
    )


def test_scan_says_which_package_databases_it_did_not_read(rootfs, db, tmp_path):
    """The PyPI site beside an opkg database: the packages found are listed, and the JSON names the
    file not read, with the warning saying why."""
    root = tmp_path / "root"
    shutil.copytree(rootfs, root, symlinks=True)
    (root / "usr/lib/opkg").mkdir(parents=True)
    (root / "usr/lib/opkg/status").write_text("Package: busybox\nVersion: 1.36.1-1\nStatus: install ok installed\n")
    result = run("scan", str(root), "--db", str(db), "--output", "json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert {(p["name"], p["version"]) for p in doc["packages"] if p["type"] == "pypi"} >= set(PACKAGES.items())
    assert doc["unread_files"] == ["/usr/lib/opkg/status"]
    assert (
        "/usr/lib/opkg/status: opkg database (OpenWrt) not read: Vigil has no cataloger for it; "
        "its packages are not listed" in doc["warnings"]
    )
