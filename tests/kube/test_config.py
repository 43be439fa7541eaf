"""Reading a kubeconfig and the pod's service account: what kubectl would use, and exact refusals."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
import yaml

from vigil.kube.config import (
    ExecPlugin,
    KubeConfigError,
    default_namespace,
    in_cluster_connection,
    kubeconfig_connection,
    kubeconfig_path,
)


def write(tmp_path: Path, cluster: dict, user: dict, context: dict | None = None, **top) -> Path:
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": cluster}],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "u", **(context or {})}}],
        "current-context": "ctx",
        **top,
    }
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_token_and_inline_ca_and_namespace(tmp_path):
    ca = b"-----BEGIN CERTIFICATE-----\nabc\n-----END CERTIFICATE-----\n"
    path = write(
        tmp_path,
        {"server": "https://10.0.0.1:6443/", "certificate-authority-data": base64.b64encode(ca).decode()},
        {"token": "s3cret"},
        {"namespace": "ops"},
    )
    conn = kubeconfig_connection(path)
    assert (conn.server, conn.ca_data, conn.token, conn.namespace) == ("https://10.0.0.1:6443", ca, "s3cret", "ops")
    assert conn.source == f"{path}, context 'ctx'"
    assert "s3cret" not in repr(conn)  # connections are logged; tokens never are


def test_files_are_relative_to_the_kubeconfig(tmp_path):
    (tmp_path / "ca.pem").write_text("x")
    (tmp_path / "c.pem").write_text("x")
    (tmp_path / "k.pem").write_text("x")
    path = write(
        tmp_path,
        {"server": "https://api", "certificate-authority": "ca.pem", "tls-server-name": "kubernetes"},
        {"client-certificate": "c.pem", "client-key": "k.pem", "tokenFile": "tok"},
    )
    conn = kubeconfig_connection(path)
    assert conn.ca_file == tmp_path / "ca.pem"
    assert (conn.client_cert_file, conn.client_key_file) == (tmp_path / "c.pem", tmp_path / "k.pem")
    assert conn.token_file == tmp_path / "tok"
    assert conn.tls_server_name == "kubernetes"


def test_exec_plugin_is_read_as_kubectl_reads_it(tmp_path):
    path = write(
        tmp_path,
        {"server": "https://api"},
        {
            "exec": {
                "apiVersion": "client.authentication.k8s.io/v1beta1",
                "command": "bin/get-token",
                "args": ["--cluster", "prod"],
                "env": [{"name": "REGION", "value": "eu"}],
                "provideClusterInfo": True,
                "installHint": "install get-token",
            }
        },
    )
    assert kubeconfig_connection(path).exec_plugin == ExecPlugin(
        command=str(tmp_path / "bin/get-token"),
        args=("--cluster", "prod"),
        env=(("REGION", "eu"),),
        api_version="client.authentication.k8s.io/v1beta1",
        provide_cluster_info=True,
        install_hint="install get-token",
    )


@pytest.mark.parametrize(
    ("cluster", "user", "context", "message"),
    [
        ({"server": "api:6443"}, {}, None, "cluster.server must be an http(s):// URL, not 'api:6443'"),
        ({"server": "https://a", "proxy-url": "http://p"}, {}, None, "cluster.proxy-url is not supported"),
        (
            {"server": "https://a"},
            {"auth-provider": {"name": "gcp"}},
            None,
            "user.auth-provider is not supported (kubectl removed it too); use an exec credential plugin",
        ),
        (
            {"server": "https://a"},
            {"client-certificate-data": "eA=="},
            None,
            "user.client-certificate and user.client-key must be given together",
        ),
        (
            {"server": "https://a", "certificate-authority-data": "%%"},
            {},
            None,
            "certificate-authority-data is not base64",
        ),
        ({"server": "https://a", "certificate-authority": "nope.pem"}, {}, None, "certificate-authority "),
        (
            {"server": "https://a"},
            {"exec": {"apiVersion": "client.authentication.k8s.io/v1alpha1", "command": "x"}},
            None,
            "user.exec.apiVersion 'client.authentication.k8s.io/v1alpha1' is not one of",
        ),
        ({"server": "https://a"}, {}, {"cluster": "other"}, "there is no cluster named 'other'"),
    ],
)
def test_refusals_name_the_file_context_and_field(tmp_path, cluster, user, context, message):
    path = write(tmp_path, cluster, user, context)
    with pytest.raises(KubeConfigError) as err:
        kubeconfig_connection(path)
    assert str(err.value).startswith(f"{path}, context 'ctx': ")
    assert message in str(err.value)


def test_missing_file_context_and_not_yaml(tmp_path):
    with pytest.raises(KubeConfigError, match=r"no such kubeconfig file"):
        kubeconfig_connection(tmp_path / "absent")
    path = write(tmp_path, {"server": "https://a"}, {})
    with pytest.raises(KubeConfigError) as err:
        kubeconfig_connection(path, "prod")
    assert str(err.value) == f"{path}: there is no context named 'prod'"
    path.write_text("- a list\n")
    with pytest.raises(KubeConfigError) as err:
        kubeconfig_connection(path)
    assert str(err.value) == f"{path}: a kubeconfig is a mapping with clusters, users and contexts"


def test_kubeconfig_env_first_existing_entry(tmp_path, monkeypatch):
    there = write(tmp_path, {"server": "https://a"}, {}, {"namespace": "team"})
    monkeypatch.setenv("KUBECONFIG", f"{tmp_path / 'missing'}:{there}")
    assert kubeconfig_path(None) == there
    assert default_namespace(None) == "team"


def test_in_cluster_needs_the_service_environment(tmp_path, monkeypatch):
    sa = tmp_path / "sa"
    sa.mkdir()
    (sa / "token").write_text("t\n")
    (sa / "ca.crt").write_text("x")
    (sa / "namespace").write_text("vigil-system\n")
    monkeypatch.setattr("vigil.kube.config.SERVICE_ACCOUNT", sa)
    with pytest.raises(KubeConfigError) as err:
        in_cluster_connection({})
    assert str(err.value) == (
        "in-cluster: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set; outside a pod give --kubeconfig"
    )
    conn = in_cluster_connection({"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "443"})
    assert (conn.server, conn.namespace, conn.ca_file, conn.token_file, conn.token) == (
        "https://[fd00::1]:443",
        "vigil-system",
        sa / "ca.crt",
        sa / "token",
        None,
    )
