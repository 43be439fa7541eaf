"""Limits per image scan from the environment: each VIGIL_SCAN_* variable, and errors that name the
variable and the rule."""

from __future__ import annotations

import pytest

from vigil.catalog.limits import GiB, ScanLimits


def test_defaults_without_variables():
    assert ScanLimits.from_env({}) == ScanLimits()
    assert ScanLimits() == ScanLimits(
        max_total_bytes=16 * GiB,
        max_stored_bytes=4 * GiB,
        max_files=1_000_000,
        max_file_bytes=4 * GiB,
        max_header_bytes=1 << 20,
        max_archive_depth=3,
        max_expansion_ratio=200,
        max_archive_entry_bytes=256 << 20,
        max_manifest_bytes=4 << 20,
        deadline_seconds=900.0,
        max_memory_bytes=2 * GiB,
        max_archive_entries=250_000,
        max_nested_archive_bytes=2 * GiB,
    )


def test_every_limit_has_its_variable():
    env = {
        "VIGIL_SCAN_MAX_TOTAL_BYTES": "1000",
        "VIGIL_SCAN_MAX_STORED_BYTES": "900",
        "VIGIL_SCAN_MAX_FILES": "7",
        "VIGIL_SCAN_MAX_FILE_BYTES": "800",
        "VIGIL_SCAN_MAX_HEADER_BYTES": "512",
        "VIGIL_SCAN_MAX_ARCHIVE_DEPTH": "3",
        "VIGIL_SCAN_MAX_EXPANSION_RATIO": "50",
        "VIGIL_SCAN_MAX_ARCHIVE_ENTRY_BYTES": "700",
        "VIGIL_SCAN_MAX_MANIFEST_BYTES": "600",
        "VIGIL_SCAN_DEADLINE_SECONDS": "2.5",
        "VIGIL_SCAN_MAX_MEMORY_BYTES": "500000000",
        "VIGIL_SCAN_MAX_ARCHIVE_ENTRIES": "40",
        "VIGIL_SCAN_MAX_NESTED_ARCHIVE_BYTES": "30",
        "VIGIL_SCAN_ATTEMPTS": "9",  # another setting (vigil service --scan-attempts), not a limit
    }
    assert ScanLimits.from_env(env) == ScanLimits(1000, 900, 7, 800, 512, 3, 50, 700, 600, 2.5, 500000000, 40, 30)
    assert ScanLimits.from_env({"VIGIL_SCAN_MAX_FILES": ""}) == ScanLimits()  # empty: the default


@pytest.mark.parametrize(
    ("name", "raw", "rule"),
    [
        ("VIGIL_SCAN_MAX_FILES", "1.5", "a whole number above 0"),
        ("VIGIL_SCAN_MAX_FILES", "0", "a whole number above 0"),
        ("VIGIL_SCAN_MAX_TOTAL_BYTES", "16GiB", "a whole number above 0"),
        ("VIGIL_SCAN_MAX_MANIFEST_BYTES", "-1", "a whole number above 0"),
        ("VIGIL_SCAN_DEADLINE_SECONDS", "soon", "a number of seconds above 0"),
        ("VIGIL_SCAN_DEADLINE_SECONDS", "inf", "a number of seconds above 0"),
        ("VIGIL_SCAN_DEADLINE_SECONDS", "nan", "a number of seconds above 0"),
        ("VIGIL_SCAN_DEADLINE_SECONDS", "0", "a number of seconds above 0"),
    ],
)
def test_bad_values_name_the_variable_and_the_rule(name, raw, rule):
    with pytest.raises(ValueError) as caught:
        ScanLimits.from_env({name: raw})
    assert str(caught.value) == f"{name}={raw!r}: must be {rule}"
