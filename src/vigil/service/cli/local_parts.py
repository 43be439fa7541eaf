"""Which of `vigil up`'s parts can start on this machine, and the one line that says why one cannot.

Pure: every function decides over facts the caller observed (the effective uid, whether kernel BTF
exists, a parsed kubeconfig), so each reason is tested without changing the machine.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

BTF_PATH = Path("/sys/kernel/btf/vmlinux")
# What the service accepts as a cluster name (POST /api/v1/clusters/register).
_NAME_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


class PartUnavailable(Exception):
    """A part cannot start; the message is the reason, in one line."""


def sensor_blocker(requested: bool, euid: int, btf_present: bool, btf_path: Path = BTF_PATH) -> str | None:
    """Why this host's sensor cannot start, or None when it can."""
    if not requested:
        return "off (--no-sensor)"
    if euid != 0:
        return "not running as root (the eBPF sensor needs root)"
    if not btf_present:
        return f"no kernel BTF at {btf_path} (the CO-RE sensor needs a kernel built with CONFIG_DEBUG_INFO_BTF=y)"
    return None


def cluster_name(text: str, fallback: str = "local") -> str:
    """``text`` (a kubeconfig context, a host name) as a cluster name the service accepts."""
    name = _NAME_CHARS.sub("-", text).strip("-._")[:253]
    return name or fallback


# Kubernetes' names for the machine's architectures (GOARCH), so a host shows as a node would.
_ARCHITECTURES = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386", "ppc64le": "ppc64le"}


def architecture(machine: str) -> str:
    """``platform.machine()`` as a node's ``architecture``."""
    return _ARCHITECTURES.get(machine, machine)


def os_image(os_release: str) -> str:
    """PRETTY_NAME from the text of /etc/os-release, as the kubelet reports a node's OS image."""
    for line in os_release.splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "PRETTY_NAME":
            return value.strip().strip("\"'")
    return ""


def chosen_kubeconfig(value: str | None) -> Path:
    """The kubeconfig file named by ``--kubeconfig`` or ``KUBECONFIG`` (a list: its first existing file)."""
    if not value:
        raise PartUnavailable("no kubeconfig (give --kubeconfig or set KUBECONFIG)")
    paths = [Path(p).expanduser() for p in value.split(os.pathsep) if p]
    if not paths:
        raise PartUnavailable("no kubeconfig (give --kubeconfig or set KUBECONFIG)")
    existing = [p for p in paths if p.is_file()]
    if not existing:
        raise PartUnavailable(f"kubeconfig {value} does not exist")
    return existing[0]


@dataclass(frozen=True)
class KubeTarget:
    """The API server a kubeconfig's context points at."""

    kubeconfig: Path
    context: str
    server: str
    host: str
    port: int


def kube_target(kubeconfig: Path, doc: Any) -> KubeTarget:
    """The current context's API server in the parsed kubeconfig ``doc``; the reason when there is none."""
    where = f"kubeconfig {kubeconfig}"
    if not isinstance(doc, dict):
        raise PartUnavailable(f"{where} is not a kubeconfig (no mapping at the top)")
    context = doc.get("current-context")
    if not isinstance(context, str) or not context:
        raise PartUnavailable(f"{where} has no current-context")
    ctx = _named(doc.get("contexts"), context, "context")
    cluster_ref = ctx.get("cluster") if isinstance(ctx, dict) else None
    if ctx is None or not isinstance(cluster_ref, str):
        raise PartUnavailable(f"{where}: context {context!r} is not defined or names no cluster")
    cluster = _named(doc.get("clusters"), cluster_ref, "cluster")
    server = cluster.get("server") if isinstance(cluster, dict) else None
    if not isinstance(server, str) or not server:
        raise PartUnavailable(f"{where}: cluster {cluster_ref!r} has no server")
    parts = urlsplit(server)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PartUnavailable(f"{where}: server {server!r} is not an http(s) URL")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise PartUnavailable(f"{where}: server {server!r} has a bad port") from None
    return KubeTarget(kubeconfig, context, server, parts.hostname, port)


def _named(items: Any, name: str, key: str) -> Any:
    """The ``key`` body of the entry called ``name`` in a kubeconfig list (contexts, clusters)."""
    if not isinstance(items, list):
        return None
    for item in items:
        if isinstance(item, dict) and item.get("name") == name:
            return item.get(key)
    return None
