"""Helpers for the scanner tests: OCI layouts pushed to a real registry, inventory posted to a real
service, advisories written in OSV form, the service's scanner pointed at the test registry."""

from __future__ import annotations

import gzip
import itertools
import json
from pathlib import Path

import httpx
import orjson

from vigil.intel import AdvisoryStore, load_osv
from vigil.registry import RegistryClient, RegistryConfig, RegistryWriter, RetryPolicy
from vigil.scanner.worker import ScanWorker
from vigil.service.jobs.workers import scan_worker
from vigil.wire.inventory import InventorySnapshot

FAST_RETRY = RetryPolicy(max_attempts=2, backoff_base=0.01, backoff_max=0.02)
_batches = itertools.count(1)


def client_for(host: str) -> RegistryClient:
    return RegistryClient(RegistryConfig.from_mapping({host: {"plain_http": True}}), retry=FAST_RETRY, timeout=30.0)


def use_registry(svc, host: str) -> ScanWorker:
    """The service's in-process scanner, talking plain HTTP to the test registry, which it trusts."""
    svc.trust_registry(host)
    worker = scan_worker(svc.engine, client_for(host))
    svc.app.state.workers.contents.scanner = worker
    return worker


def push_layout(client: RegistryClient, reference: str, layout: Path) -> str:
    """Push every blob and the (single) manifest of an OCI layout under ``reference``; its digest."""
    index = json.loads((layout / "index.json").read_text())
    [desc] = index["manifests"]
    blob = lambda digest: (layout / "blobs" / "sha256" / digest.split(":", 1)[1]).read_bytes()  # noqa: E731
    manifest = json.loads(blob(desc["digest"]))
    writer = RegistryWriter(client)
    for d in [manifest["config"], *manifest["layers"]]:
        writer.push_blob(reference, blob(d["digest"]), d["digest"])
    tag = reference.rsplit(":", 1)[1]
    return writer.put_manifest(reference, tag, blob(desc["digest"]), desc["mediaType"])


def snapshot(cluster_id: str, running: list[tuple[str, str, str, str]], *, arch: str = "amd64") -> InventorySnapshot:
    """One Deployment and pod per (namespace, workload, image as written, running digest)."""
    workloads, pods = [], []
    for i, (namespace, name, image_ref, digest) in enumerate(running):
        workloads.append(
            {
                "namespace": namespace,
                "kind": "Deployment",
                "name": name,
                "owner_chain": [{"kind": "ReplicaSet", "name": f"{name}-5d8f"}],
            }
        )
        pods.append(
            {
                "uid": f"00000000-0000-4000-8000-{i:012d}",
                "namespace": namespace,
                "name": f"{name}-5d8f-x{i}",
                "node_name": "node-1",
                "phase": "Running",
                "workload": {"kind": "Deployment", "name": name},
                "containers": [
                    {
                        "name": "app",
                        "image": image_ref,
                        "image_id": f"{image_ref.rsplit(':', 1)[0]}@{digest}",
                        "image_digest": digest,
                        "container_id": "containerd://" + f"{i:064x}",
                        "state": "running",
                    }
                ],
            }
        )
    return InventorySnapshot.model_validate(
        {
            "kind": "snapshot",
            "batch_id": f"scan-snap-{next(_batches)}",
            "cluster_id": cluster_id,
            "nodes": [{"name": "node-1", "architecture": arch}],
            "workloads": workloads,
            "pods": pods,
        }
    )


def post(svc, credential: str, batch) -> None:
    r = httpx.post(
        f"{svc.url}/api/v1/ingest/inventory",
        content=gzip.compress(orjson.dumps(batch.model_dump(mode="json"))),
        headers={
            "Authorization": f"Bearer {credential}",
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
        },
        timeout=60,
    )
    assert r.status_code == 200, r.text


def import_advisories(db: Path, *paths: Path) -> None:
    advisories, report = load_osv(paths)
    assert report.rejected == [], report.rejected
    with AdvisoryStore(db) as store:
        store.upsert(advisories, report)


def write_record(directory: Path, record: dict) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{record['id']}.json"
    path.write_text(json.dumps(record))
    return path


def run_scans(svc) -> dict:
    r = httpx.post(f"{svc.url}/api/v1/scans/run", headers={"Authorization": f"Bearer {svc.admin_token}"}, timeout=300)
    assert r.status_code == 200, r.text
    return r.json()


def content_findings(svc, **params) -> list[dict]:
    params.setdefault("type", "vulnerable_package,malicious_package")
    return svc.list_all("/api/v1/findings", **params)


def image_pk(svc, cluster_id: str, workload: str) -> int:
    pods = svc.list_all("/api/v1/pods", cluster=cluster_id, workload_name=workload)
    assert len(pods) == 1, pods
    return pods[0]["containers"][0]["image_pk"]
