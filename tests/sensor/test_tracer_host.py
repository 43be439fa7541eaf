"""Real eBPF: load the committed object, run processes on this host, read their exact events."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bpf_support import bpf_unavailable, own_cgroup_id  # noqa: E402

from vigil.sensor.cgroups import CgroupResolver  # noqa: E402
from vigil.sensor.events import ExecEvent, ExitEvent, ForkEvent, decode_batch, decode_event  # noqa: E402
from vigil.sensor.hashing import FileHasher  # noqa: E402
from vigil.sensor.loader import ProcessTracer, SensorLoadError, missing_capabilities, preflight  # noqa: E402
from vigil.sensor.pipeline import EventPipeline  # noqa: E402

pytestmark = pytest.mark.skipif(bpf_unavailable() is not None, reason=str(bpf_unavailable()))


def _sha(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def tracer():
    with ProcessTracer(include_host=True, wakeup_bytes=1 << 20) as t:
        yield t


def _events_of(tracer: ProcessTracer, pid: int, want_exit: bool = True, timeout: float = 5.0):
    """Drain until the exit of pid arrived; return (events of pid, all raw records)."""
    got, raws = [], []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        raw = tracer.poll(100)
        raws += raw
        events, errors = decode_batch(raw)
        assert errors == []
        got += [e for e in events if e.proc.tgid == pid]
        if not want_exit or any(isinstance(e, ExitEvent) for e in got):
            break
    return got, raws


def test_exec_fork_exit_of_a_host_process(tracer: ProcessTracer) -> None:
    before = tracer.counters()
    p = subprocess.Popen(["/bin/true", "hello", "two words", ""])
    p.wait()
    events, _ = _events_of(tracer, p.pid)
    kinds = [type(e) for e in events]
    assert kinds == [ForkEvent, ExecEvent, ExitEvent]
    fork, ex, exit_ = events
    assert fork.proc.ppid == os.getpid()
    assert ex.filename == "/bin/true" and ex.interp == "/bin/true"
    assert ex.argv == ["/bin/true", "hello", "two words", ""] and ex.argc == 4
    assert not ex.argv_truncated and not ex.argv_fault
    assert ex.proc.ppid == os.getpid() and ex.proc.pid == p.pid
    assert ex.proc.uid == os.getuid() and ex.proc.gid == os.getgid()
    assert ex.proc.comm == "true"
    assert ex.proc.cgroup_id == own_cgroup_id()
    assert ex.proc.mnt_ns == os.stat("/proc/self/ns/mnt").st_ino
    assert ex.proc.pid_ns == os.stat("/proc/self/ns/pid").st_ino
    st = os.stat("/bin/true")
    assert (ex.file.st_dev, ex.file.ino, ex.file.size, ex.file.mtime_ns) == (
        st.st_dev,
        st.st_ino,
        st.st_size,
        st.st_mtime_ns,
    )
    assert exit_.exit_status == 0 and exit_.exit_signal is None
    assert fork.proc.start_boottime_ns == ex.proc.start_boottime_ns == exit_.proc.start_boottime_ns
    after = tracer.counters()
    assert after["exec"] - before["exec"] >= 1 and after["exit"] - before["exit"] >= 1
    assert after["lost"] == 0


def test_exit_codes_and_signals(tracer: ProcessTracer) -> None:
    p = subprocess.Popen(["/bin/false"])
    p.wait()
    events, _ = _events_of(tracer, p.pid)
    assert [e.exit_status for e in events if isinstance(e, ExitEvent)] == [1]
    p = subprocess.Popen(["/bin/sleep", "30"])
    time.sleep(0.1)
    p.kill()
    p.wait()
    events, _ = _events_of(tracer, p.pid)
    (exit_,) = [e for e in events if isinstance(e, ExitEvent)]
    assert exit_.exit_status is None and exit_.exit_signal == 9


def test_shebang_script_from_tmp(tracer: ProcessTracer, tmp_path: Path) -> None:
    script = tmp_path / "job.sh"
    script.write_text("#!/bin/sh\nexit 3\n")
    script.chmod(0o755)
    p = subprocess.Popen([str(script), "arg one"])
    p.wait()
    events, _ = _events_of(tracer, p.pid)
    (ex,) = [e for e in events if isinstance(e, ExecEvent)]
    assert ex.filename == str(script) and ex.interp == "/bin/sh"
    # The kernel rewrote argv for the interpreter.
    assert ex.argv == ["/bin/sh", str(script), "arg one"]
    assert [e.exit_status for e in events if isinstance(e, ExitEvent)] == [3]


def test_long_argv_is_bounded(tracer: ProcessTracer) -> None:
    args = ["x" * 100] * 20
    p = subprocess.Popen(["/bin/true", *args])
    p.wait()
    events, _ = _events_of(tracer, p.pid)
    (ex,) = [e for e in events if isinstance(e, ExecEvent)]
    assert ex.argc == 21 and ex.argv_truncated
    # 1024 bytes: "/bin/true\0" + 10 whole arguments of 101 bytes + 4 bytes of the 11th
    assert ex.argv == ["/bin/true", *(["x" * 100] * 10), "xxxx"]


def test_pipeline_hashes_binary_script_and_libraries(tracer: ProcessTracer, tmp_path: Path) -> None:
    script = tmp_path / "job.sh"
    script.write_text("#!/bin/sh\nsleep 0.3\n")
    script.chmod(0o755)
    hasher = FileHasher()
    pipeline = EventPipeline(CgroupResolver(), hasher, include_host=True)
    p = subprocess.Popen(["/bin/sleep", "0.5"])
    q = subprocess.Popen(["/bin/sh", str(script)])
    time.sleep(0.1)  # let both map their libraries
    execs = pipeline.resolve(tracer.poll(100)).executions
    p.wait(), q.wait()
    by_pid = {x.event.proc.tgid: x for x in execs}
    sleep_x, sh_x = by_pid[p.pid], by_pid[q.pid]
    assert sleep_x.binary_sha256 == _sha("/bin/sleep")
    assert sleep_x.attribution.is_host
    libc = os.path.realpath("/lib/x86_64-linux-gnu/libc.so.6")
    libs = {lib.path: lib.sha256 for lib in sleep_x.libraries}
    assert libs.get(libc) == _sha(libc), libs
    # `sh script`: the script comes from argv.
    assert sh_x.script_path == str(script) and sh_x.script_sha256 == _sha(str(script))
    assert sh_x.binary_sha256 == _sha("/bin/sh")
    # Each binary is hashed once: a second run of the same binary reads nothing.
    hashed = hasher.hashed
    r = subprocess.Popen(["/bin/sleep", "0"])
    assert r.wait() == 0
    time.sleep(0.05)
    # Only this process's records: other host activity (include_host) may run binaries new to the cache.
    ours = [raw for raw in tracer.poll(100) if decode_event(raw).proc.tgid == r.pid]
    again = [x for x in pipeline.resolve(ours).executions if x.event.filename == "/bin/sleep"]
    assert again and again[0].binary_sha256 == _sha("/bin/sleep")
    assert hasher.hashed == hashed


def test_in_kernel_host_filter() -> None:
    with ProcessTracer(include_host=False) as t:
        before = t.counters()["filtered"]
        t.skip_cgroup(own_cgroup_id())
        p = subprocess.Popen(["/bin/true", "filtered-away"])
        p.wait()
        time.sleep(0.05)
        events, _ = decode_batch(t.poll(100))
        assert [e for e in events if e.proc.tgid == p.pid] == []
        # fork, exec and exit of that process were all counted as filtered
        assert t.counters()["filtered"] - before >= 3


def test_preflight_names_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(
        SensorLoadError, match=r"kernel BTF not found at .*/nope: the kernel must be built with CONFIG_DEBUG_INFO_BTF=y"
    ):
        preflight(btf_path=tmp_path / "nope")
    status = tmp_path / "status"
    status.write_text("Name:\tx\nCapEff:\t0000000000000000\n")
    with pytest.raises(SensorLoadError, match=r"^missing capabilities CAP_BPF, CAP_PERFMON \(or CAP_SYS_ADMIN\)"):
        preflight(btf_path=Path("/sys/kernel/btf/vmlinux"), status_path=status)
    assert missing_capabilities(1 << 21) == []
    assert missing_capabilities((1 << 39) | (1 << 38)) == []
    assert missing_capabilities(1 << 39) == ["CAP_PERFMON"]


def test_missing_object_is_named(tmp_path: Path) -> None:
    with pytest.raises(SensorLoadError, match=r"BPF object .*/missing.o not found: run scripts/build-bpf"):
        ProcessTracer(tmp_path / "missing.o")


def test_exec_only_queues_execs_and_still_counts_forks_and_exits() -> None:
    with ProcessTracer(include_host=True, exec_only=True) as t:
        before = t.counters()
        p = subprocess.Popen(["/bin/true", "exec-only"])
        p.wait()
        events, _ = _events_of(t, p.pid, want_exit=False)
        deadline = time.monotonic() + 2
        while not events and time.monotonic() < deadline:
            events, _ = _events_of(t, p.pid, want_exit=False)
        after = t.counters()
    assert [type(e).__name__ for e in events] == ["ExecEvent"]
    assert events[0].argv == ["/bin/true", "exec-only"]
    assert after["fork"] > before["fork"] and after["exit"] > before["exit"]
