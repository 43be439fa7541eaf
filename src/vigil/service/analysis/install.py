"""How a cluster is connected: the `helm upgrade --install` command and the manifest for one cluster (pure).

The registration token never appears on a command line (a shell's history and ``ps`` would show it):
the Helm command reads it from a file (``--set-file``), and the manifest holds it in a Secret for the
static manifests in ``deploy/manifests/secured-cluster``. The chart's values are those of
``deploy/helm/vigil/values.yaml``.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

import yaml

CHART = "deploy/helm/vigil"
STATIC_MANIFESTS = "deploy/manifests/secured-cluster"
RELEASE = "vigil"
NAMESPACE = "vigil-system"  # the chart's namespaces.main
# The Secret the static manifests' controller reads (keys service-url, cluster-name, registration-token).
CONTROLLER_SECRET = "vigil-controller"
_SAFE_FILE = re.compile(r"[^A-Za-z0-9._-]")


def token_file_name(cluster_name: str) -> str:
    """Where the token is written for the command to read: a name of its own per cluster."""
    return f"vigil-registration-{_SAFE_FILE.sub('_', cluster_name)}.token"


def _set_value(value: str) -> str:
    # Helm's --set splits on commas and reads backslashes as escapes.
    return value.replace("\\", "\\\\").replace(",", "\\,")


def helm_command(cluster_name: str, service_url: str, token_file: str, service_ca_file: str | None = None) -> str:
    """The one command that installs the controller and the sensors of a secured cluster."""
    lines = [
        f"helm upgrade --install {RELEASE} {CHART}",
        "--set central.enabled=false",
        f"--set {shlex.quote('securedCluster.clusterName=' + _set_value(cluster_name))}",
        f"--set {shlex.quote('securedCluster.serviceUrl=' + _set_value(service_url))}",
        f"--set-file {shlex.quote('securedCluster.registrationToken=' + token_file)}",
    ]
    if service_ca_file:
        lines.append(f"--set-file {shlex.quote('securedCluster.serviceCA=' + service_ca_file)}")
    return " \\\n    ".join(lines)


def manifest(cluster_name: str, service_url: str, token: str) -> str:
    """A Secret with the controller's settings and token, to apply before the static manifests."""
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": CONTROLLER_SECRET,
            "namespace": NAMESPACE,
            "labels": {"app.kubernetes.io/name": "vigil", "app.kubernetes.io/component": "controller"},
        },
        "type": "Opaque",
        "stringData": {"service-url": service_url, "cluster-name": cluster_name, "registration-token": token},
    }
    header = (
        f"# Vigil: connect cluster {cluster_name} to {service_url}.\n"
        "# It holds a registration token: keep this file private and delete it once applied.\n"
        f"#   kubectl create namespace {NAMESPACE}\n"
        "#   kubectl apply -f THIS-FILE\n"
        f"#   kubectl apply -k {STATIC_MANIFESTS}\n"
        "# The controller then writes the sensors' credential Secret in vigil-sensor.\n"
    )
    return header + yaml.safe_dump(secret, sort_keys=False)


@dataclass(frozen=True)
class ConnectPlan:
    """What a person runs to connect one cluster."""

    cluster_name: str
    service_url: str
    token_file: str
    helm: str
    manifest: str
    manifest_file: str


def connect_plan(cluster_name: str, service_url: str, token: str, token_file: str | None = None,
                 service_ca_file: str | None = None) -> ConnectPlan:  # fmt: skip
    token_file = token_file or f"./{token_file_name(cluster_name)}"
    return ConnectPlan(
        cluster_name=cluster_name,
        service_url=service_url,
        token_file=token_file,
        helm=helm_command(cluster_name, service_url, token_file, service_ca_file),
        manifest=manifest(cluster_name, service_url, token),
        manifest_file=f"vigil-connect-{_SAFE_FILE.sub('_', cluster_name)}.yaml",
    )
