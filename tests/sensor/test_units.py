"""Pure parts: event decoding, cgroup resolution over a directory tree, aggregation, wire rules, CLI errors."""

from __future__ import annotations

import os
import struct
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from vigil.sensor.agent import AgentSettings
from vigil.sensor.aggregate import Aggregator, Execution
from vigil.sensor.attribution import HOST, attribute_cgroup_path
from vigil.sensor.cgroups import CgroupResolver, unified_mount
from vigil.sensor.cli import app
from vigil.sensor.events import (
    EXEC_SIZE,
    EventDecodeError,
    ExecEvent,
    FileIdentity,
    ProcessHeader,
    decode_event,
    kernel_dev_to_st_dev,
)
from vigil.sensor.hashing import HashedFile
from vigil.wire.runtime import RuntimeBatch, RuntimeRecord

CID = "c" * 64
UID = "5b1c7e0e-2f0a-4b8e-9d3c-6a7f1e2d3c4b"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_decode_refuses_wrong_sizes_and_types() -> None:
    with pytest.raises(EventDecodeError, match="ring-buffer record has unknown event type 9"):
        decode_event(struct.pack("<I", 9) + bytes(100))
    with pytest.raises(EventDecodeError, match=f"event type 1 record is 80 bytes, expected {EXEC_SIZE}"):
        decode_event(struct.pack("<I", 1) + bytes(76))


def test_kernel_dev_encoding() -> None:
    assert kernel_dev_to_st_dev((254 << 20) | 0) == os.makedev(254, 0)
    assert kernel_dev_to_st_dev((8 << 20) | 300) == os.makedev(8, 300)


def test_unified_mount_from_mountinfo() -> None:
    hybrid = "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n"
    v1 = "33 31 0:29 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
    assert unified_mount(v1 + hybrid) == Path("/sys/fs/cgroup/unified")
    assert unified_mount(v1) is None


def test_resolver_follows_cgroups_coming_and_going(tmp_path: Path) -> None:
    (tmp_path / "system.slice").mkdir()
    r = CgroupResolver(root=tmp_path, proc=tmp_path / "noproc", retire_after_s=0)
    host_id = os.stat(tmp_path / "system.slice").st_ino
    assert r.attribute(host_id, seen_boot_ns=0) == HOST and r.is_known_host(host_id)
    # A container started after the first walk: the miss walks again.
    c = tmp_path / "kubepods" / "besteffort" / f"pod{UID}" / CID
    c.mkdir(parents=True)
    cid = os.stat(c).st_ino
    import time

    found = r.attribute(cid, seen_boot_ns=time.clock_gettime_ns(time.CLOCK_BOOTTIME))
    assert found == attribute_cgroup_path(f"/kubepods/besteffort/pod{UID}/{CID}")
    assert found.container_ref == f"containerd://{CID}" and found.pod_uid == UID
    walks = r.rescans
    # An unknown id seen BEFORE the last walk is not walked for again (it is gone already).
    assert r.attribute(999_999_999, seen_boot_ns=0) == HOST and r.rescans == walks
    assert not r.is_known_host(999_999_999)
    # The container stops: its cgroup is retired on the next walk (grace period 0 here).
    c.rmdir()
    r.path_of(888_888_888, time.clock_gettime_ns(time.CLOCK_BOOTTIME))
    r.path_of(888_888_888, time.clock_gettime_ns(time.CLOCK_BOOTTIME))
    assert r.path_of(cid, 0) is None


def _execution(path: str, sha: str | None, when: datetime, pid: int, script: str | None = None) -> Execution:
    hdr = ProcessHeader(pid, pid, 1, 0, 0, 7, 0, 0, 1, 2, path.rsplit("/", 1)[-1][:15])
    ev = ExecEvent(hdr, path, path, [path, "-x"], 2, False, False, FileIdentity(1, 2, 3, 4))
    return Execution(
        ev,
        attribute_cgroup_path(f"/kubepods/pod{UID}/{CID}"),
        when,
        sha,
        script,
        "ef" * 32 if script else None,
        [HashedFile("/lib/libc.so.6", "cd" * 32)],
    )


def test_aggregator_counts_first_last_and_samples() -> None:
    agg = Aggregator(samples_per_record=2)
    for i in range(4):
        agg.add(
            _execution("/bin/sh", "ab" * 32, T0 + timedelta(seconds=i), 100 + i, script="/tmp/s.sh" if i == 0 else None)
        )
    agg.add(_execution("/bin/sh", None, T0, 200))
    recs = {(r.kind, r.path, r.sha256): r for r in agg.flush()}
    assert set(recs) == {
        ("executable", "/bin/sh", "ab" * 32),
        ("executable", "/bin/sh", None),
        ("script", "/tmp/s.sh", "ef" * 32),
        ("library", "/lib/libc.so.6", "cd" * 32),
    }
    sh = recs[("executable", "/bin/sh", "ab" * 32)]
    assert (sh.count, sh.first_seen, sh.last_seen) == (4, T0, T0 + timedelta(seconds=3))
    assert [s.pid for s in sh.samples] == [100, 101]
    assert sh.container_id == f"containerd://{CID}" and sh.pod_uid == UID
    assert recs[("library", "/lib/libc.so.6", "cd" * 32)].count == 5
    assert recs[("library", "/lib/libc.so.6", "cd" * 32)].samples == []
    assert agg.flush() == []


def test_aggregator_bound_counts_overflow() -> None:
    agg = Aggregator(max_records=1)
    agg.add(_execution("/bin/a", "ab" * 32, T0, 1))  # executable + library: the library overflows
    assert len(agg) == 1 and agg.overflowed == 1


def test_wire_rules_name_the_input() -> None:
    ok = dict(
        container_id=f"containerd://{CID}", path="/bin/sh", sha256="ab" * 32, first_seen=T0, last_seen=T0, count=1
    )
    RuntimeRecord(**ok)
    with pytest.raises(ValidationError, match="'XYZ' is not a file sha256"):
        RuntimeRecord(**{**ok, "sha256": "XYZ"})
    with pytest.raises(ValidationError, match=r"'abc' is not a valid container id \(runtime://id\)"):
        RuntimeRecord(**{**ok, "container_id": "abc"})
    with pytest.raises(ValidationError, match="last_seen .* is before first_seen"):
        RuntimeRecord(**{**ok, "last_seen": T0 - timedelta(seconds=1)})
    rec = RuntimeRecord(**ok)
    with pytest.raises(ValidationError, match="appears twice in the batch"):
        RuntimeBatch(
            batch_id="s-1",
            cluster_id="c",
            node_name="n",
            sensor_id="s",
            seq=1,
            window_start=T0,
            window_end=T0,
            records=[rec, rec],
        )
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        RuntimeRecord(**ok, bogus=1)


def test_cli_refuses_bad_option_combinations(tmp_path: Path) -> None:
    runner = CliRunner()

    def text(r) -> str:  # the error panel wraps lines inside a box
        return " ".join(r.output.replace("│", " ").split())

    r = runner.invoke(app, [])
    assert (
        r.exit_code == 2
        and "give --service URL (with --enrolment-credential-file) to ship, or --output json to print" in text(r)
    )
    one_of = "--service needs --enrolment-credential-file or --credential-file (one of them)"
    r = runner.invoke(app, ["--service", "https://vigil.example.com"])
    assert r.exit_code == 2 and one_of in text(r)
    both = ["--credential-file", str(tmp_path / "c"), "--enrolment-credential-file", str(tmp_path / "e")]
    r = runner.invoke(app, ["--service", "https://vigil.example.com", *both])
    assert r.exit_code == 2 and one_of in text(r)
    r = runner.invoke(app, ["--service", "http://10.0.0.5:8080", "--credential-file", str(tmp_path / "c")])
    assert r.exit_code == 2 and "plain HTTP is allowed only on loopback" in text(r)
    r = runner.invoke(app, ["--output", "yaml"])
    assert r.exit_code == 2 and "only 'json' is supported" in text(r)


def test_cli_reads_the_service_url_from_its_setting_and_the_deprecated_name(tmp_path: Path) -> None:
    credential = tmp_path / "credential"
    credential.write_text("vgl_c_token\n")
    args = ["--credential-file", str(credential), "--spool-dir", str(tmp_path / "spool")]
    for name in ("VIGIL_SERVICE_URL", "VIGIL_SERVICE"):
        r = CliRunner().invoke(app, args, env={name: "http://10.0.0.5:8080"})
        assert r.exit_code == 2, name
        assert "--service http://10.0.0.5:8080: plain HTTP is allowed only on loopback" in " ".join(
            r.output.replace("│", " ").split()
        )


def test_cli_refuses_a_service_ca_that_is_no_pem_bundle(tmp_path: Path) -> None:
    credential = tmp_path / "credential"
    credential.write_text("vgl_c_token\n")
    ca = tmp_path / "ca.crt"
    ca.write_text("not a certificate\n")
    args = ["--credential-file", str(credential), "--spool-dir", str(tmp_path / "spool")]
    r = CliRunner().invoke(
        app, args, env={"VIGIL_SERVICE_URL": "https://vigil.example.com", "VIGIL_SERVICE_CA": str(ca)}
    )
    assert r.exit_code == 2
    assert f"--service-ca {ca}: not a readable PEM CA bundle" in " ".join(r.output.replace("│", " ").split())


@pytest.mark.parametrize(
    ("batch_interval_s", "poll_timeout_ms", "drain_ms"),
    [(5.0, 200, 200), (0.1, 200, 25), (0.2, 20, 20), (0.01, 200, 10)],
)
def test_the_drain_waits_on_the_ring_at_most_a_quarter_of_the_batch_window(
    batch_interval_s: float, poll_timeout_ms: int, drain_ms: int
) -> None:
    settings = AgentSettings("c1", "node-a", batch_interval_s=batch_interval_s, poll_timeout_ms=poll_timeout_ms)
    assert settings.drain_timeout_ms == drain_ms
