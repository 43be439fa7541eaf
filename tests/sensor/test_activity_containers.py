"""File access and kernel activity in real containers (containerd + runc), traced by the real sensor.

Each action inside the container gives exactly its activity record (or exec record); the
same actions on the host give nothing while host tracing is off.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bpf_support import bpf_unavailable
from containerd_harness import IMAGE_NAME, busybox_sha256, missing_tools, start_containerd, write_busybox_image
from ingest_server import IngestServer
from sensor_e2e import wait_for
from test_containers import _cleanup_pod_cgroups

from vigil.sensor.agent import AgentSettings, SensorAgent
from vigil.sensor.cgroups import CgroupResolver
from vigil.sensor.hashing import FileHasher
from vigil.sensor.loader import ProcessTracer
from vigil.sensor.pipeline import EventPipeline
from vigil.sensor.shipper import Shipper
from vigil.sensor.spool import Spool

_skip = bpf_unavailable() or (f"missing {', '.join(missing_tools())}" if missing_tools() else None)
pytestmark = pytest.mark.skipif(_skip is not None, reason=str(_skip))
TOKEN = "cluster-cred-1"

# Attaches to a child of its own (the child prints nothing and sleeps), then detaches.
PTRACE_HELPER = r"""
#include <signal.h>
#include <stdio.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <unistd.h>
int main(void) {
    pid_t child = fork();
    if (child == 0) { sleep(3); return 0; }
    if (ptrace(PTRACE_ATTACH, child, 0, 0) != 0) { perror("ptrace"); return 1; }
    waitpid(child, 0, 0);
    ptrace(PTRACE_DETACH, child, 0, 0);
    printf("%d\n", child);
    return 0;
}
"""
# Copies a program into a memfd and executes it from there.
MEMFD_HELPER = r"""
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>
int main(int argc, char **argv) {
    int src = open(argv[1], O_RDONLY);
    struct stat st;
    if (src < 0 || fstat(src, &st) != 0) { perror("open"); return 1; }
    int fd = memfd_create("vigil-test", 0);
    if (fd < 0 || sendfile(fd, src, 0, st.st_size) != st.st_size) { perror("memfd"); return 1; }
    char *args[] = {"sleep", "1", 0};
    char *env[] = {0};
    fexecve(fd, args, env);
    perror("fexecve");
    return 1;
}
"""
CACHE = Path(os.environ.get("VIGIL_TEST_CACHE", "/tmp/vigil-test-cache")) / "helpers"


def _static_helper(name: str, source: str) -> Path:
    """A static binary built with gcc, cached by its source's digest."""
    out = CACHE / f"{name}-{hashlib.sha256(source.encode()).hexdigest()[:16]}"
    if not out.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        src = out.with_suffix(".c")
        src.write_text(source)
        tmp = out.with_suffix(".tmp")
        subprocess.run(["gcc", "-static", "-O2", "-o", str(tmp), str(src)], check=True, capture_output=True)
        tmp.rename(out)
    return out


@pytest.fixture(scope="module")
def helpers(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("helpers")
    for name, source in (("ptracer", PTRACE_HELPER), ("memfdexec", MEMFD_HELPER)):
        (d / name).write_bytes(_static_helper(name, source).read_bytes())
        (d / name).chmod(0o755)
    return d


@pytest.fixture(scope="module")
def containerd(tmp_path_factory):
    base = tmp_path_factory.mktemp("ctd")
    c = start_containerd(base / "c")
    c.ctr("images", "import", str(write_busybox_image(base)))
    yield c
    c.stop()


SA = "/var/run/secrets/kubernetes.io/serviceaccount"
SETUP = (
    "/bin/busybox mkdir -p /usr/local/bin /root " + SA + " && echo 'root:x:0:0::/root:/bin/sh' > /etc/passwd"
    " && echo 'root:*:1:0:99999:7:::' > /etc/shadow && echo token > " + SA + "/token"
)
# (argv inside the container); the same, adapted, on the host.
ACTIONS: list[tuple[str, ...]] = [
    ("/bin/sh", "-c", "/bin/busybox cp /bin/busybox /usr/local/bin/tool && /bin/busybox chmod +x /usr/local/bin/tool"),
    ("/bin/sh", "-c", "echo 'root:x:0:0::/root:/bin/sh' > /etc/passwd"),
    ("/bin/cat", "/etc/shadow"),
    ("/bin/cat", SA + "/token"),
    ("/bin/sh", "-c", "echo '|/tmp/x' > /proc/sys/kernel/core_pattern"),
    ("/bin/busybox", "unshare", "-m", "/bin/true"),
    ("/helpers/ptracer",),
    ("/helpers/memfdexec", "/bin/busybox"),
    ("/usr/local/bin/tool", "true"),
]


def _host_actions(helpers: Path, tmp: Path) -> None:
    sh = lambda cmd: subprocess.run(["/bin/sh", "-c", cmd], capture_output=True)  # noqa: E731
    sh("cat /etc/shadow > /dev/null; unshare -m true; echo x > /proc/sys/kernel/core_pattern_not_there")
    sh(f"cp /bin/true {tmp}/t && chmod +x {tmp}/t")
    subprocess.run([str(helpers / "ptracer")], capture_output=True)
    subprocess.run([str(helpers / "memfdexec"), "/bin/true"], capture_output=True)


def test_container_file_and_kernel_activity(containerd, helpers: Path, tmp_path: Path) -> None:
    server = IngestServer(token=TOKEN)
    spool = Spool(tmp_path / "spool")
    shipper = Shipper(server.url, TOKEN, spool)
    pod = str(uuid.uuid4())
    cid = uuid.uuid4().hex + uuid.uuid4().hex
    ref = f"containerd://{cid}"
    outputs: list[str] = []
    try:
        containerd.ctr(
            "run",
            "-d",
            "--mount",
            f"type=bind,src={helpers},dst=/helpers,options=rbind:ro",
            "--cgroup",
            f"kubepods/besteffort/pod{pod}/{cid}",
            IMAGE_NAME,
            cid,
            "/bin/sleep",
            "60",
        )
        containerd.ctr("task", "exec", "--exec-id", "setup", cid, "/bin/sh", "-c", SETUP)
        with ProcessTracer(include_host=False) as tracer:
            pipeline = EventPipeline(CgroupResolver(), FileHasher(), skip_cgroup=tracer.skip_cgroup)
            agent = SensorAgent(
                AgentSettings(cluster_id="c1", node_name="node-a", batch_interval_s=60, poll_timeout_ms=50),
                tracer,
                pipeline,
                spool=spool,
                shipper=shipper,
            )
            stop = threading.Event()
            runner = threading.Thread(target=agent.run, args=(stop,))
            runner.start()
            try:
                _host_actions(helpers, tmp_path)
                for i, argv in enumerate(ACTIONS):
                    r = containerd.ctr("task", "exec", "--exec-id", f"a{i}", cid, *argv, check=False)
                    outputs.append(r.stdout)
                wait_for("the sensor to drain", lambda: agent.step(0) == 0)
            finally:
                stop.set()
                runner.join(30)
    finally:
        containerd.ctr("task", "kill", "-s", "9", cid, check=False)
        wait_for("the task to stop", lambda: "RUNNING" not in containerd.ctr("task", "ls", check=False).stdout)
        containerd.ctr("containers", "rm", cid, check=False)
        server.stop()
        shipper.close()
        _cleanup_pod_cgroups(pod)

    activities = [a for b in server.batches for a in b.get("activities", [])]
    records = [r for b in server.batches for r in b["records"]]
    assert [a for a in activities if a["container_id"] is None] == []  # nothing from the host
    assert [r for r in records if r["container_id"] is None] == []
    mine = {(a["kind"], a["target"]): a for a in activities if a["container_id"] == ref}
    child_pid = int(outputs[6].strip())
    ptrace_target = next(k[1] for k in mine if k[0] == "ptrace")
    assert re.fullmatch(r"pid:\d+ comm:ptracer", ptrace_target), ptrace_target
    assert sorted(mine) == sorted(
        [
            ("file_write", "/usr/local/bin/tool"),
            ("file_chmod", "/usr/local/bin/tool"),
            ("file_write", "/etc/passwd"),
            ("file_read", "/etc/shadow"),
            ("file_read", SA + "/token"),
            ("file_write", "/proc/sys/kernel/core_pattern"),
            ("unshare", "CLONE_NEWNS"),
            ("ptrace", ptrace_target),
            ("memfd_create", "memfd:vigil-test"),
        ]
    )
    assert all(a["count"] == 1 and a["pod_uid"] == pod for a in mine.values())
    tool = mine[("file_write", "/usr/local/bin/tool")]
    assert tool["upper_layer"] is True and tool["detail"]["flags"].startswith("O_WRONLY|O_CREAT")
    assert tool["samples"][0]["comm"] == "busybox" and tool["samples"][0]["parents"][0] == "sh"
    assert mine[("file_chmod", "/usr/local/bin/tool")]["detail"] == {"mode": "0755"}
    assert mine[("file_write", "/etc/passwd")]["samples"][0]["result"] >= 0
    shadow = mine[("file_read", "/etc/shadow")]
    assert shadow["samples"][0]["argv"] == ["/bin/cat", "/etc/shadow"] and shadow["upper_layer"] is True
    core = mine[("file_write", "/proc/sys/kernel/core_pattern")]["samples"][0]
    assert core["result"] in (-13, -30)  # EACCES or EROFS: refused, and reported as the attempt
    assert mine[("unshare", "CLONE_NEWNS")]["detail"] == {"flags": "CLONE_NEWNS"}
    assert mine[("ptrace", ptrace_target)]["detail"] == {"request": "PTRACE_ATTACH"}
    assert mine[("ptrace", ptrace_target)]["samples"][0]["result"] == 0 and child_pid > 0
    assert mine[("memfd_create", "memfd:vigil-test")]["detail"] == {"name": "vigil-test", "flags": "0x0"}

    execs = {r["path"]: r for r in records if r["container_id"] == ref}
    memfd = execs["/memfd:vigil-test (deleted)"]
    assert memfd["sha256"] == busybox_sha256() and memfd["samples"][0]["argv"] == ["sleep", "1"]
    assert execs["/usr/local/bin/tool"]["samples"][0]["upper_layer"] is True
    assert execs["/bin/cat"]["samples"][0]["upper_layer"] is False


def test_repeat_execs_and_reads_are_counted_in_the_kernel_and_shipped_exactly(containerd, tmp_path: Path) -> None:
    server = IngestServer(token=TOKEN)
    spool = Spool(tmp_path / "spool")
    shipper = Shipper(server.url, TOKEN, spool)
    pod = str(uuid.uuid4())
    cid = uuid.uuid4().hex + uuid.uuid4().hex
    ref = f"containerd://{cid}"
    loop = "i=0; while [ $i -lt 300 ]; do /bin/true; read x < /etc/shadow; i=$((i+1)); done"
    try:
        containerd.ctr(
            "run", "-d", "--cgroup", f"kubepods/besteffort/pod{pod}/{cid}", IMAGE_NAME, cid, "/bin/sleep", "60"
        )
        containerd.ctr("task", "exec", "--exec-id", "setup", cid, "/bin/sh", "-c", "echo 'root:*:1:::::' > /etc/shadow")
        with ProcessTracer(include_host=False) as tracer:
            pipeline = EventPipeline(CgroupResolver(), FileHasher(), skip_cgroup=tracer.skip_cgroup)
            # Windows of 0.2 s: the loops span several, so repeats are read from both kernel slots.
            agent = SensorAgent(
                AgentSettings(cluster_id="c1", node_name="node-a", batch_interval_s=0.2, poll_timeout_ms=20),
                tracer,
                pipeline,
                spool=spool,
                shipper=shipper,
            )
            stop = threading.Event()
            runner = threading.Thread(target=agent.run, args=(stop,))
            runner.start()
            try:
                for i in range(3):
                    containerd.ctr("task", "exec", "--exec-id", f"l{i}", cid, "/bin/sh", "-c", loop)
                wait_for("the sensor to drain", lambda: agent.step(0) == 0)
            finally:
                stop.set()
                runner.join(30)
            counters = tracer.counters()
    finally:
        containerd.ctr("task", "kill", "-s", "9", cid, check=False)
        wait_for("the task to stop", lambda: "RUNNING" not in containerd.ctr("task", "ls", check=False).stdout)
        containerd.ctr("containers", "rm", cid, check=False)
        server.stop()
        shipper.close()
        _cleanup_pod_cgroups(pod)
    true = [r for b in server.batches for r in b["records"] if r["container_id"] == ref and r["path"] == "/bin/true"]
    assert sum(r["count"] for r in true) == 900
    assert {r["sha256"] for r in true} == {busybox_sha256()}
    assert len(true) >= 2 and all(r["first_seen"] <= r["last_seen"] for r in true)
    # Nearly all were counted in the kernel: only those before user space entered the key were queued.
    assert counters["exec_aggregated"] >= 800, counters
    # The shell's reads of /etc/shadow (no exec: a redirection) likewise, per (container, kind, path).
    reads = [
        a
        for b in server.batches
        for a in b["activities"]
        if a["container_id"] == ref and (a["kind"], a["target"]) == ("file_read", "/etc/shadow")
    ]
    assert sum(a["count"] for a in reads) == 900 and counters["activity_aggregated"] >= 800, counters


def test_sensor_cli_prints_activities_as_json_lines(tmp_path: Path) -> None:
    import json

    from sensor_e2e import VIGIL

    out, err = tmp_path / "out", tmp_path / "err"
    with open(out, "wb") as o, open(err, "wb") as e:
        proc = subprocess.Popen([str(VIGIL), "sensor", "--output", "json", "--include-host"], stdout=o, stderr=e)
    try:

        def printed() -> dict | None:
            subprocess.run(["cat", "/etc/shadow"], stdout=subprocess.DEVNULL, check=True)
            lines = [json.loads(x) for x in out.read_text().splitlines()]
            return next((d for d in lines if d["event"] == "file_read" and d["target"] == "/etc/shadow"), None)

        doc = wait_for("the sensor to print the read of /etc/shadow", printed, timeout=30)
    finally:
        proc.terminate()
        proc.wait(30)
    assert (doc["comm"], doc["exe"], doc["argv"], doc["container_id"]) == (
        "cat",
        "/usr/bin/cat",
        ["cat", "/etc/shadow"],
        None,
    )
    assert doc["result"] >= 0 and doc["parents"] and doc["detail"] == {}
    assert "final counters" in err.read_text()


def test_sensor_without_activity_tracing_prints_execs_and_no_file_access(tmp_path: Path) -> None:
    import json

    from sensor_e2e import VIGIL

    out, err = tmp_path / "out", tmp_path / "err"
    argv = [str(VIGIL), "sensor", "--output", "json", "--include-host", "--no-activity-tracing"]
    with open(out, "wb") as o, open(err, "wb") as e:
        proc = subprocess.Popen(argv, stdout=o, stderr=e)
    try:

        def printed() -> list[dict] | None:
            subprocess.run(["cat", "/etc/shadow"], stdout=subprocess.DEVNULL, check=True)
            lines = [json.loads(x) for x in out.read_text().splitlines()]
            seen = any(d["event"] == "exec" and d["argv"] == ["cat", "/etc/shadow"] for d in lines)
            return lines if seen else None

        lines = wait_for("the sensor to print the exec of cat /etc/shadow", printed, timeout=30)
    finally:
        proc.terminate()
        proc.wait(30)
    # The read of /etc/shadow (a read-watched path) is not traced: no activity of any kind is printed.
    assert [d for d in lines if d["event"] not in ("exec", "exit")] == []
    assert "final counters" in err.read_text()
