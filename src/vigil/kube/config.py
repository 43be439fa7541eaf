"""Where the Kubernetes API server is and how to prove who we are: a pod's service account, or a kubeconfig.

Reading a kubeconfig is pure apart from reading the files it names; every refusal names the file, the
context and the field, because a controller that cannot start says why or it is not debuggable.

Supported, as kubectl reads them: clusters with ``server``, ``certificate-authority(-data)``,
``insecure-skip-tls-verify`` and ``tls-server-name``; users with ``token``, ``tokenFile``,
``client-certificate(-data)`` + ``client-key(-data)``, ``username``/``password`` and ``exec`` credential
plugins (``client.authentication.k8s.io`` v1 and v1beta1). Refused with a message: ``auth-provider``
(removed from kubectl; use an exec plugin) and ``proxy-url``. Of ``$KUBECONFIG``'s list the first existing
file is read; kubectl would merge them.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
# Bounds on what a kubeconfig may hold: it is the operator's file, but a wrong path must not read a disk.
MAX_KUBECONFIG_BYTES = 4 << 20
EXEC_API_VERSIONS = ("client.authentication.k8s.io/v1", "client.authentication.k8s.io/v1beta1")


class KubeConfigError(ValueError):
    """The kubeconfig or the pod's service account cannot be used; the message says where and why."""


@dataclass(frozen=True)
class ExecPlugin:
    """A credential plugin kubectl would run (``users[].user.exec``)."""

    command: str
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    api_version: str = EXEC_API_VERSIONS[0]
    provide_cluster_info: bool = False
    install_hint: str = ""


@dataclass(frozen=True)
class KubeConnection:
    """Everything needed to reach one API server as one identity."""

    server: str
    source: str  # where this came from, for messages: "in-cluster" or "<file>, context <name>"
    namespace: str = "default"
    ca_file: Path | None = None
    ca_data: bytes | None = None
    insecure: bool = False
    tls_server_name: str | None = None
    client_cert_file: Path | None = None
    client_key_file: Path | None = None
    client_cert_data: bytes | None = None
    client_key_data: bytes | None = None
    token: str | None = None
    token_file: Path | None = None
    basic_auth: tuple[str, str] | None = field(default=None, repr=False)
    exec_plugin: ExecPlugin | None = None

    def __repr__(self) -> str:  # never a token or key in a log line
        return f"KubeConnection(server={self.server!r}, source={self.source!r})"


def runs_in_cluster(kubeconfig: Path | None) -> bool:
    """In a pod, with no kubeconfig asked for: the service account is how to reach the API."""
    return kubeconfig is None and (SERVICE_ACCOUNT / "token").exists()


def kubeconfig_path(kubeconfig: Path | None) -> Path:
    """The file kubectl would read: the one given, else ``$KUBECONFIG``'s first existing entry, else ~/.kube/config."""
    if kubeconfig is not None:
        return kubeconfig
    listed = [Path(p) for p in os.environ.get("KUBECONFIG", "").split(os.pathsep) if p]
    for p in listed:
        if p.exists():
            return p
    return listed[0] if listed else Path.home() / ".kube" / "config"


def default_namespace(kubeconfig: Path | None, context: str | None = None) -> str:
    """The pod's own namespace in-cluster; else the kubeconfig context's namespace; else "default"."""
    if runs_in_cluster(kubeconfig):
        return (SERVICE_ACCOUNT / "namespace").read_text(encoding="utf-8").strip() or "default"
    try:
        doc = _read_doc(kubeconfig_path(kubeconfig))
    except KubeConfigError:
        return "default"
    wanted = context or doc.get("current-context")
    entry = _named(doc, "contexts", "context", wanted) if isinstance(wanted, str) else None
    return str((entry or {}).get("namespace") or "default")


def load_connection(
    kubeconfig: Path | None, context: str | None = None, in_cluster: bool | None = None
) -> KubeConnection:
    """The pod's service account (in a pod, no kubeconfig given), else the kubeconfig's context."""
    if in_cluster or (in_cluster is None and runs_in_cluster(kubeconfig)):
        return in_cluster_connection()
    return kubeconfig_connection(kubeconfig_path(kubeconfig), context)


def in_cluster_connection(environ: Mapping[str, str] | None = None) -> KubeConnection:
    env = os.environ if environ is None else environ
    host, port = env.get("KUBERNETES_SERVICE_HOST", ""), env.get("KUBERNETES_SERVICE_PORT", "")
    if not host or not port:
        raise KubeConfigError(
            "in-cluster: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set; "
            "outside a pod give --kubeconfig"
        )
    token = SERVICE_ACCOUNT / "token"
    if not token.exists():
        raise KubeConfigError(f"in-cluster: the service account token {token} does not exist")
    ca = SERVICE_ACCOUNT / "ca.crt"
    namespace_file = SERVICE_ACCOUNT / "namespace"
    namespace = namespace_file.read_text(encoding="utf-8").strip() if namespace_file.exists() else ""
    # An IPv6 service address needs brackets in a URL.
    server_host = f"[{host}]" if ":" in host else host
    return KubeConnection(
        server=f"https://{server_host}:{port}",
        source="in-cluster",
        namespace=namespace or "default",
        ca_file=ca if ca.exists() else None,
        # The kubelet rotates bound service account tokens: read the file again, never keep the first.
        token_file=token,
    )


def kubeconfig_connection(path: Path, context: str | None = None) -> KubeConnection:
    doc = _read_doc(path)
    wanted = context or doc.get("current-context")
    if not isinstance(wanted, str) or not wanted:
        raise KubeConfigError(f"{path}: no context is given and the file has no current-context")
    where = f"{path}, context {wanted!r}"
    ctx = _named(doc, "contexts", "context", wanted)
    if ctx is None:
        raise KubeConfigError(f"{path}: there is no context named {wanted!r}")
    cluster_name, user_name = ctx.get("cluster"), ctx.get("user")
    if not isinstance(cluster_name, str) or not cluster_name:
        raise KubeConfigError(f"{where}: context.cluster is missing")
    cluster = _named(doc, "clusters", "cluster", cluster_name)
    if cluster is None:
        raise KubeConfigError(f"{where}: there is no cluster named {cluster_name!r}")
    user: dict[str, Any] = {}
    if isinstance(user_name, str) and user_name:
        found = _named(doc, "users", "user", user_name)
        if found is None:
            raise KubeConfigError(f"{where}: there is no user named {user_name!r}")
        user = found
    base = path.parent
    server = cluster.get("server")
    if not isinstance(server, str) or not server.startswith(("https://", "http://")):
        raise KubeConfigError(f"{where}: cluster.server must be an http(s):// URL, not {server!r}")
    if cluster.get("proxy-url"):
        raise KubeConfigError(f"{where}: cluster.proxy-url is not supported; reach the API server directly")
    if user.get("auth-provider"):
        raise KubeConfigError(
            f"{where}: user.auth-provider is not supported (kubectl removed it too); use an exec credential plugin"
        )
    cert_file, cert_data = _file_or_data(user, "client-certificate", base, where)
    key_file, key_data = _file_or_data(user, "client-key", base, where)
    if bool(cert_file or cert_data) != bool(key_file or key_data):
        raise KubeConfigError(f"{where}: user.client-certificate and user.client-key must be given together")
    ca_file, ca_data = _file_or_data(cluster, "certificate-authority", base, where)
    token = user.get("token")
    token_file = user.get("tokenFile")
    username, password = user.get("username"), user.get("password")
    basic = (str(username), str(password)) if username and password is not None else None
    tls_name = cluster.get("tls-server-name")
    namespace = ctx.get("namespace")
    return KubeConnection(
        server=server.rstrip("/"),
        source=where,
        namespace=namespace if isinstance(namespace, str) and namespace else "default",
        ca_file=ca_file,
        ca_data=ca_data,
        insecure=cluster.get("insecure-skip-tls-verify") is True,
        tls_server_name=tls_name if isinstance(tls_name, str) and tls_name else None,
        client_cert_file=cert_file,
        client_key_file=key_file,
        client_cert_data=cert_data,
        client_key_data=key_data,
        token=str(token) if token else None,
        token_file=_relative(base, str(token_file)) if token_file else None,
        basic_auth=basic,
        exec_plugin=_exec_plugin(user.get("exec"), base, where),
    )


def _read_doc(path: Path) -> dict[str, Any]:
    try:
        size = path.stat().st_size
        if size > MAX_KUBECONFIG_BYTES:
            raise KubeConfigError(f"{path}: a kubeconfig of {size} bytes is over the {MAX_KUBECONFIG_BYTES} limit")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise KubeConfigError(f"{path}: no such kubeconfig file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise KubeConfigError(f"{path}: cannot read the kubeconfig: {exc}") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise KubeConfigError(f"{path}: not YAML: {exc}") from None
    if not isinstance(doc, dict):
        raise KubeConfigError(f"{path}: a kubeconfig is a mapping with clusters, users and contexts")
    return doc


def _named(doc: Mapping[str, Any], section: str, key: str, name: str) -> dict[str, Any] | None:
    for entry in doc.get(section) or []:
        if isinstance(entry, dict) and entry.get("name") == name:
            body = entry.get(key)
            return body if isinstance(body, dict) else {}
    return None


def _relative(base: Path, name: str) -> Path:
    p = Path(name).expanduser()
    return p if p.is_absolute() else base / p


def _file_or_data(section: Mapping[str, Any], key: str, base: Path, where: str) -> tuple[Path | None, bytes | None]:
    data = section.get(f"{key}-data")
    if data:
        try:
            return None, base64.b64decode(str(data), validate=True)
        except (binascii.Error, ValueError):
            raise KubeConfigError(f"{where}: {key}-data is not base64") from None
    name = section.get(key)
    if name:
        p = _relative(base, str(name))
        if not p.is_file():
            raise KubeConfigError(f"{where}: {key} {p} is not a file")
        return p, None
    return None, None


def _exec_plugin(spec: Any, base: Path, where: str) -> ExecPlugin | None:
    if not spec:
        return None
    if not isinstance(spec, dict):
        raise KubeConfigError(f"{where}: user.exec must be a mapping")
    api_version = spec.get("apiVersion")
    if api_version not in EXEC_API_VERSIONS:
        raise KubeConfigError(
            f"{where}: user.exec.apiVersion {api_version!r} is not one of {', '.join(EXEC_API_VERSIONS)}"
        )
    command = spec.get("command")
    if not isinstance(command, str) or not command:
        raise KubeConfigError(f"{where}: user.exec.command is missing")
    if os.sep in command:  # as kubectl: a command with a path is relative to the kubeconfig, a bare one is on PATH
        command = str(_relative(base, command))
    args = spec.get("args") or []
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise KubeConfigError(f"{where}: user.exec.args must be a list of strings")
    env: list[tuple[str, str]] = []
    for item in spec.get("env") or []:
        if not (isinstance(item, dict) and isinstance(item.get("name"), str) and isinstance(item.get("value"), str)):
            raise KubeConfigError(f"{where}: user.exec.env entries are {{name, value}} strings")
        env.append((item["name"], item["value"]))
    return ExecPlugin(
        command=command,
        args=tuple(args),
        env=tuple(env),
        api_version=api_version,
        provide_cluster_info=spec.get("provideClusterInfo") is True,
        install_hint=str(spec.get("installHint") or ""),
    )
