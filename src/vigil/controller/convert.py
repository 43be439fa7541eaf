"""Kubernetes objects (raw JSON dicts) -> inventory wire models (pure).

Raw dicts rather than generated client models: a 10,000-pod list parses with orjson
in a fraction of the time, and odd objects (no status, null labels) stay readable.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any, get_args

from pydantic import ValidationError

from vigil.model.image import digest_from_image_id
from vigil.wire.inventory import Container, Node, NodeCondition, OwnerRef, Pod, PodPhase, SecurityFacts

log = logging.getLogger(__name__)

_PHASES: dict[str, PodPhase] = {p: p for p in get_args(PodPhase)}
_CONDITION_STATUSES = {"True", "False", "Unknown"}
_CONTAINER_LISTS = (
    ("init", "initContainers", "initContainerStatuses"),
    ("regular", "containers", "containerStatuses"),
    ("ephemeral", "ephemeralContainers", "ephemeralContainerStatuses"),
)


class ConversionError(ValueError):
    """An object that cannot become a wire model; the message names the object and why."""


def describe(obj: Any) -> str:
    """A short, secret-free description of an object for log lines: kind, namespace/name and keys."""
    if not isinstance(obj, dict):
        return f"<{type(obj).__name__}>"
    meta = _dict(obj.get("metadata"))
    where = "/".join(str(p) for p in (meta.get("namespace"), meta.get("name")) if p)
    return f"{obj.get('kind', '?')} {where or '<no name>'} (keys: {', '.join(sorted(map(str, obj)))})"


def string_map(value: Any) -> dict[str, str]:
    """Labels as str->str; a null value (seen in real objects) becomes the empty string."""
    if not isinstance(value, dict):
        return {}
    return {str(k): "" if v is None else str(v) for k, v in value.items()}


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def node_to_wire(obj: Mapping[str, Any]) -> Node:
    meta = _dict(obj.get("metadata"))
    info = _dict(_dict(obj.get("status")).get("nodeInfo"))
    conditions = []
    for cond in _list(_dict(obj.get("status")).get("conditions")):
        if isinstance(cond, dict) and cond.get("type") and cond.get("status") in _CONDITION_STATUSES:
            conditions.append(NodeCondition(type=str(cond["type"]), status=cond["status"]))
        else:
            log.warning(
                "node %s: condition %r skipped: needs a type and a True/False/Unknown status", meta.get("name"), cond
            )
    try:
        return Node(
            name=str(meta.get("name") or ""),
            labels=string_map(meta.get("labels")),
            kernel_version=str(info.get("kernelVersion") or ""),
            os_image=str(info.get("osImage") or ""),
            container_runtime=str(info.get("containerRuntimeVersion") or ""),
            architecture=str(info.get("architecture") or ""),
            kubelet_version=str(info.get("kubeletVersion") or ""),
            conditions=conditions,
        )
    except ValidationError as exc:
        raise ConversionError(f"{describe(obj)}: {_errors(exc)}") from None


def _state(status: Mapping[str, Any]) -> str:
    state = _dict(status.get("state"))
    for name in ("running", "waiting", "terminated"):
        if name in state:
            return name
    return "unknown"


def _container(pod_name: str, kind: str, spec: Mapping[str, Any], status: Mapping[str, Any]) -> Container | None:
    name = str(spec.get("name") or status.get("name") or "")
    image = str(spec.get("image") or status.get("image") or "")
    if not name or not image:
        log.warning(
            "pod %s: %s container %r skipped: it has no %s", pod_name, kind, name, "name" if not name else "image"
        )
        return None
    image_id = str(status.get("imageID") or "")
    container_id = status.get("containerID") or None
    try:
        return Container(
            name=name,
            kind=kind,  # type: ignore[arg-type]
            image=image,
            image_id=image_id,
            image_digest=digest_from_image_id(image_id),
            container_id=container_id,
            state=_state(status),  # type: ignore[arg-type]
            restart_count=int(status.get("restartCount") or 0),
        )
    except (ValidationError, ValueError, TypeError) as exc:
        detail = _errors(exc) if isinstance(exc, ValidationError) else str(exc)
        log.warning("pod %s: %s container %s: %s; reported without its runtime facts", pod_name, kind, name, detail)
        return Container(name=name, kind=kind, image=image, image_id=image_id[:1024])  # type: ignore[arg-type]


def containers(pod: Mapping[str, Any]) -> list[Container]:
    spec, status = _dict(pod.get("spec")), _dict(pod.get("status"))
    pod_name = "/".join(
        str(x) for x in (_dict(pod.get("metadata")).get("namespace"), _dict(pod.get("metadata")).get("name"))
    )
    out: list[Container] = []
    for kind, spec_key, status_key in _CONTAINER_LISTS:
        statuses = {s.get("name"): s for s in _list(status.get(status_key)) if isinstance(s, dict)}
        named = set()
        for c in _list(spec.get(spec_key)):
            if not isinstance(c, dict):
                continue
            named.add(c.get("name"))
            made = _container(pod_name, kind, c, statuses.get(c.get("name"), {}))
            if made is not None:
                out.append(made)
        for sname, s in statuses.items():
            if sname not in named:
                log.warning(
                    "pod %s: %s container status %r has no spec; reported from its status", pod_name, kind, sname
                )
                made = _container(pod_name, kind, {}, s)
                if made is not None:
                    out.append(made)
    return out


def _all_container_specs(spec: Mapping[str, Any]) -> Iterable[dict[str, Any]]:
    for _, key, _ in _CONTAINER_LISTS:
        for c in _list(spec.get(key)):
            if isinstance(c, dict):
                yield c


def security_facts(spec: Mapping[str, Any]) -> SecurityFacts:
    """Risk facts, pod and container level; a container's own setting overrides the pod's."""
    pod_sc = _dict(spec.get("securityContext"))
    privileged = False
    caps: list[str] = []
    non_root: list[bool | None] = []
    users: list[int | None] = []
    for c in _all_container_specs(spec):
        sc = _dict(c.get("securityContext"))
        privileged = privileged or sc.get("privileged") is True
        for cap in _list(_dict(sc.get("capabilities")).get("add")):
            if isinstance(cap, str) and cap not in caps:
                caps.append(cap)
        non_root.append(
            sc["runAsNonRoot"]
            if isinstance(sc.get("runAsNonRoot"), bool)
            else pod_sc.get("runAsNonRoot")
            if isinstance(pod_sc.get("runAsNonRoot"), bool)
            else None
        )
        user = sc.get("runAsUser", pod_sc.get("runAsUser"))
        users.append(user if isinstance(user, int) and not isinstance(user, bool) else None)
    if not non_root:
        non_root = [pod_sc.get("runAsNonRoot") if isinstance(pod_sc.get("runAsNonRoot"), bool) else None]
    if False in non_root:
        run_as_non_root: bool | None = False
    elif non_root and all(v is True for v in non_root):
        run_as_non_root = True
    else:
        run_as_non_root = None
    # The riskiest account wins: any container as root makes the pod root; an unset one is unknown.
    if 0 in users:
        run_as_user: int | None = 0
    elif not users or None in users:
        run_as_user = None
    else:
        run_as_user = min(u for u in users if u is not None)
    return SecurityFacts(
        privileged=privileged,
        host_pid=spec.get("hostPID") is True,
        host_network=spec.get("hostNetwork") is True,
        host_ipc=spec.get("hostIPC") is True,
        run_as_non_root=run_as_non_root,
        run_as_user=run_as_user,
        added_capabilities=caps[:64],
    )


def pod_to_wire(obj: Mapping[str, Any], workload_kind: str, workload_name: str) -> Pod:
    meta = _dict(obj.get("metadata"))
    spec = _dict(obj.get("spec"))
    status = _dict(obj.get("status"))
    if not meta.get("uid"):
        raise ConversionError(f"{describe(obj)}: metadata.uid is missing")
    raw_phase = status.get("phase")
    phase = _PHASES.get(raw_phase) if isinstance(raw_phase, str) else None
    if phase is None:
        if raw_phase is not None:
            log.warning("%s: phase %r is not a known pod phase; reported as Unknown", describe(obj), raw_phase)
        phase = "Unknown"
    try:
        return Pod(
            uid=str(meta["uid"]),
            namespace=str(meta.get("namespace") or ""),
            name=str(meta.get("name") or ""),
            node_name=spec.get("nodeName") or None,
            phase=phase,
            service_account=str(spec.get("serviceAccountName") or spec.get("serviceAccount") or ""),
            workload=OwnerRef(kind=workload_kind, name=workload_name),
            labels=string_map(meta.get("labels")),
            security=security_facts(spec),
            containers=containers(obj),
        )
    except ValidationError as exc:
        raise ConversionError(f"{describe(obj)}: {_errors(exc)}") from None


def _errors(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
