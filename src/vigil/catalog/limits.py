"""Limits per scan: what one image may cost the scanner, whatever its layers claim.

An image is untrusted input. Every limit hit ends in a scan warning that names the limit and its
value, and marks the scan incomplete (what it lists may be short): never a crash, never a stall.
Defaults fit real images (the largest public images stay well inside them); operators change them
with ``VIGIL_SCAN_*`` environment variables (docs/settings.md, docs/security.md).
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, fields

MiB = 1 << 20
GiB = 1 << 30


@dataclass(frozen=True, slots=True)
class ScanLimits:
    max_total_bytes: int = 16 * GiB  # file bytes read from all layers (a hard link reads none)
    max_stored_bytes: int = 4 * GiB  # bytes spooled to the work dir for the catalogers
    max_files: int = 1_000_000  # tar members over all layers
    max_file_bytes: int = 4 * GiB  # one file's real size (a sparse member's too)
    max_header_bytes: int = 1 * MiB  # one tar member's extended header (pax, GNU long name)
    max_archive_depth: int = 3  # an archive, and the archives in it (jar in war in ear)
    max_expansion_ratio: int = 200  # a compressed archive entry may inflate at most this many times
    max_archive_entry_bytes: int = 256 * MiB  # one entry of an archive, inflated
    max_manifest_bytes: int = 4 * MiB  # a manifest, an index or an image config from a registry
    deadline_seconds: float = 900.0  # wall clock for one scan
    max_memory_bytes: int = 2 * GiB  # address space of the service's scan process (RLIMIT_AS)
    max_archive_entries: int = 250_000  # entries of one archive: each costs memory before any is read
    max_nested_archive_bytes: int = 2 * GiB  # archives nested in one file, inflated, all levels together

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ScanLimits:
        """Defaults, overridden by ``VIGIL_SCAN_<FIELD>`` (e.g. ``VIGIL_SCAN_MAX_FILES``)."""
        env = os.environ if env is None else env
        values: dict[str, int | float] = {}
        for f in fields(cls):
            raw = env.get(env_name(f.name))
            if raw is None or raw == "":
                continue
            seconds = f.name == "deadline_seconds"
            rule = "a number of seconds above 0" if seconds else "a whole number above 0"
            try:
                value = float(raw) if seconds else int(raw)
            except ValueError:
                raise ValueError(f"{env_name(f.name)}={raw!r}: must be {rule}") from None
            if not 0 < value < float("inf"):
                raise ValueError(f"{env_name(f.name)}={raw!r}: must be {rule}")
            values[f.name] = value
        return cls(**values)  # type: ignore[arg-type]


def env_name(field_name: str) -> str:
    return "VIGIL_SCAN_" + field_name.upper()


def limit_text(name: str, value: int | float) -> str:
    """How a warning names a limit: its setting and its value."""
    return f"{name} ({env_name(name)}={value:g})" if isinstance(value, float) else f"{name} ({env_name(name)}={value})"


class LimitExceeded(Exception):
    """A limit per scan was reached: reading stops, the scan is incomplete."""

    def __init__(self, name: str, value: int | float, detail: str) -> None:
        super().__init__(f"limit {limit_text(name, value)} reached: {detail}")
        self.name = name
        self.value = value


@dataclass(slots=True)
class ScanBudget:
    """What one scan has used so far, against its ``ScanLimits``."""

    limits: ScanLimits = field(default_factory=ScanLimits)
    started: float = field(default_factory=time.monotonic)
    total_bytes: int = 0
    stored_bytes: int = 0
    files: int = 0

    def _charge(self, name: str, used: int, detail: str) -> None:
        limit = getattr(self.limits, name)
        if used > limit:
            raise LimitExceeded(name, limit, detail)

    def check_deadline(self) -> None:
        elapsed = time.monotonic() - self.started
        if elapsed > self.limits.deadline_seconds:
            raise LimitExceeded("deadline_seconds", self.limits.deadline_seconds, f"{elapsed:.1f} s spent")

    def count_file(self, path: str) -> None:
        self.files += 1
        self._charge("max_files", self.files, f"at {path}")
        self.check_deadline()

    def read_bytes(self, n: int, path: str) -> None:
        self.total_bytes += n
        self._charge("max_total_bytes", self.total_bytes, f"{self.total_bytes} bytes read at {path}")

    def store_bytes(self, n: int, path: str) -> None:
        self.stored_bytes += n
        self._charge("max_stored_bytes", self.stored_bytes, f"{self.stored_bytes} bytes kept at {path}")
