"""Spool and shipper against a real HTTP server on loopback: outage, recovery, bound."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ingest_server import IngestServer, free_port  # noqa: E402

from vigil.sensor.shipper import Shipper, read_credential  # noqa: E402
from vigil.sensor.spool import Spool  # noqa: E402
from vigil.wire.runtime import RuntimeBatch, RuntimeRecord  # noqa: E402

T0 = datetime(2026, 1, 1, tzinfo=UTC)
SHA = "ab" * 32
TOKEN = "s3cret-token"


def _batch(spool: Spool, n_records: int) -> RuntimeBatch:
    seq = spool.next_seq()
    return RuntimeBatch(
        batch_id=f"{spool.sensor_id}-{seq}",
        cluster_id="c1",
        node_name="node-a",
        sensor_id=spool.sensor_id,
        seq=seq,
        window_start=T0,
        window_end=T0 + timedelta(seconds=5),
        records=[
            RuntimeRecord(
                container_id="containerd://" + "c" * 64,
                path=f"/bin/tool{seq}-{i}",
                sha256=SHA,
                first_seen=T0,
                last_seen=T0,
                count=i + 1,
            )
            for i in range(n_records)
        ],
    )


def test_outage_then_recovery_delivers_each_batch_once_in_order(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    port = free_port()
    shipper = Shipper(f"http://127.0.0.1:{port}", TOKEN, spool, timeout_s=2)
    sent = [_batch(spool, n) for n in (1, 2, 3)]
    for b in sent:
        spool.put(b)
        result = shipper.ship(force=True)
        assert result.delivered == 0 and "ConnectError" in result.error
    assert len(spool) == 3

    server = IngestServer(port=port, token=TOKEN)
    try:
        result = shipper.ship(force=True)
        assert (result.delivered, result.rejected, result.error) == (3, 0, None)
        assert [b["batch_id"] for b in server.batches] == [b.batch_id for b in sent]
        assert [len(b["records"]) for b in server.batches] == [1, 2, 3]
        assert sum(r["count"] for b in server.batches for r in b["records"]) == 1 + (1 + 2) + (1 + 2 + 3)
        assert len(spool) == 0
        assert shipper.ship(force=True).delivered == 0
        assert len(server.batches) == 3
    finally:
        server.stop()
        shipper.close()


def test_spool_bound_drops_oldest_and_counts(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", max_batches=3)
    batches = [_batch(spool, n) for n in (1, 2, 3, 4, 5)]
    for b in batches:
        spool.put(b)
    assert [e.seq for e in spool.entries()] == [2, 3, 4]
    assert spool.dropped_batches == 2 and spool.dropped_records == 1 + 2
    assert spool.entries()[0].load() == batches[2]

    # A restarted sensor keeps its id and goes on numbering after what is spooled.
    again = Spool(tmp_path / "spool", max_batches=3)
    assert again.sensor_id == spool.sensor_id
    assert again.next_seq() == 5


def test_refused_batch_is_set_aside_not_retried(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    server = IngestServer(refuse_batches=422)
    shipper = Shipper(server.url, TOKEN, spool)
    try:
        spool.put(_batch(spool, 1))
        result = shipper.ship(force=True)
        assert (result.delivered, result.rejected) == (0, 1)
        assert len(spool) == 0
        assert [p.name for p in (tmp_path / "spool-rejected").iterdir()] == ["000000000000.json"]
    finally:
        server.stop()
        shipper.close()


def test_a_refused_credential_keeps_the_batches_spooled(tmp_path: Path) -> None:
    """A 401 is about the credential (revoked, or replaced by a re-enrolment), not the batch."""
    spool = Spool(tmp_path / "spool")
    server = IngestServer(token="another-token")
    shipper = Shipper(server.url, TOKEN, spool)
    try:
        spool.put(_batch(spool, 1))
        result = shipper.ship(force=True)
        assert (result.delivered, result.rejected, result.error) == (0, 0, 'HTTP 401: {"detail": "bad credential"}')
        assert len(spool) == 1 and not (tmp_path / "spool-rejected").exists()
    finally:
        server.stop()
        shipper.close()


def test_credential_file_rules(tmp_path: Path) -> None:
    f = tmp_path / "cred"
    f.write_text("tok-123\n")
    assert read_credential(f) == "tok-123"
    f.write_text("two words")
    with pytest.raises(ValueError, match=r"credential file .*/cred must hold one token without whitespace"):
        read_credential(f)
    with pytest.raises(ValueError, match=r"cannot read credential file .*/absent: No such file or directory"):
        read_credential(tmp_path / "absent")


def test_spool_bounds_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="spool bounds must be positive, got max_batches=0 max_bytes=1"):
        Spool(tmp_path, max_batches=0, max_bytes=1)
