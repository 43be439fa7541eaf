"""Which name and version each package is looked up by, and what is reported when it cannot be."""

from __future__ import annotations

from vigil.catalog import Package
from vigil.intel import AdvisoryIndex
from vigil.intel.osv import parse_record
from vigil.intel.vulnmatch import at_least, key_id, lookup_for, match_packages


def pkg(type_, name, version, ecosystem, source_name=None, source_version=None) -> Package:
    return Package(
        type=type_,
        name=name,
        version=version,
        purl=f"pkg:{type_}/{name}@{version}",
        ecosystem=ecosystem,
        cataloger="test",
        found_in="/test",
        source_name=source_name,
        source_version=source_version,
    )


def index(*records) -> AdvisoryIndex:
    return AdvisoryIndex.from_advisories(parse_record(r)[0] for r in records)


DSA = {
    "id": "DSA-9999-1",
    "modified": "2024-01-01T00:00:00Z",
    "affected": [
        {
            "package": {"ecosystem": "Debian:12", "name": "openssl"},
            "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "3.0.11-1~deb12u2"}]}],
        }
    ],
}


def test_debian_binary_packages_are_matched_by_source():
    libssl = pkg("deb", "libssl3", "3.0.11-1~deb12u1+b1", "Debian:12", "openssl", "3.0.11-1~deb12u1")
    lookup = lookup_for(libssl)
    assert (lookup.ecosystem, lookup.name, lookup.version) == ("Debian:12", "openssl", "3.0.11-1~deb12u1")
    matched, warnings = match_packages(
        index(DSA), [libssl, pkg("deb", "libssl3", "3.0.11-1~deb12u2", "Debian:12", "openssl")]
    )
    assert warnings == []
    assert [(m.index, [v.id for v in m.vulnerabilities]) for m in matched] == [(0, ["DSA-9999-1"])]
    assert matched[0].vulnerabilities[0].fixed_versions == ("3.0.11-1~deb12u2",)


def test_pypi_packages_are_matched_by_their_own_name():
    lookup = lookup_for(pkg("pypi", "Jinja2", "2.10", "PyPI", "jinja2-src", "9"))
    assert (lookup.name, lookup.version) == ("Jinja2", "2.10")


def test_unmatchable_packages_are_warnings_naming_them():
    packages = [
        pkg("deb", "bash", "5.2", None),
        pkg("golang", "cmd/gofmt", "", "Go"),
        pkg("npm", "left-pad", "not a version!", "npm"),
    ]
    npm = {
        "id": "GHSA-xxxx-1",
        "modified": "2024-01-01T00:00:00Z",
        "affected": [
            {
                "package": {"ecosystem": "npm", "name": "left-pad"},
                "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "1.3.0"}]}],
            }
        ],
    }
    matched, warnings = match_packages(index(npm), packages)
    assert matched == []
    assert warnings[0] == "deb/bash 5.2: not matched: no advisory ecosystem (the image's OS is unknown to Vigil)"
    assert warnings[1] == "golang/cmd/gofmt (no version): not matched: no version recorded"
    assert warnings[2].startswith(
        "npm/left-pad not a version!: not matched: version 'not a version!' is not a valid SemVer version "
        "(the version scheme of ecosystem npm): "
    )


def test_key_id_and_severity_order():
    record = dict(DSA, id="DLA-1", aliases=["CVE-2024-1"])
    other = dict(DSA, id="DSA-2", aliases=["CVE-2024-1"])
    matched, _ = match_packages(index(record, other), [pkg("deb", "openssl", "3.0.0-1", "Debian:12")])
    [v] = matched[0].vulnerabilities
    assert (v.id, key_id(v), v.advisory_ids) == ("CVE-2024-1", "DLA-1", ("DLA-1", "DSA-2"))
    assert at_least("critical", "high") and at_least("high", "high") and not at_least("medium", "high")
    assert not at_least("unknown", "low")
