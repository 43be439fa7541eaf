"""Packages the new catalogers read, matched against OSV advisories in their ecosystems: for each,
a vulnerable version is matched and the fixed one is not.

crates.io: the real RustSec records RUSTSEC-2021-0003 and RUSTSEC-2019-0009 (smallvec) from
``../shared/data/osv/crates.io`` (CC0-1.0). There is no RubyGems, Packagist, NuGet or Maven data
there: those records are written here in the OSV schema's shape, as GitHub's advisory database
exports them (ECOSYSTEM ranges, ``introduced``/``fixed`` events); their ids are marked as the test's.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path

from vigil.catalog import catalog_rootfs
from vigil.devtools.artifacts import elf_with_sections, tomcat_manifest, zip_bytes
from vigil.intel import AdvisoryIndex
from vigil.intel.osv import parse_record
from vigil.intel.vulnmatch import match_packages

from .conftest import OSV_DATA, require


def write(root: Path, files: dict[str, bytes | str], mode: int = 0o644) -> None:
    for path, data in files.items():
        target = root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data.encode() if isinstance(data, str) else data)
        target.chmod(mode)


def catalina_jar(version: str) -> bytes:
    """Tomcat's lib/catalina.jar as far as its coordinates go: the manifest Tomcat writes."""
    return zip_bytes(
        {"META-INF/MANIFEST.MF": tomcat_manifest("catalina", version), "org/apache/catalina/Server.class": b"\xca\xfe"}
    )


def ghsa_shape(id_: str, ecosystem: str, name: str, fixed: str, introduced: str = "0") -> dict:
    return {
        "schema_version": "1.6.0",
        "id": id_,
        "modified": "2024-02-01T00:00:00Z",
        "published": "2024-01-15T00:00:00Z",
        "summary": f"test advisory for {name}",
        "affected": [
            {
                "package": {"ecosystem": ecosystem, "name": name},
                "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": introduced}, {"fixed": fixed}]}],
            }
        ],
        "database_specific": {"severity": "HIGH"},
    }


def index_of(*records: dict) -> AdvisoryIndex:
    return AdvisoryIndex.from_advisories(parse_record(r)[0] for r in records)


def matched(index: AdvisoryIndex, result, type_: str) -> list[tuple[str, str, list[str]]]:
    packages = [p for p in result.packages if p.type == type_]
    found, warnings = match_packages(index, packages)
    assert warnings == []
    by_index = {m.index: sorted(a for v in m.vulnerabilities for a in v.advisory_ids) for m in found}
    return sorted((p.name, p.version, by_index.get(i, [])) for i, p in enumerate(packages))


def test_gems_match_rubygems_advisories(tmp_path):
    for version in ("1.15.4", "1.16.2"):
        write(
            tmp_path,
            {f"/bundle{version}/specifications/nokogiri-{version}.gemspec": f"# stub: nokogiri {version} ruby lib\n"},
        )
    index = index_of(ghsa_shape("GHSA-test-ruby-0001", "RubyGems", "nokogiri", "1.16.2"))
    assert matched(index, catalog_rootfs(tmp_path), "gem") == [
        ("nokogiri", "1.15.4", ["GHSA-test-ruby-0001"]),
        ("nokogiri", "1.16.2", []),
    ]


def test_composer_packages_match_packagist_advisories(tmp_path):
    for version in ("v5.4.30", "v5.4.31"):
        installed = {"packages": [{"name": "symfony/http-kernel", "version": version}]}
        write(tmp_path, {f"/srv/{version}/vendor/composer/installed.json": json.dumps(installed)})
    # GitHub writes Packagist bounds without the "v" Composer keeps; and names in any case
    index = index_of(ghsa_shape("GHSA-test-php-0001", "Packagist", "Symfony/Http-Kernel", "5.4.31", "5.0.0"))
    assert matched(index, catalog_rootfs(tmp_path), "composer") == [
        ("symfony/http-kernel", "v5.4.30", ["GHSA-test-php-0001"]),
        ("symfony/http-kernel", "v5.4.31", []),
    ]


def test_deps_json_packages_match_nuget_advisories(tmp_path):
    for version in ("13.0.1", "13.0.3"):
        deps = {"libraries": {f"Newtonsoft.Json/{version}": {"type": "package"}, "app/1.0.0": {"type": "project"}}}
        write(tmp_path, {f"/app{version}/app.deps.json": json.dumps(deps)})
    index = index_of(ghsa_shape("GHSA-test-nuget-01", "NuGet", "newtonsoft.json", "13.0.1.1"))
    assert matched(index, catalog_rootfs(tmp_path), "nuget") == [
        ("Newtonsoft.Json", "13.0.1", ["GHSA-test-nuget-01"]),
        ("Newtonsoft.Json", "13.0.3", []),
    ]


def test_cargo_auditable_crates_match_rustsec_advisories(tmp_path):
    records = [
        json.loads(require(OSV_DATA / "crates.io" / f"{i}.json").read_text())
        for i in ("RUSTSEC-2021-0003", "RUSTSEC-2019-0009")
    ]
    for version in ("1.6.0", "1.6.1"):
        audit = {"packages": [{"name": "smallvec", "version": version, "source": "crates.io"}]}
        binary = elf_with_sections({".dep-v0": zlib.compress(json.dumps(audit).encode())})
        write(tmp_path, {f"/usr/local/bin/app-{version}": binary}, mode=0o755)
    assert matched(index_of(*records), catalog_rootfs(tmp_path), "cargo") == [
        ("smallvec", "1.6.0", ["RUSTSEC-2021-0003"]),
        ("smallvec", "1.6.1", []),
    ]


def test_tomcat_lib_jars_match_tomcat_advisories(tmp_path):
    for version in ("9.0.71", "9.0.72"):
        write(tmp_path, {f"/tomcat-{version}/lib/catalina.jar": catalina_jar(version)})
    index = index_of(ghsa_shape("GHSA-test-maven-01", "Maven", "org.apache.tomcat:tomcat-catalina", "9.0.72", "9.0.0"))
    assert matched(index, catalog_rootfs(tmp_path), "maven") == [
        ("org.apache.tomcat:tomcat-catalina", "9.0.71", ["GHSA-test-maven-01"]),
        ("org.apache.tomcat:tomcat-catalina", "9.0.72", []),
    ]
