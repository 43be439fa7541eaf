"""The advisory database on disk: one SQLite file holding each advisory as its
OSV JSON, so a service start reads compact JSON instead of re-parsing YAML.

Imports are incremental by ``modified``: a record replaces the stored one with
the same id only if it was modified later; each import is one transaction, so
a crash leaves the previous database intact.

Default location: ``$VIGIL_DATA_DIR/intel.db``, or
``~/.local/share/vigil/intel.db`` when VIGIL_DATA_DIR is not set.
"""

from __future__ import annotations

import os
import sqlite3
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Self

import orjson

from .advisory import Advisory
from .coverage import Coverage, EcosystemCoverage
from .ecosystems import parse_ecosystem
from .matching import AdvisoryIndex
from .osv import RecordError, parse_record
from .report import ImportReport, Rejection

SCHEMA_VERSION = 1

_DDL = """
CREATE TABLE IF NOT EXISTS advisories (
    id TEXT PRIMARY KEY,
    modified TEXT NOT NULL,      -- UTC, fixed-width ISO 8601, so text order is time order
    withdrawn INTEGER NOT NULL,
    record BLOB NOT NULL         -- the OSV JSON of Advisory.to_osv()
);
-- Which packages each advisory names, so one package's advisories load alone.
CREATE TABLE IF NOT EXISTS affected_packages (
    id TEXT NOT NULL REFERENCES advisories(id) ON DELETE CASCADE,
    ecosystem TEXT NOT NULL,     -- base name, e.g. Debian
    release TEXT NOT NULL,       -- "" when none
    name TEXT NOT NULL,          -- normalized for the ecosystem
    PRIMARY KEY (ecosystem, name, release, id)
);
CREATE INDEX IF NOT EXISTS affected_packages_id ON affected_packages(id);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


def default_db_path() -> Path:
    data_dir = os.environ.get("VIGIL_DATA_DIR")
    base = Path(data_dir) if data_dir else Path.home() / ".local" / "share" / "vigil"
    return base / "intel.db"


def read_revision(path: str | os.PathLike[str]) -> str | None:
    """The revision marker of the database at ``path`` without creating or
    changing anything; None when there is no database there (yet)."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            row = db.execute("SELECT value FROM meta WHERE key = 'revision'").fetchone()
        finally:
            db.close()
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{path} is not a Vigil advisory database: {exc}") from exc
    return row[0] if row else "0"


def _modified_key(advisory: Advisory) -> str:
    return advisory.modified.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds")


class StoreError(RuntimeError):
    pass


class AdvisoryStore:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(self.path)
            self._db.executescript(_DDL)
            row = self._db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path} is not a Vigil advisory database: {exc}") from exc
        if row is None:
            with self._db:
                self._db.execute(
                    "INSERT INTO meta VALUES ('schema_version', ?)",
                    (str(SCHEMA_VERSION),),
                )
        elif row[0] != str(SCHEMA_VERSION):
            raise StoreError(f"{self.path} has advisory database schema {row[0]}, this Vigil reads {SCHEMA_VERSION}")

    def close(self) -> None:
        self._db.close()

    def revision(self) -> str:
        """Changes whenever an import changes what is stored ("0" before the first)."""
        row = self._db.execute("SELECT value FROM meta WHERE key = 'revision'").fetchone()
        return row[0] if row else "0"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __len__(self) -> int:
        count: int = self._db.execute("SELECT COUNT(*) FROM advisories").fetchone()[0]
        return count

    def upsert(self, advisories: Iterable[Advisory], report: ImportReport | None = None) -> ImportReport:
        """Write advisories newer than what is stored, in one transaction; count
        imported (new id), updated (modified later) and unchanged in the report."""
        report = report if report is not None else ImportReport()
        stored = dict(self._db.execute("SELECT id, modified FROM advisories"))
        rows: list[tuple[str, str, int, bytes]] = []
        packages: list[tuple[str, str, str, str]] = []
        for adv in advisories:
            modified = _modified_key(adv)
            previous = stored.get(adv.id)
            if previous is None:
                report.imported += 1
            elif modified > previous:
                report.updated += 1
            else:
                report.unchanged += 1
                continue
            stored[adv.id] = modified
            rows.append((adv.id, modified, int(adv.is_withdrawn), orjson.dumps(adv.to_osv())))
            packages.extend({(adv.id, a.key.base, a.key.release, a.normalized_name) for a in adv.affected})
        with self._db:
            if rows:
                # A new revision marker in the same transaction: readers (the
                # service) re-match stored packages when it changes.
                self._db.execute(
                    "INSERT OR REPLACE INTO meta VALUES ('revision', ?)",
                    (uuid.uuid4().hex,),
                )
            self._db.executemany("DELETE FROM affected_packages WHERE id = ?", [(r[0],) for r in rows])
            self._db.executemany("INSERT OR REPLACE INTO advisories VALUES (?, ?, ?, ?)", rows)
            self._db.executemany("INSERT OR IGNORE INTO affected_packages VALUES (?, ?, ?, ?)", packages)
        return report

    def load(self, include_withdrawn: bool = True) -> tuple[list[Advisory], ImportReport]:
        """Every stored advisory; a stored record that no longer parses (say,
        after a rule was tightened) is listed in the report, not raised."""
        query = "SELECT id, record FROM advisories"
        if not include_withdrawn:
            query += " WHERE withdrawn = 0"
        return self._parse_rows(self._db.execute(query + " ORDER BY id"))

    def load_for_package(self, ecosystem: str, name: str) -> tuple[list[Advisory], ImportReport]:
        """The advisories naming one package in any release of ``ecosystem``
        (a base name such as ``Debian``; ``name`` normalized for it)."""
        rows = self._db.execute(
            "SELECT id, record FROM advisories WHERE id IN "
            "(SELECT id FROM affected_packages WHERE ecosystem = ? AND name = ?) ORDER BY id",
            (ecosystem, name),
        )
        return self._parse_rows(rows)

    def _parse_rows(self, rows: Iterable[tuple[str, bytes]]) -> tuple[list[Advisory], ImportReport]:
        report = ImportReport()
        out = []
        for rid, blob in rows:
            report.records += 1
            try:
                advisory, warnings = parse_record(orjson.loads(blob))
            except (RecordError, orjson.JSONDecodeError) as exc:
                report.rejected.append(Rejection(str(self.path), rid, str(exc)))
                continue
            report.accepted += 1
            report.warnings.extend(warnings)
            out.append(advisory)
        return out, report

    def ecosystem_records(self, ecosystem: str) -> tuple[int, datetime | None]:
        """How many advisories (not withdrawn) a package of ``ecosystem`` is matched
        against (``Debian:12``: Debian 12's and release-less Debian ones), and the
        newest one's modified time."""
        key = parse_ecosystem(ecosystem)
        count, newest = self._db.execute(
            "SELECT COUNT(DISTINCT a.id), MAX(a.modified) FROM advisories a "
            "JOIN affected_packages p ON p.id = a.id "
            "WHERE a.withdrawn = 0 AND p.ecosystem = ? AND p.release IN (?, '')",
            (key.base, key.release),
        ).fetchone()
        return count, datetime.fromisoformat(newest).replace(tzinfo=UTC) if newest else None

    def coverage(self, needed: dict[str, int]) -> Coverage:
        """The coverage of a scan that looked ``needed`` (ecosystem -> packages) up."""
        return Coverage(tuple(EcosystemCoverage(e, n, *self.ecosystem_records(e)) for e, n in sorted(needed.items())))

    def get(self, advisory_id: str) -> Advisory | None:
        row = self._db.execute("SELECT record FROM advisories WHERE id = ?", (advisory_id,)).fetchone()
        return parse_record(orjson.loads(row[0]))[0] if row else None

    def load_index(self) -> tuple[AdvisoryIndex, ImportReport]:
        """An AdvisoryIndex of every advisory that is not withdrawn."""
        advisories, report = self.load(include_withdrawn=False)
        return AdvisoryIndex.from_advisories(advisories), report
