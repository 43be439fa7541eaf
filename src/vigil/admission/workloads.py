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


def pod_parts(kind: str, obj: dict[str, Any], source: str = "request.object") -> PodParts | None:
    """The labels, annotations and container images of ``obj``'s pods; None for a kind with no pods.

    Labels are the pod template's (what the pods get); annotations are the object's and its
    template's, so a break-glass annotation on a Deployment is seen as well as on its pods.
    ``source`` is the review's field ``obj`` came from, which errors name.
    """
    path = TEMPLATE_PATHS.get(kind)
    if path is None:
        return None
    node: Any = obj
    where = f"{source}: {kind}"
    for step in path:
        where += f".{step}"
        node = node.get(step) if isinstance(node, dict) else None
        if not isinstance(node, dict):
            raise ReviewError(f"{where} must be an object")
    meta = node.get("metadata") or {}
    if not isinstance(meta, dict):
        raise ReviewError(f"{where}.metadata must be an object")
    spec = node.get("spec")
    if not isinstance(spec, dict):
        raise ReviewError(f"{where}.spec must be an object")
    outer = obj.get("metadata") or {}
    annotations = dict(
        _strings(
            outer.get("annotations") if isinstance(outer, dict) else None, f"{source}: {kind}.metadata.annotations"
        )
    )
    annotations.update(_strings(meta.get("annotations"), f"{where}.metadata.annotations"))
    base = "".join(f"/{step}" for step in path) + "/spec"
    images: list[ContainerImage] = []
    for list_name in CONTAINER_LISTS:
        containers = spec.get(list_name) or []
        if not isinstance(containers, list):
            raise ReviewError(f"{where}.spec.{list_name} must be a list")
        for i, container in enumerate(containers):
            if not isinstance(container, dict):
                raise ReviewError(f"{where}.spec.{list_name}[{i}] must be an object")
            image = container.get("image")
            if not isinstance(image, str) or not image:
                raise ReviewError(f"{where}.spec.{list_name}[{i}].image must be a non-empty string")
            name = container.get("name")
            images.append(ContainerImage(f"{base}/{list_name}/{i}/image", name if isinstance(name, str) else "", image))
    return PodParts(_strings(meta.get("labels"), f"{where}.metadata.labels"), annotations, tuple(images))


def starts_nothing_new(kind: str, obj: dict[str, Any], old: dict[str, Any] | None, parts: PodParts) -> bool:
    """Whether an UPDATE of ``old`` into ``obj`` (whose pods are ``parts``) can start no code that was not
    already admitted: the object is being deleted (its finalizers are being removed), or every image it
    names was in the old object. Controllers and operators relabel, annotate, scale and finalize objects
    all the time; judging those again would let a policy tightened since (or a break-glass annotation
    removed) block rollouts and deletions. Pods made from a changed template are judged when created."""
    meta = obj.get("metadata")
    if isinstance(meta, dict) and meta.get("deletionTimestamp"):
        return True
    if old is None:
        return False
    before = pod_parts(kind, old, "request.oldObject")
    return before is not None and {c.image for c in parts.images} <= {c.image for c in before.images}
