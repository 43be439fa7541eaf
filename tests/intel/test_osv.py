"""Importing OSV records: every file of ../shared/data/osv, bad records, zip, YAML, export."""

from __future__ import annotations

import json
import zipfile
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import jsonschema
import pytest

from vigil.intel.loader import load_osv
from vigil.intel.osv import RecordError, parse_record

# The two files under osv/schema/ are JSON but not OSV records; importing the
# whole folder lists them as rejected, which is right.
EXPECTED_REJECTS = {
    ("schema/ecosystems.json", None, "the record has no string id"),
    ("schema/schema.json", None, "the record has no string id"),
}

# Records whose malformed GIT range (a short or decorated commit hash) is left
# out with a warning; their ECOSYSTEM ranges and versions are kept and matched.
SHORT_GIT_HASHES = {
    "PYSEC-2021-371",
    "PYSEC-2021-424",
    "PYSEC-2021-425",
    "PYSEC-2021-436",
    "PYSEC-2019-155",
    "PYSEC-2017-27",
    "PYSEC-2023-80",
}


def test_all_shared_osv_data_imports(all_osv, osv_data: Path) -> None:
    advisories, report = all_osv
    rejects = {(str(Path(r.source).relative_to(osv_data)), r.id, r.reason) for r in report.rejected}
    assert rejects == EXPECTED_REJECTS
    assert report.skipped == [
        (
            str(osv_data / "pypa" / ".id-allocator"),
            "not a .json, .yaml, .yml or .zip file",
        )
    ]

    files = Counter()
    for folder, pattern in (
        ("pypa", "**/*.yaml"),
        ("go", "*.json"),
        ("crates.io", "*.json"),
        ("samples", "*.json"),
    ):
        files[folder] = len(list((osv_data / folder).glob(pattern)))
    by_prefix = Counter(a.id.split("-", 1)[0] for a in advisories)
    # Every file is one record, and every record but the listed rejects is imported.
    assert by_prefix["PYSEC"] == files["pypa"] == 2661
    assert by_prefix["GO"] == files["go"] == 4291
    assert by_prefix["RUSTSEC"] == files["crates.io"] == 1206
    assert sum(by_prefix.values()) == len(advisories) == sum(files.values()) == 8165
    assert report.files == report.records == sum(files.values()) + 2
    assert report.accepted == len(advisories)

    per_ecosystem = Counter()
    for a in advisories:
        for base in {x.key.base for x in a.affected}:
            per_ecosystem[base] += 1
    assert per_ecosystem == {"Go": 4291, "PyPI": 2661, "crates.io": 1206}

    git_warnings = {w.split(":", 1)[0] for w in report.warnings if "is not a full commit hash" in w}
    assert git_warnings == SHORT_GIT_HASHES
    assert sum(a.is_withdrawn for a in advisories) == 40


def test_fields_of_a_real_record(all_osv) -> None:
    advisories = {a.id: a for a in all_osv[0]}
    a = advisories["RUSTSEC-2016-0001"]
    assert a.aliases == ("CVE-2016-10931", "GHSA-34p9-f4q3-c4r7")
    assert a.modified == datetime(2023, 6, 13, 13, 10, 24, tzinfo=UTC)
    assert (a.severity.level, a.severity.score, a.severity.source) == (
        "high",
        8.1,
        "CVSS_V3",
    )
    (affected,) = a.affected
    assert (affected.ecosystem, affected.name, affected.purl) == (
        "crates.io",
        "openssl",
        "pkg:cargo/openssl",
    )
    assert affected.fixed_versions() == ("0.9.0",)
    assert a.links[1] == "https://rustsec.org/advisories/RUSTSEC-2016-0001.html"
    assert not a.malicious

    py = advisories["PYSEC-2022-42969"]
    assert [e.kind for r in py.affected[0].ranges for e in r.events] == [
        "introduced",
        "last_affected",
    ]
    withdrawn = advisories["PYSEC-2023-73"]
    assert withdrawn.withdrawn == datetime(2023, 6, 6, 10, 37, tzinfo=UTC)


def test_export_validates_against_osv_schema(all_osv, osv_data: Path) -> None:
    schema = json.loads((osv_data / "schema" / "schema.json").read_text())
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    advisories = sorted(all_osv[0], key=lambda a: a.id)
    # Validating all 8,165 takes ~30 s here; take every record with an unusual
    # feature plus an even spread of the rest.
    chosen = [
        a
        for i, a in enumerate(advisories)
        if i % 25 == 0
        or a.is_withdrawn
        or a.severity_entries
        or a.id in SHORT_GIT_HASHES
        or not a.id.startswith(("GO-", "PYSEC-", "RUSTSEC-"))
        or any(e.kind == "last_affected" for x in a.affected for r in x.ranges for e in r.events)
    ]
    assert len(chosen) > 900
    errors = [f"{a.id}: {e.message}" for a in chosen for e in validator.iter_errors(a.to_osv())]
    assert errors == []
    # And the export reads back to the same advisory.
    for a in chosen[:200]:
        assert parse_record(json.loads(json.dumps(a.to_osv())))[0] == a


def record(**overrides):
    base = {
        "id": "PYSEC-0000-1",
        "modified": "2024-01-02T03:04:05Z",
        "affected": [
            {
                "package": {"ecosystem": "PyPI", "name": "Demo_Pkg"},
                "ranges": [
                    {
                        "type": "ECOSYSTEM",
                        "events": [{"introduced": "0"}, {"fixed": "1.2"}],
                    }
                ],
            }
        ],
    }
    base.update(overrides)
    return base


@pytest.mark.parametrize(
    ("data", "rid", "reason"),
    [
        ([1, 2], None, "a record must be an object, not list"),
        ({"modified": "2024-01-01T00:00:00Z"}, None, "the record has no string id"),
        (
            record(modified=None),
            "PYSEC-0000-1",
            "modified None is not an RFC 3339 timestamp (YYYY-MM-DDTHH:MM:SSZ)",
        ),
        (
            record(modified="2024-01-02"),
            "PYSEC-0000-1",
            "modified '2024-01-02' is not an RFC 3339 timestamp (YYYY-MM-DDTHH:MM:SSZ)",
        ),
        (record(aliases="CVE-1"), "PYSEC-0000-1", "aliases must be a list of strings"),
        (
            record(affected=[{"package": {"ecosystem": "Gentoo", "name": "x"}}]),
            "PYSEC-0000-1",
            "affected[0].package: unknown ecosystem 'Gentoo': 'Gentoo' is not an OSV ecosystem name",
        ),
        (
            record(
                affected=[
                    {
                        "package": {"ecosystem": "Go", "name": "m"},
                        "ranges": [
                            {
                                "type": "SEMVER",
                                "events": [{"introduced": "0"}, {"fixed": "one"}],
                            }
                        ],
                    }
                ]
            ),
            "PYSEC-0000-1",
            "affected[0].ranges[0] fixed: invalid SemVer version 'one': "
            "expected [v]MAJOR[.MINOR[.PATCH...]][-PRERELEASE][+BUILD] "
            "with ASCII letters, digits, '.' and '-' in PRERELEASE and BUILD",
        ),
        (
            record(
                affected=[
                    {
                        "package": {"ecosystem": "Go", "name": "m"},
                        "ranges": [{"type": "SEMVER", "events": [{"fixed": "1.0.0"}]}],
                    }
                ]
            ),
            "PYSEC-0000-1",
            "affected[0].ranges[0]: events must contain an introduced event",
        ),
        (
            record(
                affected=[
                    {
                        "package": {"ecosystem": "Go", "name": "m"},
                        "ranges": [
                            {
                                "type": "SEMVER",
                                "events": [{"introduced": "0", "fixed": "1.0.0"}],
                            }
                        ],
                    }
                ]
            ),
            "PYSEC-0000-1",
            "affected[0].ranges[0].events[0] must be an object "
            "with exactly one of introduced, fixed, last_affected, limit",
        ),
        (
            record(
                affected=[
                    {
                        "package": {"ecosystem": "Go", "name": "m"},
                        "ranges": [
                            {
                                "type": "SEMVER",
                                "events": [
                                    {"introduced": "0"},
                                    {"fixed": "1.0.0"},
                                    {"last_affected": "0.9.0"},
                                ],
                            }
                        ],
                    }
                ]
            ),
            "PYSEC-0000-1",
            "affected[0].ranges[0]: last_affected and fixed events are mutually exclusive",
        ),
        (
            record(
                affected=[
                    {
                        "package": {"ecosystem": "Go", "name": "m"},
                        "ranges": [{"type": "RANGE", "events": [{"introduced": "0"}]}],
                    }
                ]
            ),
            "PYSEC-0000-1",
            "affected[0].ranges[0].type 'RANGE' is not one of ECOSYSTEM, SEMVER, GIT",
        ),
        (
            record(
                severity=[
                    {
                        "type": "CVSS_V3",
                        "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
                    }
                ],
                affected=[
                    {
                        "package": {"ecosystem": "PyPI", "name": "x"},
                        "severity": [
                            {
                                "type": "CVSS_V3",
                                "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
                            }
                        ],
                    }
                ],
            ),
            "PYSEC-0000-1",
            "severity may be given for the record or for its packages, not both",
        ),
    ],
)
def test_bad_records_are_refused_with_reason(data, rid, reason) -> None:
    with pytest.raises(RecordError) as err:
        parse_record(data)
    assert (err.value.record_id, err.value.reason) == (rid, reason)


def test_bad_records_are_listed_never_crash(tmp_path: Path) -> None:
    (tmp_path / "good.json").write_text(json.dumps(record()))
    (tmp_path / "broken.json").write_text("{not json")
    (tmp_path / "bad.yaml").write_text("id: PYSEC-0000-2\nmodified: yesterday\n")
    (tmp_path / "notes.txt").write_text("hello")
    advisories, report = load_osv([tmp_path, tmp_path / "missing.json"])
    assert [a.id for a in advisories] == ["PYSEC-0000-1"]
    reasons = sorted((Path(r.source).name, r.id, r.reason.split(":")[0]) for r in report.rejected)
    assert reasons == [
        (
            "bad.yaml",
            "PYSEC-0000-2",
            "modified 'yesterday' is not an RFC 3339 timestamp (YYYY-MM-DDTHH",
        ),
        ("broken.json", None, "cannot read json"),
        ("missing.json", None, "no such file or directory"),
    ]
    assert report.skipped == [(str(tmp_path / "notes.txt"), "not a .json, .yaml, .yml or .zip file")]
    assert (report.files, report.records, report.accepted) == (3, 2, 1)


def test_zip_export_and_yaml_versions_stay_strings(tmp_path: Path) -> None:
    # An all.zip as OSV publishes it: one JSON record per member.
    archive = tmp_path / "all.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("PYSEC-0000-1.json", json.dumps(record()))
        zf.writestr("PYSEC-0000-3.json", json.dumps(record(id="PYSEC-0000-3")))
        zf.writestr("README", "not a record")
    # YAML would read 1.10 as the float 1.1 and dates as datetimes: not here.
    (tmp_path / "PYSEC-0000-4.yaml").write_text(
        "id: PYSEC-0000-4\nmodified: 2024-01-02T03:04:05Z\naffected:\n- package: {ecosystem: PyPI, name: x}\n"
        "  versions: [1.10, 2.0]\n  ranges:\n  - type: ECOSYSTEM\n    events: [{introduced: 0}, {fixed: 1.20}]\n"
    )
    advisories, report = load_osv([archive, tmp_path / "PYSEC-0000-4.yaml"])
    assert sorted(a.id for a in advisories) == [
        "PYSEC-0000-1",
        "PYSEC-0000-3",
        "PYSEC-0000-4",
    ]
    assert report.skipped == [(f"{archive}!README", "not a .json, .yaml or .yml file")]
    yaml_adv = next(a for a in advisories if a.id == "PYSEC-0000-4")
    assert yaml_adv.affected[0].versions == ("1.10", "2.0")
    assert yaml_adv.affected[0].fixed_versions() == ("1.20",)
    assert yaml_adv.affected[0].normalized_name == "x"
    assert advisories[0].affected[0].normalized_name == "demo-pkg"  # PEP 503


def test_duplicate_ids_keep_the_newest(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text(json.dumps(record(summary="new", modified="2024-05-01T00:00:00Z")))
    (tmp_path / "b.json").write_text(json.dumps(record(summary="old", modified="2024-01-01T00:00:00Z")))
    advisories, report = load_osv([tmp_path])
    assert [a.summary for a in advisories] == ["new"]
    assert report.warnings == [
        f"PYSEC-0000-1: in both {tmp_path / 'a.json'} and {tmp_path / 'b.json'}; "
        f"kept {tmp_path / 'a.json'} (modified later or read last)"
    ]


@pytest.mark.parametrize(
    ("overrides", "level", "score", "source"),
    [
        (
            {
                "severity": [
                    {
                        "type": "CVSS_V3",
                        "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
                    }
                ]
            },
            "critical",
            9.8,
            "CVSS_V3",
        ),
        (
            {
                "severity": [
                    {
                        "type": "CVSS_V3",
                        "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
                    },
                    {
                        "type": "CVSS_V4",
                        "score": "CVSS:4.0/AV:N/AC:H/AT:P/PR:H/UI:P/VC:N/VI:L/VA:L/SC:N/SI:N/SA:N",
                    },
                ]
            },
            "low",
            2.0,
            "CVSS_V4",
        ),
        (
            {"severity": [{"type": "CVSS_V2", "score": "AV:N/AC:L/Au:N/C:C/I:C/A:C"}]},
            "high",
            10.0,
            "CVSS_V2",
        ),
        (
            {"database_specific": {"severity": "MODERATE"}},
            "medium",
            None,
            "database_specific",
        ),
        (
            {
                "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:Q"}],
                "database_specific": {"severity": "HIGH"},
            },
            "high",
            None,
            "database_specific",
        ),
        ({}, "unknown", None, ""),
    ],
)
def test_severity(overrides, level, score, source) -> None:
    advisory, warnings = parse_record(record(**overrides))
    assert (
        advisory.severity.level,
        advisory.severity.score,
        advisory.severity.source,
    ) == (level, score, source)
    if "AV:Q" in json.dumps(overrides):
        assert warnings[0].startswith("PYSEC-0000-1: malformed CVSS_V3 vector 'CVSS:3.1/AV:Q'")


@pytest.mark.parametrize(
    ("overrides", "malicious"),
    [
        ({"id": "MAL-2024-1"}, True),
        (
            {"database_specific": {"malicious-packages-origins": [{"source": "ghsa-malware"}]}},
            True,
        ),
        (
            {
                "id": "GHSA-aaaa-bbbb-cccc",
                "database_specific": {"cwe_ids": ["CWE-506"]},
            },
            True,
        ),
        ({"aliases": ["MAL-2024-9"]}, True),
        ({}, False),
    ],
)
def test_malicious_flag(overrides, malicious) -> None:
    assert parse_record(record(**overrides))[0].malicious is malicious
