"""Matching packages against advisories: real records, then edge cases written here."""

from __future__ import annotations

import pytest

from vigil.intel.aliases import group_by_aliases, merge_matches
from vigil.intel.ecosystems import UnknownOsvEcosystemError
from vigil.intel.matching import AdvisoryIndex
from vigil.intel.osv import parse_record
from vigil.intel.versions import InvalidVersionError


def ids_and_fixed(matches):
    return [(m.id, m.fixed_versions) for m in matches]


# Expected results below were worked out by reading the records in ../shared/data/osv.
@pytest.mark.parametrize(
    ("ecosystem", "name", "version", "expected"),
    [
        # pypa/jinja2: PYSEC-2014-8 fixed 2.7.2, PYSEC-2014-82 fixed 2.7.3,
        # PYSEC-2019-220 fixed 2.8.1, PYSEC-2019-217 fixed 2.10.1, PYSEC-2021-66 fixed 2.11.3.
        (
            "PyPI",
            "Jinja2",
            "2.10",
            [("PYSEC-2019-217", ("2.10.1",)), ("PYSEC-2021-66", ("2.11.3",))],
        ),
        ("PyPI", "jinja2", "2.10.1", [("PYSEC-2021-66", ("2.11.3",))]),
        ("PyPI", "jinja2", "2.11.3", []),
        (
            "PyPI",
            "jinja2",
            "2.7.2",
            [
                ("PYSEC-2014-82", ("2.7.3",)),
                ("PYSEC-2019-217", ("2.10.1",)),
                ("PYSEC-2019-220", ("2.8.1",)),
                ("PYSEC-2021-66", ("2.11.3",)),
            ],
        ),
        # pypa/py PYSEC-2022-42969: introduced 0, last_affected 1.11.0 (inclusive, no fix).
        ("PyPI", "py", "1.11.0", [("PYSEC-2022-42969", ())]),
        ("PyPI", "py", "1.11.1", []),
        # go: golang.org/x/text in GO-2020-0015 (<0.3.3), GO-2021-0113 (<0.3.7),
        # GO-2022-1059 (<0.3.8), GO-2026-5970 (<0.39.0), SEMVER ranges.
        (
            "Go",
            "golang.org/x/text",
            "v0.3.5",
            [
                ("GO-2021-0113", ("0.3.7",)),
                ("GO-2022-1059", ("0.3.8",)),
                ("GO-2026-5970", ("0.39.0",)),
            ],
        ),
        (
            "Go",
            "golang.org/x/text",
            "v0.3.2",
            [
                ("GO-2020-0015", ("0.3.3",)),
                ("GO-2021-0113", ("0.3.7",)),
                ("GO-2022-1059", ("0.3.8",)),
                ("GO-2026-5970", ("0.39.0",)),
            ],
        ),
        ("Go", "golang.org/x/text", "v0.39.0", []),
        ("Go", "golang.org/x/Text", "v0.3.2", []),  # Go module paths are case-sensitive
        # crates.io smallvec: 2018-0003 (0.6.0-0..0.6.3), 2018-0018 (<0.6.13), 2019-0009
        # (0.6.5..0.6.10), 2019-0012 (0.6.3..0.6.10), 2021-0003 (0.6.3..0.6.14, 1.0.0..1.6.1).
        (
            "crates.io",
            "smallvec",
            "0.6.9",
            [
                ("RUSTSEC-2018-0018", ("0.6.13",)),
                ("RUSTSEC-2019-0009", ("0.6.10",)),
                ("RUSTSEC-2019-0012", ("0.6.10",)),
                ("RUSTSEC-2021-0003", ("0.6.14", "1.6.1")),
            ],
        ),
        (
            "crates.io",
            "smallvec",
            "0.6.2",
            [("RUSTSEC-2018-0003", ("0.6.3",)), ("RUSTSEC-2018-0018", ("0.6.13",))],
        ),
        ("crates.io", "smallvec", "1.6.0", [("RUSTSEC-2021-0003", ("1.6.1",))]),
        ("crates.io", "smallvec", "1.6.1", []),
    ],
)
def test_real_records(real_index, ecosystem, name, version, expected) -> None:
    assert ids_and_fixed(real_index.match(ecosystem, name, version)) == expected


def test_withdrawn_real_record_is_not_matched(real_index, all_osv) -> None:
    # pypa/redis PYSEC-2023-73 was withdrawn; it lists redis 2.0.0.
    assert "PYSEC-2023-73" in real_index.withdrawn
    assert "PYSEC-2023-73" not in {m.id for m in real_index.match("PyPI", "redis", "2.0.0")}


def test_aliases_merge_real_matches(real_index) -> None:
    vulns = merge_matches(real_index.match("PyPI", "jinja2", "2.10"))
    assert [(v.id, v.advisory_ids, v.aliases, v.fixed_versions) for v in vulns] == [
        (
            "CVE-2019-10906",
            ("PYSEC-2019-217",),
            ("CVE-2019-10906", "GHSA-462w-v97r-4m45", "PYSEC-2019-217"),
            ("2.10.1",),
        ),
        (
            "CVE-2020-28493",
            ("PYSEC-2021-66",),
            (
                "CVE-2020-28493",
                "GHSA-g3rq-g295-4j3m",
                "PYSEC-2021-66",
                "SNYK-PYTHON-JINJA2-1012994",
            ),
            ("2.11.3",),
        ),
    ]


def adv(rid, ecosystem, name, events=None, versions=None, rtype="ECOSYSTEM", **extra):
    affected = {"package": {"ecosystem": ecosystem, "name": name}}
    if events is not None:
        affected["ranges"] = [
            {
                "type": rtype,
                "events": events,
                **({"repo": "https://example.org/r"} if rtype == "GIT" else {}),
            }
        ]
    if versions is not None:
        affected["versions"] = versions
    record = {
        "id": rid,
        "modified": "2024-01-01T00:00:00Z",
        "affected": [affected],
        **extra,
    }
    return parse_record(record)[0]


def index_of(*advisories):
    return AdvisoryIndex.from_advisories(advisories)


def test_introduced_zero_without_fix_affects_every_version() -> None:
    idx = index_of(adv("PYSEC-1", "PyPI", "abandoned", [{"introduced": "0"}]))
    assert ids_and_fixed(idx.match("PyPI", "abandoned", "0.0.1")) == [("PYSEC-1", ())]
    assert ids_and_fixed(idx.match("PyPI", "Abandoned", "99.0")) == [("PYSEC-1", ())]


def test_last_affected_is_inclusive_fixed_exclusive() -> None:
    idx = index_of(
        adv(
            "GHSA-1",
            "npm",
            "left-pad",
            [{"introduced": "1.0.0"}, {"last_affected": "1.2.0"}],
            rtype="SEMVER",
        ),
        adv(
            "GHSA-2",
            "npm",
            "left-pad",
            [{"introduced": "1.0.0"}, {"fixed": "1.2.0"}],
            rtype="SEMVER",
        ),
    )
    assert ids_and_fixed(idx.match("npm", "left-pad", "0.9.0")) == []
    assert ids_and_fixed(idx.match("npm", "left-pad", "1.0.0")) == [
        ("GHSA-1", ()),
        ("GHSA-2", ("1.2.0",)),
    ]
    assert ids_and_fixed(idx.match("npm", "left-pad", "1.2.0-rc.1")) == [
        ("GHSA-1", ()),
        ("GHSA-2", ("1.2.0",)),
    ]
    assert ids_and_fixed(idx.match("npm", "left-pad", "1.2.0")) == [("GHSA-1", ())]
    assert ids_and_fixed(idx.match("npm", "left-pad", "1.2.1")) == []


def test_limit_is_honoured() -> None:
    idx = index_of(
        adv(
            "GHSA-3",
            "Go",
            "example.com/m",
            [{"introduced": "1.0.0"}, {"limit": "2.0.0"}],
            rtype="SEMVER",
        )
    )
    assert [m.id for m in idx.match("Go", "example.com/m", "v1.5.0")] == ["GHSA-3"]
    assert idx.match("Go", "example.com/m", "v2.0.0") == []
    assert idx.match("Go", "example.com/m", "v2.5.0") == []


def test_several_intervals_in_one_range() -> None:
    idx = index_of(
        adv(
            "GHSA-4",
            "crates.io",
            "foo_bar",
            [
                {"introduced": "0"},
                {"fixed": "1.0.1"},
                {"introduced": "2.0.0"},
                {"fixed": "2.0.3"},
            ],
            rtype="SEMVER",
        )
    )
    assert ids_and_fixed(idx.match("crates.io", "foo-bar", "1.0.0")) == [("GHSA-4", ("1.0.1", "2.0.3"))]
    assert idx.match("crates.io", "foo_bar", "1.5.0") == []
    assert ids_and_fixed(idx.match("crates.io", "Foo_Bar", "2.0.2")) == [("GHSA-4", ("2.0.3",))]


def test_withdrawn_and_git_ranges_are_not_matched() -> None:
    withdrawn = adv("GHSA-5", "PyPI", "pkg", [{"introduced": "0"}], withdrawn="2024-02-01T00:00:00Z")
    git_only = adv(
        "OSV-2024-1",
        "PyPI",
        "pkg",
        [{"introduced": "0"}, {"fixed": "a" * 40}],
        rtype="GIT",
    )
    idx = index_of(withdrawn, git_only)
    assert idx.withdrawn == ["GHSA-5"]
    assert idx.match("PyPI", "pkg", "1.0") == []


def test_explicit_versions_match_exactly_under_the_scheme() -> None:
    idx = index_of(adv("PYSEC-6", "PyPI", "lib", versions=["1.0.0", "2.0"]))
    assert [(m.id, m.in_versions_list) for m in idx.match("PyPI", "lib", "1.0")] == [("PYSEC-6", True)]
    assert [m.id for m in idx.match("PyPI", "lib", "2.0.0")] == ["PYSEC-6"]
    assert idx.match("PyPI", "lib", "1.0.1") == []


def test_malicious_record() -> None:
    mal = adv(
        "MAL-2024-1234",
        "npm",
        "evil-pkg",
        [{"introduced": "0"}],
        summary="Malicious code in evil-pkg (npm)",
    )
    idx = index_of(mal)
    (m,) = idx.match("npm", "evil-pkg", "1.0.0")
    assert (m.id, m.malicious, m.fixed_versions) == ("MAL-2024-1234", True, ())
    (v,) = merge_matches([m])
    assert (v.id, v.malicious, v.summary) == (
        "MAL-2024-1234",
        True,
        "Malicious code in evil-pkg (npm)",
    )
    assert idx.match("npm", "Evil-Pkg", "1.0.0") == []  # npm names are exact


def test_release_suffixes() -> None:
    idx = index_of(
        adv(
            "DLA-1",
            "Debian:11",
            "openssl",
            [{"introduced": "0"}, {"fixed": "1.1.1n-0+deb11u4"}],
        ),
        adv(
            "DSA-2",
            "Debian:12",
            "openssl",
            [{"introduced": "0"}, {"fixed": "3.0.11-1~deb12u2"}],
        ),
        adv(
            "DEBIAN-CVE-3",
            "Debian",
            "openssl",
            [{"introduced": "0"}, {"fixed": "3.0.13-1"}],
        ),
        adv(
            "UBUNTU-CVE-4",
            "Ubuntu:22.04:LTS",
            "openssl",
            [{"introduced": "0"}, {"fixed": "3.0.2-0ubuntu1.12"}],
        ),
        adv(
            "ALPINE-CVE-5",
            "Alpine:v3.19",
            "openssl",
            [{"introduced": "0"}, {"fixed": "3.1.4-r1"}],
        ),
    )
    assert ids_and_fixed(idx.match("Debian:12", "openssl", "3.0.11-1~deb12u1")) == [
        ("DEBIAN-CVE-3", ("3.0.13-1",)),
        ("DSA-2", ("3.0.11-1~deb12u2",)),
    ]
    assert ids_and_fixed(idx.match("Debian:12", "openssl", "3.0.11-1~deb12u2")) == [("DEBIAN-CVE-3", ("3.0.13-1",))]
    assert ids_and_fixed(idx.match("Debian:11", "openssl", "1.1.1n-0+deb11u3")) == [
        ("DEBIAN-CVE-3", ("3.0.13-1",)),
        ("DLA-1", ("1.1.1n-0+deb11u4",)),
    ]
    assert [m.id for m in idx.match("Debian", "openssl", "1.0")] == ["DEBIAN-CVE-3"]
    assert [m.id for m in idx.match("Ubuntu:22.04", "openssl", "3.0.2-0ubuntu1.10")] == ["UBUNTU-CVE-4"]
    assert [m.id for m in idx.match("Alpine:v3.19", "openssl", "3.1.4-r0")] == ["ALPINE-CVE-5"]
    assert [m.id for m in idx.match("Alpine:3.19", "openssl", "3.1.4-r0")] == ["ALPINE-CVE-5"]
    assert idx.match("Alpine:v3.18", "openssl", "3.1.4-r0") == []


def test_ecosystem_ranges_use_the_ecosystem_order() -> None:
    idx = index_of(
        adv(
            "GHSA-7",
            "Maven",
            "org.springframework:spring-core",
            [{"introduced": "5.3.0"}, {"fixed": "5.3.18"}],
        )
    )
    assert ids_and_fixed(idx.match("Maven", "org.springframework:spring-core", "5.3.9.RELEASE")) == [
        ("GHSA-7", ("5.3.18",))
    ]
    assert idx.match("Maven", "org.springframework:spring-core", "5.3.18.RELEASE") == []


def test_errors_name_the_input() -> None:
    idx = index_of(
        adv(
            "GHSA-8",
            "Go",
            "example.com/m",
            [{"introduced": "0"}, {"fixed": "1.0.0"}],
            rtype="SEMVER",
        )
    )
    with pytest.raises(
        InvalidVersionError,
        match=r"^version '\(devel\)' is not a valid SemVer version \(the version scheme of ecosystem Go\): ",
    ):
        idx.match("Go", "example.com/m", "(devel)")
    with pytest.raises(
        UnknownOsvEcosystemError,
        match=r"^unknown ecosystem 'Gentoo': 'Gentoo' is not an OSV ecosystem name$",
    ):
        idx.match("Gentoo", "x", "1")


def test_aliases_group_pysec_and_ghsa() -> None:
    pysec = adv(
        "PYSEC-2024-1",
        "PyPI",
        "pkg",
        [{"introduced": "0"}, {"fixed": "1.1"}],
        aliases=["CVE-2024-0001", "GHSA-aaaa-bbbb-cccc"],
    )
    ghsa = adv(
        "GHSA-aaaa-bbbb-cccc",
        "PyPI",
        "pkg",
        [{"introduced": "0"}, {"fixed": "1.1.0"}],
        aliases=["CVE-2024-0001"],
        database_specific={"severity": "HIGH"},
    )
    other = adv("GHSA-dddd-eeee-ffff", "PyPI", "pkg", [{"introduced": "0"}, {"fixed": "2.0"}])
    assert [[a.id for a in g] for g in group_by_aliases([pysec, ghsa, other])] == [
        ["GHSA-aaaa-bbbb-cccc", "PYSEC-2024-1"],
        ["GHSA-dddd-eeee-ffff"],
    ]
    vulns = merge_matches(index_of(pysec, ghsa, other).match("PyPI", "pkg", "1.0"))
    assert [(v.id, v.advisory_ids, v.aliases, v.fixed_versions, v.severity.level) for v in vulns] == [
        (
            "CVE-2024-0001",
            ("GHSA-aaaa-bbbb-cccc", "PYSEC-2024-1"),
            ("CVE-2024-0001", "GHSA-aaaa-bbbb-cccc", "PYSEC-2024-1"),
            ("1.1", "1.1.0"),
            "high",
        ),
        (
            "GHSA-dddd-eeee-ffff",
            ("GHSA-dddd-eeee-ffff",),
            ("GHSA-dddd-eeee-ffff",),
            ("2.0",),
            "unknown",
        ),
    ]
