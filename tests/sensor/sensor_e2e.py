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

from vigil.devtools import containerd as ctd
from vigil.devtools.containerd import (  # noqa: F401 - re-exported for the tests and benchmarks
    APPLETS,
    BUSYBOX,
    RUN_SCRIPT,
    busybox_image,
    cleanup_pod_cgroups,
    kubelet_cgroup,
    remove_container,
    wait_for_cmdline,
)
from vigil.devtools.oci import push
from vigil.devtools.registry_server import RegistryServer
from vigil.devtools.service import LiveService
from vigil.registry import RegistryClient, RegistryConfig

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


def push_image(registry: RegistryServer, tag: str = "1.0", extra: dict[str, bytes] | None = None) -> TestImage:
    image, files = busybox_image(extra)
    ref = f"{registry.host}/vigil/busybox:{tag}"
    with RegistryClient(RegistryConfig.from_mapping({registry.host: {"plain_http": True}})) as client:
        digest = push(client, ref, image)
    return TestImage(ref, digest, files)


def pull(containerd, image: TestImage) -> None:
    """`ctr images pull --plain-http` from the loopback registry, checking the digest it resolved."""
    ctd.pull(containerd, image.ref, image.digest)


def new_container_ids() -> tuple[str, str]:
    """(pod uid, 64-hex container id), fresh for each test."""
    return str(uuid.uuid4()), uuid.uuid4().hex + uuid.uuid4().hex


def run_container(containerd, image: TestImage, pod_uid: str, container_id: str, *args: str) -> int:
    """Start a detached container under a kubelet-style cgroup; returns its init's host pid."""
    return ctd.run_container(containerd, image.ref, pod_uid, container_id, *args)


def wait_for(what: str, check: Callable[[], object], timeout: float = 20.0, every: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(every)


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
    workloads = [
        {
            "namespace": "shop",
            "kind": "Deployment",
            "name": "web",
            "owner_chain": [{"kind": "ReplicaSet", "name": "web-7d4b9c"}],
        }
    ]
    return {
        "kind": "snapshot",
        "batch_id": batch_id or f"snap-{uuid.uuid4().hex[:12]}",
        "cluster_id": cluster_id,
        "nodes": [
            {
                "name": node_name,
                "labels": {"kubernetes.io/hostname": node_name, **(node_labels or {})},
                "kernel_version": os.uname().release,
                "container_runtime": "containerd://1.6",
            }
        ],
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
        headers={
            "Authorization": f"Bearer {credential}",
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
        },
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
        credential_flag: str = "--credential-file",
    ) -> SensorProcess:
        """``module``: run `python -m vigil.sensor` instead of the full `vigil sensor` command;
        ``credential_flag``: how ``credential`` is given (``--enrolment-credential-file`` for an enrolment one)."""
        workdir.mkdir(parents=True, exist_ok=True)
        cred = workdir / "credential"
        cred.write_text(credential + "\n")
        cred.chmod(0o600)
        stderr_path = workdir / "sensor.log"
        cmd = [
            *([sys.executable, "-m", "vigil.sensor"] if module else [str(VIGIL), "sensor"]),
            "--service",
            svc_url,
            credential_flag,
            str(cred),
            "--cluster-id",
            cluster_id,
            "--node-name",
            node_name,
            "--spool-dir",
            str(workdir / "spool"),
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
            raise AssertionError(
                f"vigil sensor did not stop on SIGTERM within {timeout}s: {self.log()[-2000:]}"
            ) from None
