"""What an import did: counts, and every record or file it did not take, with why."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Rejection:
    source: str  # file path, or "archive.zip!member.json"
    id: str | None  # the record's id when it had one
    reason: str

    def __str__(self) -> str:
        return f"{self.source}: {self.id or '<no id>'}: {self.reason}"


@dataclass(slots=True)
class ImportReport:
    files: int = 0  # files (or archive members) read
    records: int = 0  # records found in them
    accepted: int = 0  # records that parsed
    rejected: list[Rejection] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason): not OSV files
    warnings: list[str] = field(default_factory=list)
    # Filled when the advisories are written to a store:
    imported: int = 0  # new ids
    updated: int = 0  # ids whose record was modified since the stored one
    unchanged: int = 0  # ids whose stored record is as new or newer

    def merge(self, other: ImportReport) -> None:
        self.files += other.files
        self.records += other.records
        self.accepted += other.accepted
        self.rejected.extend(other.rejected)
        self.skipped.extend(other.skipped)
        self.warnings.extend(other.warnings)
        self.imported += other.imported
        self.updated += other.updated
        self.unchanged += other.unchanged
