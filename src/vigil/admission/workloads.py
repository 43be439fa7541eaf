"""Where a pod spec sits in each kind the webhook admits, and the images in it (pure).

Every path is also a JSON Pointer, so a mutation can name the exact field it rewrites.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from vigil.admission.review import ReviewError

# Kind -> the path from the object to its pod template (the object itself for a Pod).
TEMPLATE_PATHS: dict[str, tuple[str, ...]] = {
    "Pod": (),
    "Deployment": ("spec", "template"),
    "ReplicaSet": ("spec", "template"),
    "StatefulSet": ("spec", "template"),
    "DaemonSet": ("spec", "template"),
    "ReplicationController": ("spec", "template"),
    "Job": ("spec", "template"),
    "CronJob": ("spec", "jobTemplate", "spec", "template"),
}
CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")


@dataclass(frozen=True)
class ContainerImage:
    pointer: str  # JSON Pointer to the container's image field
    container: str
    image: str


@dataclass(frozen=True)
class PodParts:
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    images: tuple[ContainerImage, ...] = ()


def _strings(value: Any, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise ReviewError(f"{where} must map strings to strings")
    return value


def pod_parts(kind: str, obj: dict[str, Any]) -> PodParts | None:
    """The labels, annotations and container images of ``obj``'s pods; None for a kind with no pods.

    Labels are the pod template's (what the pods get); annotations are the object's and its
    template's, so a break-glass annotation on a Deployment is seen as well as on its pods.
    """
    path = TEMPLATE_PATHS.get(kind)
    if path is None:
        return None
    node: Any = obj
    where = kind
    for step in path:
        where += f".{step}"
        node = node.get(step) if isinstance(node, dict) else None
        if not isinstance(node, dict):
            raise ReviewError(f"request.object: {where} must be an object")
    meta = node.get("metadata") or {}
    if not isinstance(meta, dict):
        raise ReviewError(f"request.object: {where}.metadata must be an object")
    spec = node.get("spec")
    if not isinstance(spec, dict):
        raise ReviewError(f"request.object: {where}.spec must be an object")
    outer = obj.get("metadata") or {}
    annotations = dict(
        _strings(outer.get("annotations") if isinstance(outer, dict) else None, f"{kind}.metadata.annotations")
    )
    annotations.update(_strings(meta.get("annotations"), f"{where}.metadata.annotations"))
    base = "".join(f"/{step}" for step in path) + "/spec"
    images: list[ContainerImage] = []
    for list_name in CONTAINER_LISTS:
        containers = spec.get(list_name) or []
        if not isinstance(containers, list):
            raise ReviewError(f"request.object: {where}.spec.{list_name} must be a list")
        for i, container in enumerate(containers):
            if not isinstance(container, dict):
                raise ReviewError(f"request.object: {where}.spec.{list_name}[{i}] must be an object")
            image = container.get("image")
            if not isinstance(image, str) or not image:
                raise ReviewError(f"request.object: {where}.spec.{list_name}[{i}].image must be a non-empty string")
            name = container.get("name")
            images.append(ContainerImage(f"{base}/{list_name}/{i}/image", name if isinstance(name, str) else "", image))
    return PodParts(_strings(meta.get("labels"), f"{where}.metadata.labels"), annotations, tuple(images))
