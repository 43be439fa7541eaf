"""Runtime prevention's pure parts: policy -> kernel map entries, the prevented record's layout,
aggregation into PreventionRecords, and the policy file's checks."""

from __future__ import annotations

import os
import struct
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bpf_support import bpf_unavailable

from vigil.sensor.attribution import Attribution
from vigil.sensor.events import PREVENTED_SIZE, FileIdentity, PreventedEvent, decode_event
from vigil.sensor.policy_source import PolicyError, parse_policy
from vigil.sensor.prevention import (
    RULE_BITS,
    Prevention,
    PreventionAggregator,
    RuleBits,
    cgroup_entries,
    container_bits,
    drift_entries,
    drift_index,
    drift_key,
    file_key,
    rule_bits,
    target_of,
)
from vigil.wire.prevention import ContainerPrevention, NodeRuntimePolicy, PreventionRule

CID = "containerd://" + "a" * 64
OTHER = "containerd://" + "b" * 64
T0 = datetime(2026, 12, 4, 1, 0, tzinfo=UTC)


def _policy(**rules: str) -> NodeRuntimePolicy:
    return NodeRuntimePolicy(
        revision="r1",
        node_name="node-a",
        generated_at=T0,
        containers=[ContainerPrevention(container_id=CID, rules=rules), ContainerPrevention(container_id=OTHER)],
    )


def test_rule_bits_follow_the_kernel_enum_and_split_by_mode() -> None:
    assert RULE_BITS == {
        PreventionRule.DENY_LISTED: 1,
        PreventionRule.MEMFD_EXEC: 2,
        PreventionRule.DELETED_EXEC: 4,
        PreventionRule.TMP_EXEC: 8,
        PreventionRule.DRIFT: 16,
        PreventionRule.ESCAPE: 32,
    }
    assert rule_bits({PreventionRule.DRIFT: "enforce", PreventionRule.ESCAPE: "audit"}) == RuleBits(16, 32)
    assert not RuleBits()


def test_only_listed_containers_own_cgroups_get_entries() -> None:
    wanted = container_bits(_policy(drift="enforce", tmp_exec="audit"))
    assert wanted == {CID: RuleBits(16, 8)}  # OTHER has no rule on: not entered at all
    assert cgroup_entries(wanted, {101: CID, 102: OTHER, 103: "containerd://" + "c" * 64}) == {101: RuleBits(16, 8)}


def test_file_key_is_struct_file_id_with_the_kernels_device_encoding() -> None:
    ident = FileIdentity(os.makedev(0, 0x2A), 77, 1000, 5 * 1_000_000_000 + 123)
    assert file_key(ident) == struct.pack("<QqII", 77, 5, 123, 0x2A)
    assert file_key(FileIdentity(os.makedev(8, 1), 1, 0, 0))[-4:] == struct.pack("<I", (8 << 20) | 1)


def _raw(rule: int, flags: int, op: int, filename: bytes, interp: bytes = b"", dname: bytes = b"", aux: int = 0):
    header = struct.pack("<6I3Q2I16s", 5, 40, 40, 39, 0, 0, 9001, 1, 2_000_000_000, 11, 12, b"dropped")
    tail = struct.pack(
        "<IIIiQqqIIQII256s256s64s1024s",
        rule,
        flags,
        op,
        0,
        77,
        1000,
        5,
        0,
        0x2A,
        aux,
        14,
        0,
        filename,
        interp,
        dname,
        b"/x/dropped\0/m\0",
    )
    raw = header + tail
    assert len(raw) == PREVENTED_SIZE
    return raw


def test_prevented_records_decode_exec_and_escape() -> None:
    ev = decode_event(_raw(16, 1 | 2 | 4 | 8, 0, b"./dropped", b"/x/dropped", b"dropped"))
    assert isinstance(ev, PreventedEvent)
    assert (ev.rule_bit, ev.enforce, ev.killed, ev.operation, ev.upper_layer) == (16, True, True, None, True)
    assert ev.path == "/x/dropped" and ev.argv == ["/x/dropped", "/m"]
    assert ev.file == FileIdentity(os.makedev(0, 0x2A), 77, 1000, 5_000_000_000)
    memfd = decode_event(_raw(2, 16, 0, b"/dev/fd/3", b"/dev/fd/3", b"memfd:payload"))
    assert isinstance(memfd, PreventedEvent) and memfd.path == "/memfd:payload (deleted)"
    assert not memfd.enforce and memfd.upper_layer is None
    unshare = decode_event(_raw(32, 1 | 2, 8, b"", aux=0x00020000))
    assert isinstance(unshare, PreventedEvent) and unshare.operation == "unshare" and unshare.file is None
    assert target_of(unshare) == "CLONE_NEWNS"
    setns = decode_event(_raw(32, 0, 7, b"", aux=0))
    assert isinstance(setns, PreventedEvent) and target_of(setns) == "any"
    core = decode_event(_raw(32, 1 | 2, 1, b"/proc/sys/kernel/core_pattern"))
    assert isinstance(core, PreventedEvent) and target_of(core) == "/proc/sys/kernel/core_pattern"


def test_aggregation_one_record_per_key_latest_mode_first_sha() -> None:
    ev = decode_event(_raw(16, 1 | 2 | 4 | 8, 0, b"/x/dropped", b"/x/dropped"))
    audited = decode_event(_raw(16, 4 | 8, 0, b"/x/dropped", b"/x/dropped"))
    assert isinstance(ev, PreventedEvent) and isinstance(audited, PreventedEvent)
    where = Attribution("kubelet-cgroupfs", "containerd", "a" * 64, "pod-1")
    agg = PreventionAggregator(max_records=1)
    agg.add(Prevention(ev, where, T0, None, ["sh"], "r1"))
    agg.add(Prevention(audited, where, T0 + timedelta(seconds=1), "f" * 64, ["sh"], "r2"))
    other = decode_event(_raw(8, 1 | 2, 0, b"/tmp/x", b"/tmp/x"))
    assert isinstance(other, PreventedEvent)
    agg.add(Prevention(other, where, T0, None, [], "r2"))  # past max_records: counted, not kept
    assert agg.overflowed == 1
    (rec,) = PreventionAggregator.records(agg.take())
    assert (rec.container_id, rec.rule, rec.mode, rec.killed, rec.count, rec.policy_revision) == (
        CID,
        PreventionRule.DRIFT,
        "audit",
        False,
        2,
        "r2",
    )
    assert (rec.sha256, rec.first_seen, rec.last_seen, rec.path, rec.operation) == (
        "f" * 64,
        T0,
        T0 + timedelta(seconds=1),
        "/x/dropped",
        "exec",
    )
    assert [s.parents for s in rec.samples] == [["sh"], ["sh"]] and rec.samples[0].argv == ["/x/dropped", "/m"]


def test_policy_file_checks_name_the_file_and_the_problem() -> None:
    good = _policy(drift="enforce").model_dump_json().encode()
    assert parse_policy(good, "p.json", "node-a").revision == "r1"
    with pytest.raises(PolicyError) as other_node:
        parse_policy(good, "p.json", "node-b")
    assert str(other_node.value) == "runtime policy p.json is for node node-a, and this sensor is node node-b"
    with pytest.raises(PolicyError) as bad:
        parse_policy(b'{"revision": "r1", "node_name": "node-a"}', "p.json", "node-a")
    assert str(bad.value) == "runtime policy p.json is not a NodeRuntimePolicy: generated_at: Field required"
    with pytest.raises(PolicyError) as big:
        parse_policy(b" " * (32 << 20 | 1), "p.json", "node-a")
    assert str(big.value) == f"runtime policy p.json is {32 << 20 | 1} bytes, over the {32 << 20} byte limit"


SHA_A, SHA_B = "a1" * 32, "b2" * 32


def test_drift_key_is_struct_drift_key_and_only_drift_rule_containers_index_their_sha256s() -> None:
    ident = FileIdentity(os.makedev(0, 0x2A), 77, 1000, 5 * 1_000_000_000 + 123)
    assert drift_key(ident, 4242) == struct.pack("<QqIIQ", 77, 5, 123, 0x2A, 4242)
    third = "containerd://" + "c" * 64
    policy = NodeRuntimePolicy(
        revision="r1",
        node_name="node-a",
        generated_at=T0,
        containers=[
            ContainerPrevention(container_id=CID, rules={"drift": "enforce"}, drift_sha256=[SHA_A, SHA_B]),
            ContainerPrevention(container_id=OTHER, rules={"drift": "audit"}, drift_sha256=[SHA_A]),
            # Listed without the drift rule on: its sha256s are nobody's drift.
            ContainerPrevention(container_id=third, rules={"tmp_exec": "enforce"}, drift_sha256=[SHA_B]),
        ],
    )
    index = drift_index(policy)
    assert index == {SHA_A: frozenset({CID, OTHER}), SHA_B: frozenset({CID})}
    cgroups = {11: CID, 12: OTHER, 13: third, 14: CID}
    assert drift_entries(SHA_A, index, cgroups) == [11, 12, 14]
    assert drift_entries(SHA_B, index, cgroups) == [11, 14]
    assert drift_entries("c3" * 32, index, cgroups) == []


def test_drift_sha256_must_be_sha256s_and_is_bounded() -> None:
    with pytest.raises(ValueError, match="'ABC' is not a file sha256"):
        ContainerPrevention(container_id=CID, drift_sha256=["ABC"])
    with pytest.raises(ValueError, match="at most 10000 items"):
        ContainerPrevention(container_id=CID, drift_sha256=[SHA_A] * 10_001)


def _cgroup_tree(root, pod: str, cid: str):
    container = root / "kubepods" / "besteffort" / f"pod{pod}" / cid
    container.mkdir(parents=True)
    (root / "system.slice" / "containerd.service").mkdir(parents=True)
    return container


@pytest.mark.skipif(bpf_unavailable() is not None, reason=str(bpf_unavailable()))
def test_enforcer_fills_and_empties_the_kernel_map_for_listed_containers_only(tmp_path) -> None:
    from vigil.sensor.enforcer import Enforcer
    from vigil.sensor.loader import ProcessTracer

    pod = "0b7f2a4e-1111-4222-8333-444455556666"
    container = _cgroup_tree(tmp_path / "root", pod, "a" * 64)
    other = _cgroup_tree(tmp_path / "elsewhere", pod, "b" * 64)  # not in the walk
    cg, pod_cg, other_cg = os.stat(container).st_ino, os.stat(container.parent).st_ino, os.stat(other).st_ino
    # Audit only: these ids are directory inodes of a temp dir, not cgroups; nothing may be killed.
    with ProcessTracer(activities=False, exec_aggregation=False) as tracer:
        enforcer = Enforcer(tracer, tmp_path / "root")
        enforcer.apply(_policy(drift="audit", tmp_exec="audit"))
        assert tracer.cgroup_rules(cg) == (0, 16 | 8)
        assert tracer.cgroup_rules(pod_cg) is None and tracer.cgroup_rules(other_cg) is None
        assert enforcer.revision == "r1" and enforcer.error is None
        # A container seen later (its cgroup was not in the walk) is entered when noted.
        enforcer.note_container(other_cg, Attribution("kubelet-cgroupfs", "containerd", "a" * 64, pod))
        assert tracer.cgroup_rules(other_cg) == (0, 24)
        # A policy that no longer lists it empties its entries.
        enforcer.apply(NodeRuntimePolicy(revision="r2", node_name="node-a", generated_at=T0))
        assert tracer.cgroup_rules(cg) is None and tracer.cgroup_rules(other_cg) is None
        assert enforcer.entries() == {}


@pytest.mark.skipif(bpf_unavailable() is not None, reason=str(bpf_unavailable()))
def test_enforcer_enters_drift_files_per_container_cgroup_and_takes_them_out(tmp_path) -> None:
    from vigil.sensor.enforcer import Enforcer
    from vigil.sensor.loader import ProcessTracer

    pod = "0b7f2a4e-1111-4222-8333-444455556666"
    container = _cgroup_tree(tmp_path / "root", pod, "a" * 64)
    (tmp_path / "root" / "kubepods" / "besteffort" / f"pod{pod}" / ("b" * 64)).mkdir()
    later = _cgroup_tree(tmp_path / "elsewhere", pod, "a" * 64)  # the same container, seen later
    cg = os.stat(container).st_ino
    other_cg = os.stat(container.parent / ("b" * 64)).st_ino
    later_cg = os.stat(later).st_ino
    hashed = FileIdentity(os.makedev(0, 0x2A), 9001, 1000, 7 * 1_000_000_000 + 5)  # hashed before the policy
    fresh = FileIdentity(os.makedev(0, 0x2A), 9002, 1000, 7 * 1_000_000_000 + 6)  # hashed after it
    image_own = FileIdentity(os.makedev(0, 0x2A), 9003, 1000, 7 * 1_000_000_000 + 7)
    known = [(hashed, SHA_A), (image_own, "c3" * 32)]

    def policy(revision: str, drift: list[str]) -> NodeRuntimePolicy:
        return NodeRuntimePolicy(
            revision=revision,
            node_name="node-a",
            generated_at=T0,
            containers=[
                ContainerPrevention(container_id=CID, rules={"drift": "audit"}, drift_sha256=drift),
                ContainerPrevention(container_id=OTHER, rules={"drift": "audit"}),
            ],
        )

    # Audit only: these ids are directory inodes of a temp dir, not cgroups; nothing may be killed.
    with ProcessTracer(activities=False, exec_aggregation=False) as tracer:
        enforcer = Enforcer(tracer, tmp_path / "root", known_files=lambda: known)
        enforcer.apply(policy("r1", [SHA_A, SHA_B]))
        # Hashed before the policy arrived: entered for the container that lists its sha256 only.
        assert tracer.is_drift_file(drift_key(hashed, cg))
        assert not tracer.is_drift_file(drift_key(hashed, other_cg))
        assert not tracer.is_drift_file(drift_key(image_own, cg))
        enforcer.note_file(fresh, SHA_B)
        assert tracer.is_drift_file(drift_key(fresh, cg)) and not tracer.is_drift_file(drift_key(fresh, other_cg))
        enforcer.note_file(image_own, "c3" * 32)
        assert not tracer.is_drift_file(drift_key(image_own, cg))
        # A cgroup of the container seen later gets the files hashed so far.
        enforcer.note_container(later_cg, Attribution("kubelet-cgroupfs", "containerd", "a" * 64, pod))
        assert tracer.is_drift_file(drift_key(hashed, later_cg))
        # The finding behind SHA_B resolved: its file is out of the map, SHA_A's stays; the cgroup not in the
        # fresh walk is forgotten with its entries until it is seen again.
        enforcer.apply(policy("r2", [SHA_A]))
        assert not tracer.is_drift_file(drift_key(fresh, cg))
        assert tracer.is_drift_file(drift_key(hashed, cg))
        assert not tracer.is_drift_file(drift_key(hashed, later_cg))
        enforcer.apply(NodeRuntimePolicy(revision="r3", node_name="node-a", generated_at=T0))
        assert not tracer.is_drift_file(drift_key(hashed, cg))
        assert enforcer.entries() == {}


@pytest.mark.skipif(bpf_unavailable() is not None, reason=str(bpf_unavailable()))
def test_a_full_drift_map_is_said_once_and_leaves_the_drain_running(tmp_path, caplog) -> None:
    from vigil.sensor.enforcer import Enforcer
    from vigil.sensor.loader import ProcessTracer

    pod = "0b7f2a4e-1111-4222-8333-444455556666"
    cg = os.stat(_cgroup_tree(tmp_path, pod, "a" * 64)).st_ino
    policy = NodeRuntimePolicy(
        revision="r1",
        node_name="node-a",
        generated_at=T0,
        containers=[ContainerPrevention(container_id=CID, rules={"drift": "audit"}, drift_sha256=[SHA_A])],
    )
    with ProcessTracer(activities=False, exec_aggregation=False) as tracer:
        enforcer = Enforcer(tracer, tmp_path)
        enforcer.apply(policy)
        for i in range(65_536):  # the map's size, filled with identities no file has
            tracer.drift_file(drift_key(FileIdentity(os.makedev(0, 1), 10_000_000 + i, 0, 0), 1))
        caplog.set_level("ERROR", logger="vigil.sensor.enforcer")
        enforcer.note_file(FileIdentity(os.makedev(0, 0x2A), 9001, 1000, 1), SHA_A)
        enforcer.note_file(FileIdentity(os.makedev(0, 0x2A), 9002, 1000, 1), SHA_A)
        assert not tracer.is_drift_file(drift_key(FileIdentity(os.makedev(0, 0x2A), 9001, 1000, 1), cg))
    refused = [r.getMessage() for r in caplog.records if "drift by sha256" in r.getMessage()]
    assert len(refused) == 1
    assert refused[0].startswith(
        "runtime prevention: drift by sha256 not in force for every file: cannot add a file to the in-kernel drift "
        "map: Argument list too long"
    )


def test_only_a_containers_own_cgroup_is_offered_to_the_enforcer(tmp_path) -> None:
    from vigil.sensor.cgroups import CgroupResolver
    from vigil.sensor.hashing import FileHasher
    from vigil.sensor.pipeline import EventPipeline

    pod = "0b7f2a4e-1111-4222-8333-444455556666"
    container = _cgroup_tree(tmp_path, pod, "a" * 64)
    pipeline = EventPipeline(CgroupResolver(root=tmp_path), FileHasher(), on_container=lambda *_: None)
    theirs = Attribution("kubelet-cgroupfs", "containerd", "a" * 64, pod)
    assert pipeline._own_cgroup(os.stat(container).st_ino, theirs)
    # A runtime that joined only the v1 hierarchies leaves the v2 id at a shared parent.
    assert not pipeline._own_cgroup(os.stat(tmp_path / "system.slice" / "containerd.service").st_ino, theirs)
    assert not pipeline._own_cgroup(os.stat(container.parent).st_ino, theirs)


def test_policy_file_reload_keeps_the_last_good_policy_and_reports_a_bad_one(tmp_path) -> None:
    import threading
    import time

    from vigil.sensor.policy_source import PolicyFile

    applied: list[str] = []
    errors: list[str] = []
    path = tmp_path / "policy.json"
    path.write_text(_policy(drift="enforce").model_dump_json())
    source = PolicyFile(path, "node-a", lambda p: applied.append(p.revision), errors.append, interval_s=0.05)
    assert source.load().revision == "r1"
    stop = threading.Event()
    source.start(stop)
    try:
        path.write_text("{not json")
        deadline = time.monotonic() + 5
        while not errors and time.monotonic() < deadline:
            time.sleep(0.02)
        bad = NodeRuntimePolicy(revision="r2", node_name="node-a", generated_at=T0).model_dump_json()
        path.write_text(bad)
        while applied[-1] != "r2" and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        stop.set()
    assert applied == ["r1", "r2"]
    assert errors[0].startswith(f"runtime policy {path} is not a NodeRuntimePolicy: (document): Invalid JSON")
    assert errors[0].endswith("; still enforcing the policy loaded before")


def test_the_poller_names_the_services_refusal(live_service) -> None:
    import httpx

    from vigil.sensor.policy_source import PolicyPoller

    cluster_id, _ = live_service.register("poll-units")
    admin = {"Authorization": f"Bearer {live_service.admin_token}"}
    enrolment = httpx.post(f"{live_service.url}/api/v1/clusters/{cluster_id}/sensor-enrolment", json={}, headers=admin)
    sensor = httpx.post(
        f"{live_service.url}/api/v1/clusters/{cluster_id}/sensors",
        json={"node": "node-a"},
        headers={"Authorization": f"Bearer {enrolment.json()['credential']}"},
    ).json()["credential"]
    own = PolicyPoller(live_service.url, sensor, "node-a", lambda p: None, lambda e: None)
    got = own.poll_once(wait_s=0)
    assert got is not None and got.node_name == "node-a" and got.containers == [] and own.revision == got.revision
    assert own.poll_once(wait_s=0) is None  # the same revision again: nothing new to apply
    other = PolicyPoller(live_service.url, sensor, "node-b", lambda p: None, lambda e: None)
    with pytest.raises(PolicyError) as refused:
        other.poll_once(wait_s=0)
    assert str(refused.value).startswith("the service answered the runtime policy request with HTTP 403: ")
    assert "this sensor credential is scoped to node node-a; it cannot read node node-b's runtime policy" in str(
        refused.value
    )
    own.close()
    other.close()


def test_processes_running_before_the_sensor_are_workloads_unless_named_as_runcs_init(tmp_path) -> None:
    from vigil.sensor.loader import running_workloads

    ticks = 100 // os.sysconf("SC_CLK_TCK")

    def process(pid: str, comm: str, starttime: int, ns: str) -> None:
        d = tmp_path / pid
        (d / "ns").mkdir(parents=True)
        (tmp_path / ns).touch(exist_ok=True)
        (d / "ns" / "mnt").hardlink_to(tmp_path / ns)
        fields = ["S"] + ["0"] * 18 + [str(starttime)] + ["0"] * 30
        (d / "stat").write_text(f"{pid} ({comm}) {' '.join(fields)}\n")

    process("1", "systemd", 5, "host-ns")
    process("200", "sleep", 1234, "container-ns")
    process("201", "runc:[2:INIT]", 1300, "container-ns")
    process("202", "a) (b", 1400, "container-ns")  # parentheses in a name do not move the fields
    (tmp_path / "self").symlink_to("200")
    (tmp_path / "300").mkdir()  # gone between listing and reading
    host = os.stat(tmp_path / "host-ns").st_ino & 0xFFFFFFFF
    assert sorted(running_workloads(host, tmp_path)) == [(200, 1234 * ticks), (202, 1400 * ticks)]
