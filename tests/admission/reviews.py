"""AdmissionReviews as kube-apiserver sends them, and the webhook's knowledge as the service's feed gives it."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

from vigil.admission.knowledge import Knowledge
from vigil.wire.admission import DigestFacts, SnapshotEvent, TagFacts

TRUSTED = "registry.example.com/team"
PUSHED = "sha256:" + "b" * 64
NEVER_PUSHED = "sha256:" + "a" * 64
CHECKED = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
_uids = itertools.count(1)

POLICY: dict[str, Any] = {
    "policies": [
        {
            "name": "prod",
            "mode": "enforce",
            "scope": {"namespaces": ["shop"]},
            "rules": {"unscanned": "deny", "vulnerabilities": {"severity": "critical"}},
        },
        {"name": "staging", "mode": "warn", "scope": {"namespaces": ["staging"]}},
        {"name": "lab", "mode": "audit", "scope": {"namespaces": ["lab"]}},
    ]
}


def knowledge(
    policy: dict[str, Any] | None = None,
    *,
    trusted: list[str] | None = None,
    digests: list[DigestFacts] | None = None,
    tags: list[TagFacts] | None = None,
    cluster_name: str = "",
    clusters: dict[str, Any] | None = None,
) -> Knowledge:
    k = Knowledge()
    k.apply(
        SnapshotEvent(
            cluster_name=cluster_name,
            enforcement=POLICY if policy is None else policy,
            enforcement_revision="rev-1",
            trust={"trusted": [TRUSTED] if trusted is None else trusted, "mirrors": [], "clusters": clusters or {}},
            trust_revision="trust-1",
            digests=digests or [],
            tags=tags or [],
        )
    )
    return k


def tag(reference: str, digest: str | None = PUSHED) -> TagFacts:
    return TagFacts(reference=reference, digest=digest, artifacts=[digest] if digest else [], checked_at=CHECKED)


def scanned(digest: str = PUSHED, repository: str = f"{TRUSTED}/app", **facts: Any) -> DigestFacts:
    return DigestFacts(digest=digest, repositories=[repository], scanned=True, **facts)


def pod(
    *images: str,
    namespace: str = "shop",
    name: str = "web",
    annotations: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
    owner: bool = False,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": namespace, "labels": labels or {"app": name}}
    if annotations:
        meta["annotations"] = annotations
    if owner:
        meta["ownerReferences"] = [
            {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-1", "uid": "u", "controller": True}
        ]
    containers = [{"name": f"c{i}", "image": image} for i, image in enumerate(images)]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": {"containers": containers}}


def deployment(*images: str, namespace: str = "shop", name: str = "web") -> dict[str, Any]:
    template = pod(*images, namespace=namespace, name=name)
    del template["apiVersion"], template["kind"]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"selector": {"matchLabels": {"app": name}}, "template": template},
    }


RESOURCES = {"Pod": ("", "pods"), "Deployment": ("apps", "deployments"), "CronJob": ("batch", "cronjobs")}


def review(
    obj: dict[str, Any], *, operation: str = "CREATE", dry_run: bool = False, user: str = "alice"
) -> dict[str, Any]:
    kind = obj["kind"]
    group, resource = RESOURCES[kind]
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": f"uid-{next(_uids)}",
            "kind": {"group": group, "version": "v1", "kind": kind},
            "resource": {"group": group, "version": "v1", "resource": resource},
            "operation": operation,
            "namespace": obj["metadata"]["namespace"],
            "name": obj["metadata"]["name"],
            "userInfo": {"username": user, "groups": ["system:authenticated"]},
            "object": obj,
            "dryRun": dry_run,
        },
    }
