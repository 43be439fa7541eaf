"""A bounded on-disk spool of runtime batches, oldest first.

Every batch is written here before it is sent, so a sensor restart or a
service outage loses nothing until the bound (batches and bytes). Past the
bound the OLDEST batches are dropped, and counted, so the freshest picture of
the node survives a long outage. Writes are atomic (temp file, then rename).
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from vigil.sensor.enrolment import CREDENTIAL_FILE
from vigil.wire.runtime import RuntimeBatch

log = logging.getLogger(__name__)

_NAME = re.compile(r"(\d{12})\.json\Z")


@dataclass(frozen=True)
class SpoolEntry:
    seq: int
    path: Path

    def load(self) -> RuntimeBatch:
        return RuntimeBatch.model_validate_json(self.path.read_bytes())


class Spool:
    def __init__(self, directory: Path, *, max_batches: int = 1000, max_bytes: int = 256 << 20):
        if max_batches < 1 or max_bytes < 1:
            raise ValueError(f"spool bounds must be positive, got max_batches={max_batches} max_bytes={max_bytes}")
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.max_batches = max_batches
        self.max_bytes = max_bytes
        self.dropped_batches = 0
        self.dropped_records = 0
        self.sensor_id = self._sensor_id()
        entries = self.entries()
        self._next_seq = entries[-1].seq + 1 if entries else self._stored_next_seq()

    def _sensor_id(self) -> str:
        # Kept with the spool so batch ids stay unique across restarts of the sensor.
        f = self.dir / "sensor-id"
        try:
            value = f.read_text().strip()
            if re.fullmatch(r"[a-z0-9]{16}", value):
                return value
            log.warning("spool sensor id %r in %s is malformed; choosing a new one", value, f)
        except FileNotFoundError:
            pass
        value = secrets.token_hex(8)
        f.write_text(value + "\n")
        return value

    def _stored_next_seq(self) -> int:
        try:
            return int((self.dir / "next-seq").read_text())
        except (FileNotFoundError, ValueError):
            return 0

    def next_seq(self) -> int:
        seq = self._next_seq
        self._next_seq += 1
        (self.dir / "next-seq").write_text(str(self._next_seq))
        return seq

    def entries(self) -> list[SpoolEntry]:
        out = []
        for p in self.dir.iterdir():
            m = _NAME.match(p.name)
            if m:
                out.append(SpoolEntry(int(m.group(1)), p))
            elif p.name not in ("sensor-id", "next-seq", CREDENTIAL_FILE) and not p.name.endswith(".tmp"):
                log.warning("ignoring unexpected file in spool: %s", p)
        return sorted(out, key=lambda e: e.seq)

    def put(self, batch: RuntimeBatch) -> None:
        data = batch.model_dump_json().encode()
        if len(data) > self.max_bytes:
            self.dropped_batches += 1
            self.dropped_records += len(batch.records)
            log.warning(
                "batch %s of %d bytes exceeds the spool bound %d: dropped", batch.batch_id, len(data), self.max_bytes
            )
            return
        tmp = self.dir / f"{batch.seq:012d}.json.tmp"
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.dir / f"{batch.seq:012d}.json")
        self._enforce_bound()

    def _enforce_bound(self) -> None:
        entries = self.entries()
        sizes = {e.seq: e.path.stat().st_size for e in entries}
        total = sum(sizes.values())
        while entries and (len(entries) > self.max_batches or total > self.max_bytes):
            oldest = entries.pop(0)
            try:
                n = len(json.loads(oldest.path.read_bytes()).get("records", []))
            except (OSError, ValueError):
                n = 0
            oldest.path.unlink(missing_ok=True)
            total -= sizes[oldest.seq]
            self.dropped_batches += 1
            self.dropped_records += n
            log.warning(
                "spool bound reached (%d batches, %d bytes): dropped batch seq %d with %d records",
                self.max_batches,
                self.max_bytes,
                oldest.seq,
                n,
            )

    def remove(self, entry: SpoolEntry) -> None:
        entry.path.unlink(missing_ok=True)

    def __len__(self) -> int:
        return len(self.entries())
