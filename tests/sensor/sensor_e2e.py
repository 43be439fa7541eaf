"""Shared parts of the sensor's end-to-end tests and benchmark: an image built from busybox-static,
pushed to a loopback docker-registry and pulled by a private containerd; the real service and the
inventory that tells it which pod and workload a container belongs to; `vigil sensor` as a process.

A module of its own (not conftest) so that bench/sensor_overhead.py can import it too.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from vigil.devtools.oci import Image, LayerFile, build_image, push, tar_layer
from vigil.devtools.registry_server import RegistryServer
from vigil.devtools.service import LiveService
from vigil.registry import RegistryClient, RegistryConfig

BUSYBOX = Path("/bin/busybox")
APPLETS = ("sh", "true", "false", "sleep", "cat", "echo", "ls")
# The container's main process: a #! script (the kernel loads /bin/sh for it) that runs
# one program and then replaces itself with another, so both exec paths are exercised.
RUN_SCRIPT = b"#!/bin/sh\n/bin/echo started\nexec /bin/sleep 300\n"
VIGIL = Path(sys.executable).with_name("vigil")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class TestImage:
    ref: str  # as pulled: 127.0.0.1:<port>/vigil/busybox:<tag>
    digest: str  # manifest digest the registry holds
    files: dict[str, bytes] = field(repr=False)  # regular files in the image, by absolute path

    def sha256(self, path: str) -> str:
        return sha256_hex(self.files[path])


def busybox_image(extra: dict[str, bytes] | None = None) -> tuple[Image, dict[str, bytes]]:
    """A one-layer image: busybox-static with applet symlinks, /app/run.sh, and ``extra`` executables."""
    busybox = BUSYBOX.read_bytes()
    regular = {"/bin/busybox": busybox, "/app/run.sh": RUN_SCRIPT, **(extra or {})}
    entries: dict[str, LayerFile] = {p.lstrip("/"): LayerFile(data, mode=0o755) for p, data in regular.items()}
    for applet in APPLETS:
        entries[f"bin/{applet}"] = LayerFile(kind="symlink", linkname="busybox", mode=0o777)
    for d in ("proc", "dev", "sys", "etc"):
        entries[d] = LayerFile(kind="dir", mode=0o755)
    entries["tmp"] = LayerFile(kind="dir", mode=0o1777)
    image = build_image([tar_layer(entries)], cmd=["/app/run.sh"], env=["PATH=/bin"])
    return image, regular


def push_image(registry: RegistryServer, tag: str = "1.0", extra: dict[str, bytes] | None = None) -> TestImage:
    image, files = busybox_image(extra)
    ref = f"{registry.host}/vigil/busybox:{tag}"
    with RegistryClient(RegistryConfig.from_mapping({registry.host: {"plain_http": True}})) as client:
        digest = push(client, ref, image)
    return TestImage(ref, digest, files)


def pull(containerd, image: TestImage) -> None:
    """`ctr images pull --plain-http` from the loopback registry, checking the digest it resolved."""
    out = containerd.ctr("images", "pull", "--plain-http", image.ref, timeout=120)
    listed = containerd.ctr("images", "ls").stdout
    line = next((x for x in listed.splitlines() if x.startswith(image.ref + " ")), None)
    assert line is not None and image.digest in line, f"pulled {image.ref} not listed with {image.digest}: {out.stdout}{listed}"


def new_container_ids() -> tuple[str, str]:
    """(pod uid, 64-hex container id), fresh for each test."""
    return str(uuid.uuid4()), uuid.uuid4().hex + uuid.uuid4().hex


def kubelet_cgroup(pod_uid: str, container_id: str) -> str:
    return f"kubepods/besteffort/pod{pod_uid}/{container_id}"


def run_container(containerd, image: TestImage, pod_uid: str, container_id: str, *args: str) -> int:
    """Start a detached container under a kubelet-style cgroup; returns its init's host pid."""
    containerd.ctr("run", "-d", "--cgroup", kubelet_cgroup(pod_uid, container_id), image.ref, container_id, *args)
    for line in containerd.ctr("task", "ls").stdout.splitlines():
        parts = line.split()
        if parts and parts[0] == container_id:
            return int(parts[1])
    raise AssertionError(f"task {container_id} not listed after ctr run")


def wait_for(what: str, check: Callable[[], object], timeout: float = 20.0, every: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(every)


def wait_for_cmdline(pid: int, argv: list[str], timeout: float = 10.0) -> None:
    """Wait, from the host, until a process runs ``argv`` (its init has exec'd)."""
    want = ("\0".join(argv) + "\0").encode()
    wait_for(f"pid {pid} to run {argv}", lambda: Path(f"/proc/{pid}/cmdline").read_bytes() == want, timeout)


def remove_container(containerd, container_id: str, pod_uid: str) -> None:
    containerd.ctr("task", "kill", "-s", "9", container_id, check=False)
    for _ in range(50):
        if containerd.ctr("task", "delete", container_id, check=False).returncode == 0:
            break
        time.sleep(0.1)
    containerd.ctr("containers", "rm", container_id, check=False)
    cleanup_pod_cgroups(pod_uid)


def cleanup_pod_cgroups(pod_uid: str) -> None:
    """runc leaves the kubepods/.../pod<uid> parents behind in every hierarchy: remove them."""
    for hier in Path("/sys/fs/cgroup").iterdir():
        if not hier.is_dir():
            continue
        for d in sorted(hier.glob(f"**/pod{pod_uid}"), key=lambda p: -len(p.parts)):
            for sub in sorted(d.rglob("*"), key=lambda p: -len(p.parts)):
                if sub.is_dir():
                    try:
                        os.rmdir(sub)
                    except OSError:
                        pass
            try:
                os.rmdir(d)
            except OSError:
                pass


# -- the service side ---------------------------------------------------------------------------


def restart_service(old: LiveService) -> LiveService:
    """A new service on the stopped one's data dir and port, as after a restart of its pod."""
    new = LiveService(old.settings.data_dir, old.settings.database_url)
    new.settings.port = old.settings.port
    new.url = old.url
    return new


def inventory_snapshot(
    cluster_id: str,
    node_name: str,
    *,
    node_labels: dict[str, str] | None = None,
    pods: list[dict] | None = None,
    batch_id: str | None = None,
) -> dict:
    """An inventory snapshot, as the controller sends it: one node, a Deployment, its pods."""
    workloads = [{"namespace": "shop", "kind": "Deployment", "name": "web", "owner_chain": [{"kind": "ReplicaSet", "name": "web-7d4b9c"}]}]
    return {
        "kind": "snapshot",
        "batch_id": batch_id or f"snap-{uuid.uuid4().hex[:12]}",
        "cluster_id": cluster_id,
        "nodes": [{"name": node_name, "labels": {"kubernetes.io/hostname": node_name, **(node_labels or {})},
                   "kernel_version": os.uname().release, "container_runtime": "containerd://1.6"}],
        "workloads": workloads,
        "pods": pods or [],
    }


def web_pod(pod_uid: str, node_name: str, container_id: str, image: TestImage, name: str = "web-7d4b9c-x2v8q") -> dict:
    return {
        "uid": pod_uid,
        "namespace": "shop",
        "name": name,
        "node_name": node_name,
        "phase": "Running",
        "workload": {"kind": "Deployment", "name": "web"},
        "containers": [
            {
                "name": "app",
                "image": image.ref,
                "image_id": f"{image.ref.rsplit(':', 1)[0]}@{image.digest}",
                "image_digest": image.digest,
                "container_id": f"containerd://{container_id}",
                "state": "running",
            }
        ],
    }


def post_inventory(svc: LiveService, credential: str, snapshot: dict) -> None:
    resp = httpx.post(
        f"{svc.url}/api/v1/ingest/inventory",
        content=gzip.compress(json.dumps(snapshot).encode()),
        headers={"Authorization": f"Bearer {credential}", "Content-Type": "application/json", "Content-Encoding": "gzip"},
        timeout=30,
    )
    assert resp.status_code == 200, resp.text


def node_sensor(svc: LiveService, cluster_id: str, node_name: str) -> dict | None:
    for node in svc.list_all("/api/v1/nodes", cluster=cluster_id):
        if node["name"] == node_name:
            return node["sensor"]
    return None


def processes(svc: LiveService, cluster_id: str, **params) -> list[dict]:
    return svc.list_all("/api/v1/processes", cluster=cluster_id, **params)


# -- `vigil sensor` as its own process ---------------------------------------------------------


@dataclass
class SensorProcess:
    """`vigil sensor --service ...`, the way a DaemonSet pod runs it."""

    proc: subprocess.Popen
    stderr_path: Path

    @classmethod
    def start(
        cls,
        svc_url: str,
        credential: str,
        cluster_id: str,
        node_name: str,
        workdir: Path,
        *extra: str,
        module: bool = False,
    ) -> SensorProcess:
        """``module``: run `python -m vigil.sensor` instead of the full `vigil sensor` command."""
        workdir.mkdir(parents=True, exist_ok=True)
        cred = workdir / "credential"
        cred.write_text(credential + "\n")
        cred.chmod(0o600)
        stderr_path = workdir / "sensor.log"
        cmd = [
            *([sys.executable, "-m", "vigil.sensor"] if module else [str(VIGIL), "sensor"]),
            "--service", svc_url,
            "--credential-file", str(cred),
            "--cluster-id", cluster_id,
            "--node-name", node_name,
            "--spool-dir", str(workdir / "spool"),
            *extra,
        ]
        with open(stderr_path, "wb") as err:
            proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, stdin=subprocess.DEVNULL)
        return cls(proc, stderr_path)

    def log(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def stop(self, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"vigil sensor did not stop on SIGTERM within {timeout}s: {self.log()[-2000:]}")
