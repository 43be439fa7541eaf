"""``vigil scan`` of a rootfs holding a gem, Composer packages, a .NET application, a
cargo-auditable Rust binary and Tomcat's catalina.jar, each at a vulnerable and at a fixed
version, with the advisories of their ecosystems imported: exactly the vulnerable ones are
reported, and advisory coverage names each ecosystem as loaded.

Advisories: the real RustSec record RUSTSEC-2021-0003 (smallvec, ../shared/data/osv/crates.io,
CC0-1.0); for RubyGems, Packagist, NuGet and Maven, records written here in the OSV schema's
shape (there is no such data in ../shared/data), their ids marked as the test's."""

from __future__ import annotations

import json
import zlib
from pathlib import Path

from typer.testing import CliRunner

from vigil.cli import app
from vigil.devtools.artifacts import elf_with_sections, tomcat_manifest, zip_bytes

from .expected import SHARED_DATA
from .helpers import import_advisories, write_record


def ghsa_shape(id_: str, ecosystem: str, name: str, fixed: str, introduced: str = "0") -> dict:
    return {
        "schema_version": "1.6.0",
        "id": id_,
        "modified": "2024-02-01T00:00:00Z",
        "published": "2024-01-15T00:00:00Z",
        "affected": [
            {
                "package": {"ecosystem": ecosystem, "name": name},
                "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": introduced}, {"fixed": fixed}]}],
            }
        ],
        "database_specific": {"severity": "HIGH"},
    }


def write(root: Path, files: dict[str, bytes | str], mode: int = 0o644) -> None:
    for path, data in files.items():
        target = root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data.encode() if isinstance(data, str) else data)
        target.chmod(mode)


RUSTSEC = SHARED_DATA / "osv" / "crates.io" / "RUSTSEC-2021-0003.json"
RECORDS = [
    ghsa_shape("GHSA-test-ruby-0001", "RubyGems", "nokogiri", "1.16.2"),
    ghsa_shape("GHSA-test-php-0001", "Packagist", "symfony/http-kernel", "5.4.31", "5.0.0"),
    ghsa_shape("GHSA-test-nuget-01", "NuGet", "Newtonsoft.Json", "13.0.1.1"),
    ghsa_shape("GHSA-test-maven-01", "Maven", "org.apache.tomcat:tomcat-catalina", "9.0.72", "9.0.0"),
]


def build_rootfs(root: Path) -> None:
    for v in ("1.15.4", "1.16.2"):
        write(root, {f"/gems{v}/specifications/nokogiri-{v}.gemspec": f"# stub: nokogiri {v} ruby lib\n"})
    for v in ("v5.4.30", "v5.4.31"):
        write(
            root,
            {f"/srv/{v}/vendor/composer/installed.json": json.dumps([{"name": "symfony/http-kernel", "version": v}])},
        )
    for v in ("13.0.1", "13.0.3"):
        write(
            root, {f"/app{v}/app.deps.json": json.dumps({"libraries": {f"Newtonsoft.Json/{v}": {"type": "package"}}})}
        )
    for v in ("1.6.0", "1.6.1"):
        audit = {"packages": [{"name": "smallvec", "version": v, "source": "crates.io"}]}
        write(root, {f"/bin/app-{v}": elf_with_sections({".dep-v0": zlib.compress(json.dumps(audit).encode())})}, 0o755)
    for v in ("9.0.71", "9.0.72"):
        write(
            root, {f"/tomcat-{v}/lib/catalina.jar": zip_bytes({"META-INF/MANIFEST.MF": tomcat_manifest("catalina", v)})}
        )


def test_scan_reports_the_vulnerable_versions_of_each_new_ecosystem(tmp_path):
    records = tmp_path / "records"
    for record in RECORDS:
        write_record(records, record)
    db = tmp_path / "intel.db"
    import_advisories(db, records, RUSTSEC)
    root = tmp_path / "root"
    build_rootfs(root)
    result = CliRunner().invoke(app, ["scan", str(root), "--db", str(db), "-o", "json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    got = sorted(
        (a, v["package"]["name"], v["package"]["version"]) for v in doc["vulnerabilities"] for a in v["advisory_ids"]
    )
    assert got == [
        ("GHSA-test-maven-01", "org.apache.tomcat:tomcat-catalina", "9.0.71"),
        ("GHSA-test-nuget-01", "Newtonsoft.Json", "13.0.1"),
        ("GHSA-test-php-0001", "symfony/http-kernel", "v5.4.30"),
        ("GHSA-test-ruby-0001", "nokogiri", "1.15.4"),
        ("RUSTSEC-2021-0003", "smallvec", "1.6.0"),
    ]
    coverage = {e["ecosystem"]: (e["packages"], e["loaded"], e["records"]) for e in doc["coverage"]["ecosystems"]}
    assert coverage == {
        "Maven": (2, True, 1),
        "NuGet": (2, True, 1),
        "Packagist": (2, True, 1),
        "RubyGems": (2, True, 1),
        "crates.io": (2, True, 1),
    }
    assert doc["coverage"]["status"] == "complete"
