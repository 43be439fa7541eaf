"""The on-disk advisory database: round trip, incremental import by modified."""

from __future__ import annotations

from pathlib import Path

import pytest

from vigil.intel.osv import parse_record
from vigil.intel.store import AdvisoryStore, StoreError, default_db_path


def rec(rid: str, modified: str, summary: str, name: str = "pkg"):
    return parse_record(
        {
            "id": rid,
            "modified": modified,
            "summary": summary,
            "affected": [
                {
                    "package": {"ecosystem": "PyPI", "name": name},
                    "ranges": [
                        {
                            "type": "ECOSYSTEM",
                            "events": [{"introduced": "0"}, {"fixed": "2.0"}],
                        }
                    ],
                }
            ],
        }
    )[0]


def test_incremental_by_modified(tmp_path: Path) -> None:
    with AdvisoryStore(tmp_path / "intel.db") as store:
        r = store.upsert(
            [
                rec("PYSEC-1", "2024-01-01T00:00:00Z", "first"),
                rec("PYSEC-2", "2024-01-01T00:00:00Z", "b"),
            ]
        )
        assert (r.imported, r.updated, r.unchanged) == (2, 0, 0)
        r = store.upsert(
            [
                rec("PYSEC-1", "2023-12-31T23:59:59Z", "older"),  # older: not replaced
                rec("PYSEC-2", "2024-01-01T00:00:00Z", "same time"),  # equal: not replaced
                rec("PYSEC-3", "2024-01-01T00:00:00Z", "new"),
            ]
        )
        assert (r.imported, r.updated, r.unchanged) == (1, 0, 2)
        r = store.upsert([rec("PYSEC-1", "2024-01-01T00:00:00.5Z", "newer", name="Other_Pkg")])
        assert (r.imported, r.updated, r.unchanged) == (0, 1, 0)
    with AdvisoryStore(tmp_path / "intel.db") as store:  # reopened: it was written to disk
        advisories, report = store.load()
        assert [(a.id, a.summary) for a in advisories] == [
            ("PYSEC-1", "newer"),
            ("PYSEC-2", "b"),
            ("PYSEC-3", "new"),
        ]
        assert report.rejected == []
        # The package table follows the replaced record.
        assert [a.id for a in store.load_for_package("PyPI", "pkg")[0]] == [
            "PYSEC-2",
            "PYSEC-3",
        ]
        assert [a.id for a in store.load_for_package("PyPI", "other-pkg")[0]] == ["PYSEC-1"]


def test_round_trip_of_real_records(all_osv, tmp_path: Path) -> None:
    advisories = sorted(all_osv[0], key=lambda a: a.id)[::7]
    with AdvisoryStore(tmp_path / "intel.db") as store:
        store.upsert(advisories)
        loaded, report = store.load()
        index, _ = store.load_index()
    assert loaded == advisories
    assert report.rejected == []
    assert len(index) == sum(not a.is_withdrawn for a in advisories)


def test_default_path_and_foreign_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIGIL_DATA_DIR", str(tmp_path / "data"))
    assert default_db_path() == tmp_path / "data" / "intel.db"
    monkeypatch.delenv("VIGIL_DATA_DIR")
    assert default_db_path() == Path.home() / ".local" / "share" / "vigil" / "intel.db"
    bogus = tmp_path / "not.db"
    bogus.write_text("this is not sqlite" * 100)
    with pytest.raises(
        StoreError,
        match=r"not.db is not a Vigil advisory database: file is not a database",
    ):
        AdvisoryStore(bogus)
