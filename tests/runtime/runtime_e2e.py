"""Shared parts of runtime analysis end-to-end tests and bench/detection_latency.py: the sensor's
real harness (loopback docker-registry, private containerd, kubelet-style cgroups, `vigil sensor`)
plus a service that scans images with the real scanner and matches advisories from its own
advisory database, and the runtime analyzer running as in production."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import httpx

from vigil.devtools import containerd as ctd
from vigil.devtools.containerd import exec_in, missing_tools, put_file
from vigil.devtools.registry_server import RegistryServer, find_registry_binary
from vigil.devtools.service import LiveService
from vigil.intel import AdvisoryStore, load_osv
from vigil.registry import RegistryClient, RegistryConfig
from vigil.service.jobs.workers import scan_worker

# The sensor's harness lives beside its tests, not in a package: it is importable only once its folder is on the path.
SENSOR_TESTS = Path(__file__).resolve().parents[1] / "sensor"
sys.path.insert(0, str(SENSOR_TESTS))

from bpf_support import bpf_unavailable  # noqa: E402
from sensor_e2e import (  # noqa: E402
    BUSYBOX,
    SensorProcess,
    TestImage,
    inventory_snapshot,
    new_container_ids,
    node_sensor,
    post_inventory,
    push_image,
    remove_container,
    wait_for,
    wait_for_cmdline,
    web_pod,
)

__all__ = [
    "BUSYBOX",
    "RegistryServer",
    "SensorProcess",
    "TestImage",
    "exec_in",
    "find_registry_binary",
    "inventory_snapshot",
    "missing_tools",
    "new_container_ids",
    "post_inventory",
    "push_image",
    "put_file",
    "remove_container",
    "wait_for",
    "wait_for_cmdline",
    "web_pod",
]


def e2e_unavailable() -> str | None:
    """Why the end-to-end runtime tests cannot run here, or None."""
    missing = missing_tools() + ([] if find_registry_binary() else ["docker-registry"])
    if missing:
        return f"missing {', '.join(missing)}"
    return bpf_unavailable()


RUNTIME_TYPES = "runtime_drift,tampered_binary,suspicious_exec,running_vulnerability"


def runtime_service(data_dir: Path, registry: RegistryServer, *, watch_period: float = 24 * 3600.0) -> LiveService:
    """A started service whose in-process scanner pulls from the loopback registry over plain HTTP."""
    svc = LiveService(data_dir)
    svc.trust_registry(registry.host)
    config = RegistryConfig.from_mapping({registry.host: {"plain_http": True}})
    svc.app.state.workers.contents.scanner = scan_worker(svc.engine, RegistryClient(config))
    svc.app.state.workers.runtime.watch_period = watch_period
    svc.app.state.workers.runtime.label_interval = 0.5
    return svc.start()


def import_advisories(svc: LiveService, records: list[dict], workdir: Path) -> None:
    """Write OSV records as files and import them into the service's advisory database."""
    workdir.mkdir(parents=True, exist_ok=True)
    for r in records:
        (workdir / f"{r['id']}.json").write_text(json.dumps(r))
    advisories, report = load_osv([workdir])
    assert not report.rejected, report.rejected
    with AdvisoryStore(svc.settings.intel_db) as db:
        db.upsert(advisories)


def scan_and_match(svc: LiveService) -> dict:
    """One contents pass: queue running digests, scan them with the real scanner, match, sync findings."""
    report = svc.app.state.workers.contents.run_pass(scan=True)
    failed = [s for s in report.scanned if s.status != "done"]
    assert not failed, failed
    return report.as_dict()


def run_container(containerd, image: TestImage, pod_uid: str, container_id: str) -> int:
    """`ctr run` under a kubelet-style cgroup with an exec-able /dev/shm; returns init's host pid."""
    return ctd.run_container(containerd, image.ref, pod_uid, container_id, exec_shm=True)


def start_sensor(
    svc: LiveService, credential: str, cluster_id: str, node: str, workdir: Path, batch_interval: float = 0.2
) -> SensorProcess:
    """`vigil sensor` shipping to ``svc``; returns once its programs are attached (its first heartbeat)."""
    sensor = SensorProcess.start(
        svc.url, credential, cluster_id, node, workdir, "--batch-interval", str(batch_interval)
    )
    try:
        wait_for(
            "the sensor's first heartbeat",
            lambda: (node_sensor(svc, cluster_id, node) or {}).get("last_heartbeat_at"),
            60,
        )
    except AssertionError:
        sensor.stop()
        raise AssertionError(f"sensor never reported: {sensor.log()[-2000:]}") from None
    return sensor


def runtime_findings(svc: LiveService, cluster_id: str, **params) -> list[dict]:
    return svc.list_all("/api/v1/findings", cluster=cluster_id, type=RUNTIME_TYPES, **params)


def analysis_idle(svc: LiveService) -> bool:
    status = svc.get("/api/v1/runtime/status").json()
    return status["pending"]["ready"] == 0


def wait_for_record(svc: LiveService, cluster_id: str, path: str, timeout: float = 20.0) -> dict:
    """Wait until the service holds a record of ``path`` and has analysed everything ready."""

    def check():
        items = [p for p in svc.list_all("/api/v1/processes", cluster=cluster_id) if p["path"] == path]
        return items if items and analysis_idle(svc) else None

    return wait_for(f"a record of {path} analysed", check, timeout)[0]


def sse_events(url: str, token: str, stop_after: int, timeout: float = 20.0, **params) -> list[dict]:
    """Read ``stop_after`` finding events from the stream."""
    out: list[dict] = []
    deadline = time.monotonic() + timeout
    with httpx.stream("GET", url, params=params, headers={"Authorization": f"Bearer {token}"}, timeout=timeout) as resp:
        assert resp.status_code == 200, resp.read()
        assert resp.headers["content-type"].startswith("text/event-stream")
        data = []
        for line in resp.iter_lines():
            if line.startswith("data:"):
                data.append(line[5:].strip())
            elif line == "" and data:
                out.append(json.loads("\n".join(data)))
                data = []
                if len(out) >= stop_after:
                    break
            if time.monotonic() > deadline:
                break
    return out
