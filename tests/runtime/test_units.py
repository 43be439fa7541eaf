"""Pure runtime analysis: path resolution, each rule, the evaluation of records, the risk formula."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from vigil.service.analysis.runtime.evaluate import (
    ImageView,
    dedup_key,
    evaluate,
    raise_severity,
)
from vigil.service.analysis.runtime.model import (
    ContainerProcesses,
    ExecRecord,
    PackageRef,
    Sample,
    VulnerabilityRef,
    Workload,
)
from vigil.service.analysis.runtime.paths import ImageFileSystem, owned_paths
from vigil.service.analysis.runtime.risk import (
    BlastRadius,
    Exposure,
    finding_risk,
    pod_exposure,
    rollup,
)
from vigil.service.analysis.runtime.rules import RULES, AllowEntry, check_allow_entry
from vigil.service.store.runtime_labels import package_identity

T0 = datetime(2026, 1, 1, tzinfo=UTC)
LS, BB, NEW = "a" * 64, "b" * 64, "c" * 64

# A usrmerged image: /bin -> usr/bin; busybox applets as symlinks; a package listing /bin paths.
FS = ImageFileSystem(
    files={"/usr/bin/ls": LS, "/usr/bin/busybox": BB, "/usr/lib/libz.so.1.3": "d" * 64, "/etc/passwd": "e" * 64},
    symlinks={
        "/bin": "usr/bin",
        "/usr/bin/sh": "busybox",
        "/usr/bin/loop1": "loop2",
        "/usr/bin/loop2": "/usr/bin/loop1",
        "/lib": "/usr/lib",
        "/usr/lib/libz.so.1": "libz.so.1.3",
        "/usr/bin/up": "../bin/ls",
    },
)
WL = Workload(
    "c1", "prod", "shop", "Deployment", "web", "web-1", "app", 7, "reg/web:1", "sha256:" + "f" * 64, {"team": "a"}
)


def sample(pid=100, ppid=1, argv=("/bin/ls",), filename="/bin/ls", t=0) -> Sample:
    return Sample(T0 + timedelta(seconds=t), pid, ppid, 0, argv[0].rsplit("/", 1)[-1][:15], filename, tuple(argv))


def record(path, sha, kind="executable", samples=None) -> ExecRecord:
    return ExecRecord(
        1,
        "c1",
        "n1",
        "containerd://x",
        None,
        kind,
        path,
        sha,
        T0,
        T0,
        1,
        tuple(samples or [sample(filename=path, argv=(path,))]),
    )


INIT = ContainerProcesses.from_samples(
    [sample(pid=10, ppid=5, argv=("/bin/sh", "/app/run.sh"), filename="/app/run.sh", t=0)]
)


@pytest.mark.parametrize(
    "path,real",
    [
        ("/bin/ls", "/usr/bin/ls"),  # usrmerge parent
        ("/usr/bin/ls", "/usr/bin/ls"),
        ("/bin/sh", "/usr/bin/busybox"),  # symlinked parent, then a relative symlink
        ("/lib/libz.so.1", "/usr/lib/libz.so.1.3"),  # absolute then relative
        ("/usr/bin/up", "/usr/bin/ls"),  # a target with ..
        ("/bin/../bin/./ls", "/usr/bin/ls"),
        ("/usr/bin/loop1", None),  # a symlink loop ends (ELOOP), not hangs
        ("/tmp/x", None),
        ("/usr/bin", None),  # a directory is not a file
        ("ls", None),  # relative: cannot be placed
    ],
)
def test_resolve_follows_symlinks_in_every_component(path, real) -> None:
    assert FS.resolve(path) == real


def test_package_files_are_owned_at_their_real_paths() -> None:
    assert owned_paths(FS, ["/bin/ls", "bin/sh", "/lib/libz.so.1", "/opt/gone"]) == {
        "/usr/bin/ls",
        "/usr/bin/busybox",
        "/usr/lib/libz.so.1.3",
        "/opt/gone",
    }


def test_image_binary_with_its_bytes_yields_nothing() -> None:
    view = ImageView.build(WL.digest, FS)
    assert evaluate(record("/bin/ls", LS), WL, view, INIT).detections == []
    assert (
        evaluate(
            record("/bin/sh", BB, samples=[sample(pid=10, ppid=5, argv=("/bin/sh",), filename="/bin/sh")]),
            WL,
            view,
            INIT,
        ).detections
        == []
    )


def test_new_file_is_runtime_drift_with_its_hash() -> None:
    (d,) = evaluate(record("/app/tool", NEW), WL, ImageView.build(WL.digest, FS), INIT).detections
    assert (d.type, d.severity, d.key) == ("runtime_drift", "high", f"/app/tool|{NEW}")
    assert d.evidence["sha256"] == NEW and d.evidence["in_image"] == {"path": False, "sha256": False}
    assert d.evidence["process"]["argv"] == ["/app/tool"] and d.evidence["process"]["container"]["pod"] == "web-1"
    assert d.subject == f"/app/tool (sha256:{NEW[:12]}) is not in the image"


def test_copy_of_an_image_file_elsewhere_is_not_drift() -> None:
    assert evaluate(record("/opt/ls-copy", LS), WL, ImageView.build(WL.digest, FS), INIT).detections == []


def test_image_path_with_other_bytes_is_tampered_with_both_hashes() -> None:
    (d,) = evaluate(record("/bin/ls", NEW), WL, ImageView.build(WL.digest, FS), INIT).detections
    assert (d.type, d.severity) == ("tampered_binary", "critical")
    assert (d.evidence["expected_sha256"], d.evidence["actual_sha256"], d.evidence["image_path"]) == (
        LS,
        NEW,
        "/usr/bin/ls",
    )


def test_unhashed_file_is_reported_unjudged_not_guessed() -> None:
    result = evaluate(record("/app/tool", None), WL, ImageView.build(WL.digest, FS), INIT)
    assert result.detections == []
    assert (
        result.unjudged
        == "executable /app/tool: the sensor could not read the file, so it cannot be compared with the image"
    )


def test_rule_table_ids_and_severities() -> None:
    assert [(r.id, r.severity, r.mitre, r.finding) for r in RULES] == [
        ("shell-in-exec-session", "medium", "T1609", "suspicious_exec"),
        ("exec-from-temp-dir", "high", "T1105", "suspicious_exec"),
        ("exec-from-memfd-or-deleted", "high", "T1620", "suspicious_exec"),
        ("executable-dropped", "high", "T1105", "file_tampering"),
        ("image-file-modified", "high", "T1554", "file_tampering"),
        ("account-file-modified", "high", "T1098", "file_tampering"),
        ("credential-file-read", "high", "T1003.008", "sensitive_file_read"),
        ("private-key-read", "high", "T1552.004", "sensitive_file_read"),
        ("service-account-token-read", "high", "T1528", "sensitive_file_read"),
        ("process-environ-read", "high", "T1552.001", "sensitive_file_read"),
        ("kernel-control-write", "critical", "T1611", "container_escape_attempt"),
        ("host-mount", "critical", "T1611", "container_escape_attempt"),
        ("namespace-change", "critical", "T1611", "container_escape_attempt"),
        ("pivot-root", "critical", "T1611", "container_escape_attempt"),
        ("ptrace-attach", "high", "T1055.008", "ptrace_attach"),
        ("bpf-program-load", "high", "T1014", "kernel_activity"),
        ("kernel-module-load", "high", "T1547.006", "kernel_activity"),
    ]
    assert all(r.description for r in RULES)


def test_shell_whose_parent_is_outside_the_container_is_an_exec_session() -> None:
    procs = ContainerProcesses.from_samples([sample(pid=10, ppid=5, t=0), sample(pid=11, ppid=10, t=1)])
    exec_sh = record(
        "/bin/sh", BB, samples=[sample(pid=50, ppid=49, argv=("/bin/sh", "-c", "id"), filename="/bin/sh", t=2)]
    )
    (d,) = evaluate(exec_sh, WL, ImageView.build(WL.digest, FS), procs).detections
    assert (d.type, d.severity, d.evidence["rule"]["id"]) == ("suspicious_exec", "medium", "shell-in-exec-session")
    assert d.evidence["trigger"]["ppid"] == 49 and d.evidence["trigger"]["argv"] == ["/bin/sh", "-c", "id"]


@pytest.mark.parametrize(
    "s",
    [
        sample(pid=10, ppid=5, argv=("/bin/sh", "/app/run.sh"), filename="/bin/sh"),  # the container's entry point
        sample(pid=12, ppid=10, argv=("/bin/sh", "-c", "ls"), filename="/bin/sh"),  # started by a container process
    ],
)
def test_shells_started_inside_the_container_are_not_exec_sessions(s) -> None:
    procs = ContainerProcesses.from_samples([sample(pid=10, ppid=5, t=0)])
    assert evaluate(record("/bin/sh", BB, samples=[s]), WL, ImageView.build(WL.digest, FS), procs).detections == []


def test_non_shell_from_an_exec_session_is_not_suspicious() -> None:
    procs = ContainerProcesses.from_samples([sample(pid=10, ppid=5, t=0)])
    assert (
        evaluate(
            record("/bin/ls", LS, samples=[sample(pid=70, ppid=69)]), WL, ImageView.build(WL.digest, FS), procs
        ).detections
        == []
    )


@pytest.mark.parametrize("argv", [("-sh",), ("busybox", "sh"), ("/bin/bash", "-i")])
def test_shells_are_recognised_by_argv_too(argv) -> None:
    procs = ContainerProcesses.from_samples([sample(pid=10, ppid=5, t=0)])
    r = record("/usr/bin/busybox", BB, samples=[sample(pid=80, ppid=79, argv=argv, filename="/usr/bin/busybox")])
    assert [d.evidence["rule"]["id"] for d in evaluate(r, WL, ImageView.build(WL.digest, FS), procs).detections] == [
        "shell-in-exec-session"
    ]


@pytest.mark.parametrize("path", ["/tmp/x", "/var/tmp/a/b", "/dev/shm/busybox", "/run/shm/y"])
def test_code_from_scratch_dirs_is_high(path) -> None:
    found = evaluate(
        record(path, BB), WL, ImageView.build(WL.digest, FS), INIT
    ).detections  # a copy of busybox: no drift
    assert [(d.type, d.severity, d.evidence["rule"]["id"]) for d in found] == [
        ("suspicious_exec", "high", "exec-from-temp-dir")
    ]


def test_library_from_scratch_dir_is_flagged_and_drift_too() -> None:
    found = evaluate(
        record("/dev/shm/evil.so", NEW, kind="library"), WL, ImageView.build(WL.digest, FS), INIT
    ).detections
    assert sorted((d.type, d.severity) for d in found) == [("runtime_drift", "high"), ("suspicious_exec", "high")]


@pytest.mark.parametrize(
    "path", ["/memfd:payload (deleted)", "/dev/fd/3", "/proc/self/fd/7", "/proc/1234/fd/4", "/app/gone (deleted)"]
)
def test_memfd_and_deleted_files_are_high(path) -> None:
    found = evaluate(record(path, NEW), WL, ImageView.build(WL.digest, FS), INIT).detections
    assert ("suspicious_exec", "high", "exec-from-memfd-or-deleted") in [
        (d.type, d.severity, d.evidence["rule"]["id"]) for d in found if d.type == "suspicious_exec"
    ]


@pytest.mark.parametrize(
    "entry,silenced",
    [
        (AllowEntry(1, "exec-from-temp-dir", workload="web"), True),
        (AllowEntry(1, "*", namespace="shop"), True),
        (AllowEntry(1, "exec-from-temp-dir", labels={"team": "a"}), True),
        (AllowEntry(1, "exec-from-temp-dir", cluster="prod"), True),  # by cluster name
        (AllowEntry(1, "exec-from-temp-dir", labels={"team": "b"}), False),
        (AllowEntry(1, "exec-from-temp-dir", workload="api"), False),
        (AllowEntry(1, "shell-in-exec-session", workload="web"), False),  # another rule
    ],
)
def test_allow_list_silences_only_matching_workloads_and_rules(entry, silenced) -> None:
    result = evaluate(record("/tmp/x", BB), WL, ImageView.build(WL.digest, FS), INIT, [entry])
    assert (result.detections == []) is silenced
    assert (result.silenced == [("exec-from-temp-dir", entry)]) is silenced


def test_allow_entry_with_unknown_rule_is_refused() -> None:
    with pytest.raises(ValueError, match="rule 'exec-from-tmp' is not one of \\*, shell-in-exec-session"):
        check_allow_entry("exec-from-tmp", {})


PKGS = [
    (PackageRef(1, "deb", "coreutils", "9.1-1", "pkg:deb/debian/coreutils@9.1-1"), ["/bin/ls"]),
    (PackageRef(2, "deb", "zlib1g", "1:1.2.13", "pkg:deb/debian/zlib1g@1:1.2.13"), ["/lib/libz.so.1"]),
]


def vuln(pkg, vid, sev) -> VulnerabilityRef:
    return VulnerabilityRef(pkg, vid, vid, (vid,), (f"CVE-{vid}",), sev, 7.5, ("9.9",), False, "a bug")


def test_executed_package_file_makes_its_vulnerabilities_running_raised_one_level() -> None:
    view = ImageView.build(
        WL.digest, FS, PKGS, [vuln(1, "DSA-1", "high"), vuln(1, "DSA-2", "critical"), vuln(2, "DSA-3", "medium")]
    )
    found = evaluate(record("/bin/ls", LS, samples=[sample(pid=70, ppid=10)]), WL, view, INIT).detections
    assert [(d.type, d.severity, d.subject) for d in found] == [
        ("running_vulnerability", "critical", "coreutils 9.1-1 (DSA-1) running"),
        ("running_vulnerability", "critical", "coreutils 9.1-1 (DSA-2) running"),
    ]
    ev = found[0].evidence
    assert ev["severity_raised_from"] == "high" and ev["file"] == {
        "path": "/bin/ls",
        "image_path": "/usr/bin/ls",
        "sha256": LS,
        "kind": "executable",
    }
    assert ev["process"]["pid"] == 70 and ev["package"]["name"] == "coreutils"
    assert package_identity(ev) == ("coreutils", "9.1-1", frozenset({"DSA-1", "CVE-DSA-1"}))


def test_mapped_library_makes_its_package_running_and_tampered_files_do_not() -> None:
    view = ImageView.build(WL.digest, FS, PKGS, [vuln(2, "DSA-3", "medium")])
    found = evaluate(record("/usr/lib/libz.so.1.3", "d" * 64, kind="library"), WL, view, INIT).detections
    assert [(d.type, d.severity) for d in found] == [("running_vulnerability", "high")]
    tampered = evaluate(
        record("/bin/ls", NEW), WL, ImageView.build(WL.digest, FS, PKGS, [vuln(1, "DSA-1", "low")]), INIT
    ).detections
    assert [d.type for d in tampered] == ["tampered_binary"]


@pytest.mark.parametrize(
    "level,raised",
    [("low", "medium"), ("medium", "high"), ("high", "critical"), ("critical", "critical"), ("unknown", "medium")],
)
def test_severity_raised_one_level(level, raised) -> None:
    assert raise_severity(level) == raised


def test_dedup_key_is_per_workload_image_subject_and_bounded() -> None:
    (d,) = evaluate(record("/app/tool", NEW), WL, ImageView.build(WL.digest, FS), INIT).detections
    assert dedup_key(d, WL) == f"rt|runtime_drift|c1|shop|Deployment|web|7|/app/tool|{NEW}"
    (long,) = evaluate(record("/app/" + "x" * 3000, NEW), WL, ImageView.build(WL.digest, FS), INIT).detections
    assert len(dedup_key(long, WL)) < 100 and dedup_key(long, WL).startswith("rt|runtime_drift|sha256:")


# -- risk -----------------------------------------------------------------------------------------


def test_risk_parts_add_up_and_are_shown() -> None:
    exposure = pod_exposure(True, True, False, None, None, ["NET_ADMIN", "SYS_PTRACE"])
    risk = finding_risk("high", "runtime_drift", None, exposure, BlastRadius(workloads=3, clusters=2))
    p = risk["parts"]
    assert set(p) == {"severity", "runtime", "exposure", "blast_radius"}
    assert p["severity"] == {"points": 30, "detail": "high"}
    assert p["runtime"] == {"points": 25, "detail": "observed at runtime"}
    # 15 privileged + 5 hostPID + 5 root + 2 per capability = 29, capped at 25
    assert p["exposure"] == {
        "points": 25,
        "detail": ["privileged", "host_pid", "root", "cap:NET_ADMIN", "cap:SYS_PTRACE"],
    }
    # 2 per workload beyond the first + 5 per cluster beyond the first
    assert p["blast_radius"] == {"points": 9, "detail": {"workloads": 3, "clusters": 2}}
    assert risk["score"] == 30 + 25 + 25 + 9


@pytest.mark.parametrize(
    "sev,type_,state,expected",
    [
        ("critical", "digest_mismatch", None, 40),
        ("medium", "vulnerable_package", "running", 45),
        ("medium", "vulnerable_package", "not_observed_running", 10),
        ("low", "vulnerable_package", "not_observed_running", 0),  # never below zero
        ("medium", "vulnerable_package", "watching", 20),
        ("info", "suspicious_exec", None, 30),
    ],
)
def test_risk_runtime_evidence(sev, type_, state, expected) -> None:
    assert finding_risk(sev, type_, state, None, BlastRadius(1, 1))["score"] == expected


def test_non_root_pod_has_no_root_exposure_and_score_is_capped() -> None:
    assert pod_exposure(False, False, False, True, None, []) == Exposure()
    assert pod_exposure(False, False, False, None, 1000, []) == Exposure()
    worst = pod_exposure(True, True, True, None, 0, ["A", "B", "C", "D"])
    assert finding_risk("critical", "tampered_binary", None, worst, BlastRadius(50, 9))["score"] == 100


def test_rollup_is_top_plus_a_tenth_of_the_rest() -> None:
    assert rollup([]) == {"score": 0, "parts": {"top": None, "others": {"count": 0, "points": 0}, "open_findings": 0}}
    assert rollup([(1, 40), (2, 90), (3, 60)]) == {
        "score": 100.0,
        "parts": {"top": {"finding_id": 2, "points": 90}, "others": {"count": 2, "points": 10.0}, "open_findings": 3},
    }
    assert rollup([(5, 30), (6, 20)])["score"] == 32.0


def test_a_finding_names_the_process_parents_by_what_they_executed() -> None:
    # python3 (the entry point, started by the runtime's shim, pid 5) ran sh, which ran the dropped file.
    procs = ContainerProcesses.from_samples(
        [
            sample(pid=10, ppid=5, argv=("/usr/bin/python3", "app.py"), filename="/usr/bin/python3", t=0),
            sample(pid=20, ppid=10, argv=("/bin/sh", "-c", "/tmp/x"), filename="/bin/sh", t=1),
            sample(pid=30, ppid=20, argv=("/tmp/x",), filename="/tmp/x", t=2),
        ]
    )
    dropped = record("/tmp/x", NEW, samples=[sample(pid=30, ppid=20, argv=("/tmp/x",), filename="/tmp/x", t=2)])
    detections = evaluate(dropped, WL, ImageView.build(WL.digest, FS), procs).detections
    assert {d.type for d in detections} == {"runtime_drift", "suspicious_exec"}
    for d in detections:
        assert d.evidence["process"]["parent_chain"] == [
            {"pid": 20, "name": "sh"},
            {"pid": 10, "name": "python3"},
            {"pid": 5, "name": None},
        ]


def test_a_parent_chain_stops_at_a_pid_loop_and_at_its_limit() -> None:
    looped = ContainerProcesses.from_samples([sample(pid=2, ppid=3, t=0), sample(pid=3, ppid=2, t=1)])
    assert looped.parent_chain(sample(pid=9, ppid=2)) == [{"pid": 2, "name": "ls"}, {"pid": 3, "name": "ls"}]
    deep = ContainerProcesses.from_samples([sample(pid=p, ppid=p - 1, t=p) for p in range(2, 40)])
    assert len(deep.parent_chain(sample(pid=40, ppid=39))) == 16
