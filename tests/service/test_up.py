"""`vigil up` as a user runs it: a process serving the API, with this host's sensor (root, BTF) and a
kubeconfig's controller as its children, each part saying in one line that it started or why not."""

from __future__ import annotations

import ctypes.util
import hashlib
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from vigil.devtools.kubeapi import KubeAPIServer
from vigil.service.cli.local_parts import (
    KubeTarget,
    PartUnavailable,
    architecture,
    chosen_kubeconfig,
    cluster_name,
    kube_target,
    os_image,
    sensor_blocker,
)
from vigil.service.cli.up import reachable_kube

BPF_OBJECT = Path(__file__).resolve().parents[2] / "src" / "vigil" / "sensor" / "bpf" / "vigil.bpf.o"


def _sensor_unavailable() -> str | None:
    if os.geteuid() != 0:
        return "needs root"
    if not Path("/sys/kernel/btf/vmlinux").exists():
        return "kernel BTF missing"
    if ctypes.util.find_library("bpf") is None:
        return "libbpf.so.1 missing (apt-get install libbpf1)"
    if not BPF_OBJECT.is_file():
        return f"{BPF_OBJECT} missing (scripts/build-bpf)"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what: str, check: Callable[[], Any], timeout: float = 60.0, every: float = 0.25) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


class Up:
    """`vigil up` in its own process, on a free port, its output in files."""

    def __init__(self, work: Path, *args: str, data: Path | None = None) -> None:
        self.work = work
        self.data = data or work / "data"
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.out, self.err = work / "up.out", work / "up.err"
        argv = [sys.executable, "-m", "vigil.cli", "up", "--port", str(self.port), "--data-dir", str(self.data), *args]
        env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "VIGIL_DATA_DIR")}
        with open(self.out, "wb") as out, open(self.err, "wb") as err:
            self.process = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env)
        self.token = ""

    def stdout_lines(self) -> list[str]:
        return self.out.read_text().splitlines()

    def started(self, timeout: float = 60.0) -> Up:
        def answering() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"vigil up exited ({self.process.returncode}): {self.err.read_text()[-2000:]}")
            try:
                return httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for("vigil up to answer /healthz", answering, timeout)
        # The first start writes the admin token to a 0600 file in the data dir; stdout is no terminal here.
        token_file = self.data / "admin-token"
        self.token = token_file.read_text().strip() if token_file.is_file() else ""
        return self

    def get(self, path: str, **params: Any) -> Any:
        resp = httpx.get(f"{self.url}{path}", params=params, headers={"Authorization": f"Bearer {self.token}"})
        resp.raise_for_status()
        return resp.json()

    def cluster_id(self, name: str) -> str | None:
        return next((c["id"] for c in self.get("/api/v1/clusters")["items"] if c["name"] == name), None)

    def children(self) -> list[int]:
        pid = self.process.pid
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                raise
        return self.process.returncode


def _cmdline(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")


def _gone(pid: int) -> bool:
    """No such process, or only its zombie (an orphan waits for whoever adopted it to reap it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


@pytest.mark.skipif(_sensor_unavailable() is not None, reason=str(_sensor_unavailable()))
def test_up_as_root_runs_service_scanner_and_sensor_and_sees_a_host_exec(tmp_path: Path) -> None:
    up = Up(tmp_path, "--include-host", "--sensor-cluster", "up-host", "--intel-sync-interval", "0").started()
    try:
        node = platform.node().lower()
        lines = up.stdout_lines()
        assert "scanner: in this process" in lines
        assert (
            "scanner: no trust policy yet, so no registry is contacted and no image scanned: "
            "`vigil trust add REGISTRY` (or --trust-file)"
        ) in lines
        assert (
            f"sensor: started for node {node} in cluster up-host (host processes too); "
            f"log: {up.data / 'logs' / 'sensor.log'}"
        ) in lines
        assert "controller: not started: no kubeconfig (give --kubeconfig or set KUBECONFIG)" in lines
        cluster_id = wait_for("the sensor's cluster", lambda: up.cluster_id("up-host"))

        def beating() -> bool:
            nodes = up.get("/api/v1/nodes", cluster=cluster_id)["items"]
            return any(n["name"] == node and (n.get("sensor") or {}).get("last_heartbeat_at") for n in nodes)

        wait_for("the sensor's first heartbeat", beating)
        (sensor_pid,) = up.children()
        argv = _cmdline(sensor_pid)
        assert argv[1:3] == ["-m", "vigil.sensor"] and "--include-host" in argv
        assert not [word for word in argv if word.startswith("vgl_")], "a credential on the sensor's command line"
        credential = up.data / "parts" / "sensor-credential"
        assert credential.stat().st_mode & 0o777 == 0o600 and credential.read_text().startswith("vgl_s_")
        # The node's own credential, not the cluster's.
        kinds = [(c["kind"], c["node"]) for c in up.get(f"/api/v1/clusters/{cluster_id}/credentials")["items"]]
        assert kinds == [("sensor", node)]

        # A host command under a path no other process uses: its exec must reach the API with its sha256.
        probe = tmp_path / f"true-{uuid.uuid4().hex[:12]}"
        shutil.copy("/bin/true", probe)
        sha = hashlib.sha256(probe.read_bytes()).hexdigest()
        subprocess.run([str(probe)], check=True)

        def seen() -> list[dict]:
            items = up.get("/api/v1/processes", cluster=cluster_id, sha256=sha, limit=1000)["items"]
            return [p for p in items if p["path"] == str(probe)]

        (record,) = wait_for("the host exec at the service", seen, timeout=60)
        assert (record["kind"], record["sha256"], record["count"]) == ("executable", sha, 1)
        assert (record["container_id"], record["pod_uid"], record["node_name"]) == (None, None, node)
        assert up.get("/api/v1/scans")["scans"] is not None  # the in-process scanner's queue answers
    finally:
        status = up.stop()
    assert status == 0, up.err.read_text()[-3000:]
    assert _gone(sensor_pid)
    log = (up.data / "logs" / "sensor.log").read_text()
    assert "vigil sensor: final counters" in log and "Traceback" not in log


def _pod(namespace: str, name: str, node: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "uid": str(uuid.uuid4()), "labels": {"app": name}},
        "spec": {"nodeName": node, "containers": [{"name": "app", "image": "registry.example/shop/app:1.0"}]},
        "status": {"phase": "Running"},
    }


def test_up_with_a_kubeconfig_runs_a_controller_reporting_the_clusters_pods(tmp_path: Path) -> None:
    with KubeAPIServer() as kube:
        kube.store.create(
            {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-a", "uid": str(uuid.uuid4())}}
        )
        expected = {("shop", "web-1"), ("shop", "web-2"), ("batch", "report-1")}
        for namespace in ("shop", "batch"):
            kube.store.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
        for namespace, name in sorted(expected):
            kube.store.create(_pod(namespace, name, "node-a"))
        kubeconfig = kube.write_kubeconfig(tmp_path / "kubeconfig")

        data = tmp_path / "data"

        def run_once(work: Path, token: str = "", sig: int = signal.SIGTERM) -> tuple[str, list[str], str]:
            work.mkdir()
            args = ("--no-sensor", "--kubeconfig", str(kubeconfig), "--intel-sync-interval", "0")
            up = Up(work, *args, data=data).started()
            up.token = up.token or token  # printed on the first start only
            try:
                cluster_id = wait_for("the controller's cluster", lambda: up.cluster_id("vigil-test"))

                def pods() -> set[tuple[str, str]] | None:
                    got = {(p["namespace"], p["name"]) for p in up.get("/api/v1/pods", cluster=cluster_id)["items"]}
                    return got if got == expected else None

                assert wait_for("the cluster's pods at the service", pods) == expected
                (controller_pid,) = up.children()
                # Its own process group: a terminal's Ctrl-C reaches `vigil up` alone, which stops it in order.
                assert os.getpgid(controller_pid) == controller_pid
                argv = _cmdline(controller_pid)
                assert argv[1:4] == ["-m", "vigil.cli", "controller"]
                assert not [w for w in argv if w.startswith("vgl_")], "a token on the controller's command line"
                lines = up.stdout_lines()
            finally:
                status = up.stop(sig)
            assert status == 0, up.err.read_text()[-3000:]
            assert _gone(controller_pid)
            return cluster_id, lines, up.token

        first_id, lines, token = run_once(tmp_path / "first")
        assert "sensor: not started: off (--no-sensor)" in lines
        assert (
            f"controller: started for cluster vigil-test (context vigil-test, {kube.url}); "
            f"log: {data / 'logs' / 'controller-vigil-test.log'}"
        ) in lines
        credential = data / "parts" / "controller-vigil-test.json"
        assert credential.stat().st_mode & 0o777 == 0o600
        second_id, _, _ = run_once(tmp_path / "second", token, signal.SIGINT)  # on the first run's data; Ctrl-C
        assert second_id == first_id  # kept its credential: the same cluster, not a second one


def test_the_parts_stop_when_up_is_killed(tmp_path: Path) -> None:
    with KubeAPIServer() as kube:
        kubeconfig = kube.write_kubeconfig(tmp_path / "kubeconfig")
        up = Up(tmp_path, "--no-sensor", "--kubeconfig", str(kubeconfig), "--intel-sync-interval", "0").started()
        try:
            (controller_pid,) = wait_for("the controller", up.children)
        finally:
            up.stop(signal.SIGKILL)
        # Killed, `vigil up` cannot stop its parts; the parent-death signal does.
        assert wait_for("the orphaned controller to stop", lambda: _gone(controller_pid), timeout=20)


def test_up_says_in_one_line_why_a_part_does_not_start_and_the_feeds_are_unreachable_once(tmp_path: Path) -> None:
    closed = _free_port()
    feeds = [f"http://127.0.0.1:{closed}/{ecosystem}/all.zip" for ecosystem in ("PyPI", "npm", "Go")]
    absent = tmp_path / "absent-kubeconfig"
    up = Up(tmp_path, "--no-sensor", "--kubeconfig", str(absent), *[f"--intel-feed={f}" for f in feeds]).started()
    try:
        wait_for("the advisory sync", lambda: "advisory feeds unreachable" in up.err.read_text(), timeout=30)
        assert up.children() == []
        assert up.get("/api/v1/clusters")["items"] == []
    finally:
        status = up.stop()
    assert status == 0, up.err.read_text()[-3000:]
    lines = up.stdout_lines()
    assert "sensor: not started: off (--no-sensor)" in lines
    assert f"controller: not started: kubeconfig {absent} does not exist" in lines
    log = up.err.read_text()
    assert log.count("advisory feeds unreachable") == 1
    assert "`vigil intel import DIR|ZIP...`" in log
    assert '"unreachable":3,"feeds":3' in log
    assert "advisory feed failed" not in log


def test_a_kubeconfig_whose_api_server_does_not_answer_is_unreachable(tmp_path: Path) -> None:
    port = _free_port()
    with KubeAPIServer() as kube:
        doc = kube.kubeconfig()
    doc["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{port}"
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(PartUnavailable) as caught:
        reachable_kube(str(path))
    assert (
        str(caught.value) == f"kubeconfig {path}: API server https://127.0.0.1:{port} unreachable (Connection refused)"
    )


def test_sensor_reasons() -> None:
    assert sensor_blocker(True, 0, True) is None
    assert sensor_blocker(False, 0, True) == "off (--no-sensor)"
    assert sensor_blocker(True, 1000, True) == "not running as root (the eBPF sensor needs root)"
    assert sensor_blocker(True, 0, False) == (
        "no kernel BTF at /sys/kernel/btf/vmlinux (the CO-RE sensor needs a kernel built with CONFIG_DEBUG_INFO_BTF=y)"
    )


def test_kubeconfig_choice_and_target(tmp_path: Path) -> None:
    with pytest.raises(PartUnavailable, match=r"^no kubeconfig \(give --kubeconfig or set KUBECONFIG\)$"):
        chosen_kubeconfig(None)
    present = tmp_path / "config"
    present.write_text("{}")
    assert chosen_kubeconfig(f"{tmp_path / 'absent'}{os.pathsep}{present}") == present
    doc = {
        "current-context": "prod",
        "contexts": [{"name": "prod", "context": {"cluster": "c1", "user": "u"}}],
        "clusters": [{"name": "c1", "cluster": {"server": "https://api.example:6443"}}],
    }
    assert kube_target(present, doc) == KubeTarget(present, "prod", "https://api.example:6443", "api.example", 6443)
    assert kube_target(present, {**doc, "clusters": [{"name": "c1", "cluster": {"server": "https://k"}}]}).port == 443
    with pytest.raises(PartUnavailable, match=r"has no current-context$"):
        kube_target(present, {**doc, "current-context": ""})
    with pytest.raises(PartUnavailable, match=r"context 'prod' is not defined or names no cluster$"):
        kube_target(present, {**doc, "contexts": []})
    with pytest.raises(PartUnavailable, match=r"cluster 'c1' has no server$"):
        kube_target(present, {**doc, "clusters": [{"name": "c1", "cluster": {}}]})


def test_host_facts_as_a_node_reports_them() -> None:
    assert (
        architecture("x86_64") == "amd64"
        and architecture("aarch64") == "arm64"
        and architecture("riscv64") == "riscv64"
    )
    assert os_image('ID=debian\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n') == "Debian GNU/Linux 12 (bookworm)"
    assert os_image("ID=alpine\n") == ""


def test_cluster_names_from_contexts() -> None:
    assert (
        cluster_name("arn:aws:eks:eu-west-1:123456789012:cluster/prod")
        == "arn-aws-eks-eu-west-1-123456789012-cluster-prod"
    )
    assert cluster_name("kind-dev") == "kind-dev"
    assert cluster_name("--", fallback="kubernetes") == "kubernetes"


def test_the_sensor_trusts_the_services_certificate_through_its_own_option(tmp_path: Path) -> None:
    from vigil.service.cli.up import LocalParts, plan_sensor
    from vigil.service.settings import Settings
    from vigil.service.store.db import create_store_engine, default_database_url, migrate

    settings = Settings(data_dir=tmp_path / "data")
    settings.data_dir.mkdir()
    engine = create_store_engine(default_database_url(settings.data_dir))
    migrate(engine)
    try:
        cert = tmp_path / "tls.crt"
        child = plan_sensor(engine, settings, "https://127.0.0.1:8443", LocalParts(), cert)
    finally:
        engine.dispose()
    assert child.argv[child.argv.index("--service-ca") + 1] == str(cert)
    assert child.env.get("SSL_CERT_FILE") == os.environ.get("SSL_CERT_FILE")  # not the service's certificate
