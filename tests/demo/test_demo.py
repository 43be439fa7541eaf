"""`vigil demo` runs the real pipeline and every finding it shows is computed by it.

What the demo is expected to show, by workload of its sample cluster:
- shop/api: its tag was pushed again since (tag_moved) and 2.1 ships a malicious npm package
  (malicious_package);
- shop/worker: runs a build that was never pushed (digest_mismatch);
- batch/report: its manifest was deleted from the registry (artifact_missing);
- edge/miner: comes from a registry that is not trusted (untrusted_registry);
- shop/web: ships Jinja2 2.10, and shop/toolbox ships busybox 1.35.0-r29, each with a demo
  advisory (vulnerable_package, 2).
Where the machine allows the runtime part (root, BPF, containerd, ctr, runc, busybox-static;
this machine does, so it must run here), the toolbox pod's container really runs in a private
containerd, traced by `vigil sensor`, and adds:
- busybox (the entry point's shell, sleep, ls) executed: running_vulnerability, 1;
- a binary copied into the container and run: runtime_drift, 1;
- a copy of busybox run from /dev/shm (high) and `ctr task exec ... sh -c id` (medium):
  suspicious_exec, 2.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import orjson
import pytest

from vigil.devtools.demo import runtime_unavailable
from vigil.devtools.net import free_port
from vigil.devtools.registry_server import find_registry_binary

STATIC = {
    "tag_moved": 1,
    "digest_mismatch": 1,
    "artifact_missing": 1,
    "untrusted_registry": 1,
    "vulnerable_package": 2,
    "malicious_package": 1,
}
RUNTIME = {"running_vulnerability": 1, "runtime_drift": 1, "suspicious_exec": 2}

pytestmark = pytest.mark.skipif(
    find_registry_binary() is None, reason="docker-registry binary missing (apt-get install docker-registry)"
)


def run_demo(work: Path, env: dict[str, str] | None = None) -> tuple[dict, int]:
    port = free_port()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "vigil.cli",
            "demo",
            "--port",
            str(port),
            "--work-dir",
            str(work),
            "--exit-when-ready",
            "--wait",
            "150",
            "-o",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return orjson.loads(proc.stdout.strip().splitlines()[-1]), port


def open_findings(summary: dict, type_: str) -> list[dict]:
    resp = httpx.get(
        f"{summary['url']}/api/v1/findings",
        params={"type": type_, "status": "open"},
        headers={"Authorization": f"Bearer {summary['token']}"},
    )
    resp.raise_for_status()
    return resp.json()["items"]


def processes_mentioning(text: str) -> list[str]:
    out = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # exited meanwhile
        if text in argv:
            out.append(argv)
    return out


@pytest.mark.skipif(runtime_unavailable() is not None, reason=f"runtime part cannot run here: {runtime_unavailable()}")
def test_demo_computes_every_finding_type_with_the_runtime_part(tmp_path):
    work = tmp_path / "demo"
    summary, port = run_demo(work)
    runtime = summary["runtime"]
    assert (runtime["ran"], runtime["reason"]) == (True, None)
    assert summary["findings"] == {**STATIC, **RUNTIME}
    assert summary["token"].startswith("vgl_u_")
    # The demo stopped its parts: the service's port is free again; containerd, its shims and
    # the sensor are gone (the sensor stopped on SIGTERM, with its final words); the toolbox
    # pod's cgroups are removed from every hierarchy.
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
    assert processes_mentioning(str(work)) == []
    assert processes_mentioning(runtime["container_id"].removeprefix("containerd://")) == []
    assert "vigil sensor: final counters" in (work / "runtime" / "sensor.log").read_text()
    assert list(Path("/sys/fs/cgroup").glob(f"**/pod{runtime['pod_uid']}")) == []
    log = (work / "vigil.log").read_text()
    assert summary["token"] not in log


def test_demo_without_the_runtime_part_says_why_and_shows_the_rest(tmp_path):
    # Only docker-registry on PATH: containerd, ctr and runc are "missing".
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "docker-registry").symlink_to(find_registry_binary())
    env = {**os.environ, "PATH": str(bin_dir)}
    summary, _ = run_demo(tmp_path / "demo", env)
    assert summary["runtime"]["ran"] is False
    if os.geteuid() == 0:
        assert (
            summary["runtime"]["reason"]
            == "missing containerd, ctr, runc (apt-get install containerd runc busybox-static)"
        )
    assert summary["findings"] == STATIC
    assert not (tmp_path / "demo" / "runtime").exists()
