"""Which container and pod a cgroup path belongs to.

Each container runtime and cgroup driver names cgroups its own way. Every
known way is one small parser registered in ``RUNTIME_LAYOUTS``; the first
that recognises a path wins, and a path none recognises is the host's.
The functions here are pure: they read no files.

Shapes recognised (``<id>`` is a 64-hex container id, ``<uid>`` a pod uid,
written with underscores instead of dashes under the systemd driver)::

  kubelet, cgroupfs driver   /kubepods[/burstable|/besteffort]/pod<uid>/<id>
                             /kubepods/burstable/pod<uid>/crio-<id>     (CRI-O)
  kubelet, systemd driver    /kubepods.slice/kubepods-burstable.slice/
                               kubepods-burstable-pod<uid>.slice/cri-containerd-<id>.scope
                             .../crio-<id>.scope                         (CRI-O)
                             .../docker-<id>.scope                       (dockershim)
  Docker                     /docker/<id>, /system.slice/docker-<id>.scope
  Podman                     /machine.slice/libpod-<id>.scope
  containerd (ctr, nerdctl)  /<namespace>/<id>
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

_HEX64 = re.compile(r"[0-9a-f]{64}\Z")
_POD_UID = re.compile(r"[0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12}\Z")
# cgroupfs: "pod<uid>"; systemd: "kubepods-<qos>-pod<uid_>.slice" or "kubepods-pod<uid_>.slice",
# possibly behind a prefix such as "kubelet-" (kind, nested kubelets).
_POD_COMPONENT = re.compile(r"(?:.*-)?pod(?P<uid>[0-9a-f_-]{36})(?:\.slice)?\Z")
# Prefix of a container's scope or directory name -> runtime name. conmon's
# own scopes ("crio-conmon-<id>.scope", "libpod-conmon-<id>.scope") are the
# runtime's helper, not the container, and are deliberately absent.
_SCOPE_PREFIXES = {
    "cri-containerd-": "containerd",
    "crio-": "cri-o",
    "docker-": "docker",
    "libpod-": "podman",
}


@dataclass(frozen=True)
class Attribution:
    """Where a process runs: a container (with its pod when under a kubelet) or the host."""

    layout: str
    runtime: str | None = None
    container_id: str | None = None
    pod_uid: str | None = None
    qos_class: str | None = None

    @property
    def is_host(self) -> bool:
        return self.container_id is None and self.pod_uid is None

    @property
    def container_ref(self) -> str | None:
        """The runtime-prefixed id, as Kubernetes reports it (containerd://<id>)."""
        if self.container_id is None:
            return None
        return f"{self.runtime or 'unknown'}://{self.container_id}"


HOST = Attribution(layout="host")


def _split(path: str) -> list[str]:
    return [c for c in path.split("/") if c]


def _scoped_id(component: str) -> tuple[str, str] | None:
    """(runtime, id) from 'cri-containerd-<id>.scope', 'crio-<id>' and the like."""
    name = component.removesuffix(".scope")
    for prefix, runtime in _SCOPE_PREFIXES.items():
        if name.startswith(prefix) and _HEX64.match(name[len(prefix) :]):
            return runtime, name[len(prefix) :]
    return None


def _kubelet(parts: list[str], default_runtime: str) -> Attribution | None:
    """Pods under a kubelet, either cgroup driver: find pod<uid>, the container follows it."""
    for i, comp in enumerate(parts):
        m = _POD_COMPONENT.match(comp)
        if not m or not _POD_UID.match(m["uid"]) or not any("kubepods" in p for p in parts[: i + 1]):
            continue
        uid = m["uid"].replace("_", "-")
        qos = next((q for q in ("burstable", "besteffort") if any(q in p for p in parts[: i + 1])), "guaranteed")
        if i + 1 >= len(parts):
            return Attribution("kubelet", pod_uid=uid, qos_class=qos)
        child = parts[i + 1]
        scoped = _scoped_id(child)
        if scoped:
            return Attribution("kubelet", runtime=scoped[0], container_id=scoped[1], pod_uid=uid, qos_class=qos)
        if _HEX64.match(child):
            return Attribution("kubelet", runtime=default_runtime, container_id=child, pod_uid=uid, qos_class=qos)
        return Attribution("kubelet", pod_uid=uid, qos_class=qos)
    return None


def _systemd_scope(parts: list[str], default_runtime: str) -> Attribution | None:
    """Containers outside Kubernetes under the systemd driver: docker-<id>.scope, libpod-<id>.scope."""
    for comp in parts:
        scoped = _scoped_id(comp)
        if scoped:
            return Attribution("systemd-scope", runtime=scoped[0], container_id=scoped[1])
    return None


def _docker_cgroupfs(parts: list[str], default_runtime: str) -> Attribution | None:
    for i, comp in enumerate(parts[:-1]):
        if comp == "docker" and _HEX64.match(parts[i + 1]):
            return Attribution("docker", runtime="docker", container_id=parts[i + 1])
    return None


def _containerd_namespace(parts: list[str], default_runtime: str) -> Attribution | None:
    """ctr/nerdctl's default: /<containerd namespace>/<id>."""
    if len(parts) >= 2 and _HEX64.match(parts[1]) and not parts[0].endswith(".slice"):
        return Attribution("containerd-namespace", runtime="containerd", container_id=parts[1])
    return None


LayoutParser = Callable[[list[str], str], Attribution | None]

# Order matters: kubelet paths contain scope names the generic parsers also match.
RUNTIME_LAYOUTS: dict[str, LayoutParser] = {
    "kubelet": _kubelet,
    "docker": _docker_cgroupfs,
    "systemd-scope": _systemd_scope,
    "containerd-namespace": _containerd_namespace,
}


def attribute_cgroup_path(path: str, *, default_runtime: str = "containerd") -> Attribution:
    """The container (and pod) a cgroup path belongs to, or HOST.

    ``default_runtime`` names the runtime for layouts that carry a bare id
    (the kubelet's cgroupfs driver): the node's CRI runtime.
    """
    parts = _split(path)
    for parser in RUNTIME_LAYOUTS.values():
        found = parser(parts, default_runtime)
        if found is not None:
            return found
    return HOST


def proc_cgroup_paths(text: str) -> list[str]:
    """Paths from /proc/<pid>/cgroup, the unified hierarchy's first, then each v1 hierarchy's."""
    unified: list[str] = []
    v1: list[str] = []
    for line in text.splitlines():
        hier, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if not path:
            continue
        (unified if hier == "0" and controllers == "" else v1).append(path)
    return unified + v1


def attribute_proc_cgroup(text: str, *, default_runtime: str = "containerd") -> Attribution:
    """Attribution from a /proc/<pid>/cgroup file: a runtime may have joined only v1 hierarchies."""
    for path in proc_cgroup_paths(text):
        found = attribute_cgroup_path(path, default_runtime=default_runtime)
        if not found.is_host:
            return found
    return HOST
