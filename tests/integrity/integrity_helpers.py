"""Helpers for the integrity tests: images pushed to a real registry, inventories posted to a real service."""

from __future__ import annotations

import gzip
import itertools

import httpx
import orjson

from vigil.devtools.oci import LayerFile, build_image, build_index, tar_layer
from vigil.registry import RegistryClient, RegistryConfig, RetryPolicy
from vigil.service.jobs.integrity import IntegrityEvaluator
from vigil.wire.inventory import InventorySnapshot

USERS = {"alice": "Tr0ub4dor&3-horse-battery"}
WRONG_PASSWORD = "wr0ng-Pa55word-do-not-log"
FAST_RETRY = RetryPolicy(max_attempts=2, backoff_base=0.01, backoff_max=0.02)
LABELS = {
    "org.opencontainers.image.source": "https://git.example.com/team/app",
    "org.opencontainers.image.revision": "3f2a9c1d",
    "org.opencontainers.image.created": "2024-05-01T12:00:00Z",
    "org.opencontainers.image.authors": "Team App <app@example.com>",
    "org.opencontainers.image.version": "1.4.2",
}
_batches = itertools.count(1)


def registry_config(host: str, **settings) -> RegistryConfig:
    return RegistryConfig.from_mapping({host: {"plain_http": True, **settings}})


def client_for(config: RegistryConfig, tag_ttl: float = 270.0) -> RegistryClient:
    return RegistryClient(config, tag_ttl=tag_ttl, retry=FAST_RETRY, timeout=5.0)


def evaluator_for(svc, config: RegistryConfig, **options) -> IntegrityEvaluator:
    """The evaluator the service's POST /api/v1/integrity/evaluate runs, talking to the test registries."""
    evaluator = IntegrityEvaluator(svc.engine, client_for(config), **{"registry_concurrency": 4, **options})
    svc.app.state.workers.integrity = evaluator
    return evaluator


def image(text: str, *, labels: dict | None = None, platform: str = "linux/amd64"):
    layer = tar_layer({"app/VERSION": text.encode(), "bin/run": LayerFile(b"#!/bin/sh\necho run\n", mode=0o755)})
    return build_image([layer], labels=labels or {}, platform=platform)


def two_platform(text: str):
    return build_index([image(text, platform="linux/amd64"), image(text, platform="linux/arm64/v8")])


def snapshot(
    cluster_id: str, running: list[tuple[str, str, str | None]], *, namespace: str = "shop"
) -> InventorySnapshot:
    """One Deployment per (workload name, image as written, running digest), one pod each."""
    workloads, pods = [], []
    for i, (name, image_ref, digest) in enumerate(running):
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
                        "image_id": f"{image_ref.split('@')[0].rsplit(':', 1)[0]}@{digest}" if digest else "",
                        "image_digest": digest,
                        "container_id": "containerd://" + f"{i:064x}",
                        "state": "running" if digest else "waiting",
                    }
                ],
            }
        )
    return InventorySnapshot.model_validate(
        {
            "kind": "snapshot",
            "batch_id": f"snap-{next(_batches)}",
            "cluster_id": cluster_id,
            "nodes": [{"name": "node-1"}],
            "workloads": workloads,
            "pods": pods,
        }
    )


def post(svc, credential: str, batch) -> None:
    body = orjson.dumps(batch.model_dump(mode="json"))
    r = httpx.post(
        f"{svc.url}/api/v1/ingest/inventory",
        content=gzip.compress(body),
        headers={
            "Authorization": f"Bearer {credential}",
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
        },
        timeout=60,
    )
    assert r.status_code == 200, r.text


def evaluate(svc, *, all: bool = True) -> dict:
    r = httpx.post(
        f"{svc.url}/api/v1/integrity/evaluate",
        params={"all": str(all).lower()},
        headers={"Authorization": f"Bearer {svc.admin_token}"},
        timeout=120,
    )
    assert r.status_code == 200, r.text
    return r.json()


def put_policy(svc, doc: dict, token: str | None = None) -> httpx.Response:
    return httpx.put(
        f"{svc.url}/api/v1/policy/trust",
        json=doc,
        headers={"Authorization": f"Bearer {token or svc.admin_token}"},
        timeout=30,
    )


def findings(svc, **params) -> list[dict]:
    params.setdefault("type", "untrusted_registry,digest_mismatch,tag_moved,artifact_missing")
    return svc.list_all("/api/v1/findings", **params)


def open_findings(svc, **params) -> list[dict]:
    return findings(svc, status="open", **params)


def integrity_of(svc, image_pk: int) -> dict:
    r = svc.get(f"/api/v1/images/{image_pk}/integrity")
    assert r.status_code == 200, r.text
    return r.json()["integrity"]


def image_pk(svc, cluster_id: str, workload: str) -> int:
    pods = svc.list_all("/api/v1/pods", cluster=cluster_id, workload_name=workload)
    assert len(pods) == 1, pods
    return pods[0]["containers"][0]["image_pk"]
