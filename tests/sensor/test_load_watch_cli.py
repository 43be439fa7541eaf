"""`vigil sensor --output json --runtime-policy FILE` prints package loads: a real container (containerd +
runc, busybox) reads two package files; the policy's load watch lists the first for this container and the
second for another one, so exactly the first is printed, as a package_load line."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bpf_support import bpf_unavailable
from containerd_harness import IMAGE_NAME, missing_tools, start_containerd, write_busybox_image
from sensor_e2e import VIGIL, wait_for
from test_containers import _cleanup_pod_cgroups

from vigil.wire.prevention import ContainerLoadWatch, NodeRuntimePolicy

_skip = bpf_unavailable() or (f"missing {', '.join(missing_tools())}" if missing_tools() else None)
pytestmark = pytest.mark.skipif(_skip is not None, reason=str(_skip))
DP = "/usr/lib/python3/dist-packages"
SETUP = (
    f"/bin/busybox mkdir -p {DP}/jinja2 {DP}/yaml && echo 'x = 1' > {DP}/jinja2/__init__.py"
    f" && echo 'y = 1' > {DP}/yaml/__init__.py"
)


@pytest.fixture(scope="module")
def containerd(tmp_path_factory):
    base = tmp_path_factory.mktemp("ctd-load")
    c = start_containerd(base / "c")
    c.ctr("images", "import", str(write_busybox_image(base)))
    yield c
    c.stop()


def test_sensor_prints_the_package_loads_of_a_containers_own_load_watch(containerd, tmp_path: Path) -> None:
    pod, cid = str(uuid.uuid4()), uuid.uuid4().hex + uuid.uuid4().hex
    policy = NodeRuntimePolicy(
        revision="load-1",
        node_name="node-load",
        generated_at=datetime(2026, 1, 1, tzinfo=UTC),
        load_watch=[
            ContainerLoadWatch(container_id=f"containerd://{cid}", paths=[f"{DP}/jinja2/"]),
            ContainerLoadWatch(container_id="containerd://" + "e" * 64, paths=[f"{DP}/yaml/"]),
        ],
    )
    (tmp_path / "policy.json").write_text(policy.model_dump_json())
    out, err = tmp_path / "out", tmp_path / "err"
    containerd.ctr("run", "-d", "--cgroup", f"kubepods/besteffort/pod{pod}/{cid}", IMAGE_NAME, cid, "/bin/sleep", "60")
    try:
        containerd.ctr("task", "exec", "--exec-id", "setup", cid, "/bin/sh", "-c", SETUP)
        args = ["sensor", "--output", "json", "--runtime-policy", str(tmp_path / "policy.json")]
        with open(out, "wb") as o, open(err, "wb") as e:
            proc = subprocess.Popen([str(VIGIL), *args, "--node-name", "node-load"], stdout=o, stderr=e)
        try:
            wait_for("the sensor to load the policy", lambda: "load watch of policy load-1" in err.read_text(), 30)
            n = 0

            def printed() -> list[dict] | None:
                nonlocal n
                n += 1
                for top in ("yaml", "jinja2"):
                    containerd.ctr(
                        "task", "exec", "--exec-id", f"r{top}{n}", cid, "/bin/cat", f"{DP}/{top}/__init__.py"
                    )
                lines = [json.loads(x) for x in out.read_text().splitlines()]
                found = [d for d in lines if d.get("target", "").startswith(DP)]
                return found if any(d["event"] == "package_load" for d in found) else None

            found = wait_for("the sensor to print the package load", printed, timeout=30)
        finally:
            proc.terminate()
            proc.wait(30)
    finally:
        containerd.ctr("task", "kill", "-s", "SIGKILL", cid, check=False)
        containerd.ctr("task", "delete", "-f", cid, check=False)
        containerd.ctr("containers", "delete", cid, check=False)
        _cleanup_pod_cgroups(pod)
    assert {(d["event"], d["target"]) for d in found} == {("package_load", f"{DP}/jinja2/__init__.py")}
    doc = found[0]
    assert (doc["comm"], doc["argv"], doc["container_id"]) == (
        "cat",
        ["/bin/cat", f"{DP}/jinja2/__init__.py"],
        f"containerd://{cid}",
    )
