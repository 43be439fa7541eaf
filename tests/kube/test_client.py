"""The Kubernetes client against the project's test API server: TLS from the kubeconfig, bearer tokens from
the file, a token file and an exec credential plugin, renewal after a 401, and exact refusals."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import aiohttp
import pytest
import yaml

from vigil.admission.namespaces import NamespaceLabels
from vigil.devtools.kubeapi import KubeAPIServer
from vigil.kube.client import KubeClient
from vigil.kube.config import KubeConfigError, kubeconfig_connection

TIMEOUT = aiohttp.ClientTimeout(total=10)


@pytest.fixture
def kubeapi():
    with KubeAPIServer() as server:
        yield server


def rewrite_user(path: Path, user: dict) -> Path:
    doc = yaml.safe_load(path.read_text())
    doc["users"][0]["user"] = user
    path.write_text(yaml.safe_dump(doc))
    return path


async def status_of(client: KubeClient, path: str = "/api/v1/namespaces") -> int:
    resp = await client.request("GET", path, timeout=TIMEOUT)
    try:
        return resp.status
    finally:
        resp.release()


def run(coro):
    return asyncio.run(coro)


def test_token_from_the_kubeconfig_over_tls(kubeapi, tmp_path):
    conn = kubeconfig_connection(kubeapi.write_kubeconfig(tmp_path / "kc"))

    async def go():
        client = KubeClient(conn)
        try:
            return await status_of(client)
        finally:
            await client.close()

    assert run(go()) == 200
    rewrite_user(tmp_path / "kc", {"token": "wrong"})

    async def refused():
        client = KubeClient(kubeconfig_connection(tmp_path / "kc"))
        try:
            return await status_of(client)
        finally:
            await client.close()

    assert run(refused()) == 401


def test_a_token_file_is_read_again_after_a_401(kubeapi, tmp_path):
    token = tmp_path / "token"
    token.write_text("stale\n")
    kc = rewrite_user(kubeapi.write_kubeconfig(tmp_path / "kc"), {"tokenFile": "token"})

    async def go():
        client = KubeClient(kubeconfig_connection(kc))
        try:
            first = await status_of(client)
            token.write_text(kubeapi.token + "\n")  # the kubelet rotated the service account token
            second = await status_of(client)  # cached "stale" -> 401 -> file read again -> 200
            return first, second
        finally:
            await client.close()

    assert run(go()) == (401, 200)


def plugin(tmp_path: Path, body: str) -> Path:
    script = tmp_path / "get-token"
    script.write_text(f"#!{sys.executable}\n{body}\n")
    script.chmod(0o700)
    return script


def test_exec_plugin_token_with_cluster_info(kubeapi, tmp_path):
    seen = tmp_path / "exec-info.json"
    script = plugin(
        tmp_path,
        "import json, os, sys\n"
        f"open({str(seen)!r}, 'w').write(os.environ['KUBERNETES_EXEC_INFO'])\n"
        "print(json.dumps({'apiVersion': 'client.authentication.k8s.io/v1', 'kind': 'ExecCredential',"
        f" 'status': {{'token': os.environ['TOKEN'], 'expirationTimestamp': '2999-01-01T00:00:00Z'}}}}))",
    )
    kc = rewrite_user(
        kubeapi.write_kubeconfig(tmp_path / "kc"),
        {
            "exec": {
                "apiVersion": "client.authentication.k8s.io/v1",
                "command": str(script),
                "env": [{"name": "TOKEN", "value": kubeapi.token}],
                "provideClusterInfo": True,
            }
        },
    )

    async def go():
        client = KubeClient(kubeconfig_connection(kc))
        try:
            return await status_of(client), await status_of(client)
        finally:
            await client.close()

    assert run(go()) == (200, 200)
    info = json.loads(seen.read_text())
    assert info["kind"] == "ExecCredential" and info["spec"]["interactive"] is False
    assert info["spec"]["cluster"]["server"] == kubeapi.url


def test_a_failing_exec_plugin_says_which_and_why(kubeapi, tmp_path):
    script = plugin(tmp_path, "import sys\nsys.stderr.write('not logged in\\n')\nsys.exit(3)")
    kc = rewrite_user(
        kubeapi.write_kubeconfig(tmp_path / "kc"),
        {"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": str(script)}},
    )

    async def go():
        client = KubeClient(kubeconfig_connection(kc))
        try:
            await status_of(client)
        finally:
            await client.close()

    with pytest.raises(KubeConfigError) as err:
        run(go())
    assert (
        str(err.value)
        == f"{kc}, context 'vigil-test': the exec credential plugin {str(script)!r} exited 3: not logged in"
    )


def test_namespace_labels_for_admission(kubeapi, tmp_path):
    kubeapi.store.create(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "payments", "labels": {"team": "pay"}}}
    )
    kc = kubeapi.write_kubeconfig(tmp_path / "kc")

    async def go():
        labels = await NamespaceLabels.connect(kc)
        try:
            return await labels.labels("payments"), await labels.labels("absent")
        finally:
            await labels.close()

    found, absent = run(go())
    assert found["team"] == "pay"
    assert absent == {"kubernetes.io/metadata.name": "absent"}


def test_objects_are_written_as_json(kubeapi, tmp_path):
    from vigil.controller.kube import KubeApi

    kc = kubeapi.write_kubeconfig(tmp_path / "kc")
    kubeapi.store.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ops"}})

    async def go():
        api = KubeApi(kubeconfig_connection(kc))
        try:
            made = await api.request_object(
                "POST",
                "/api/v1/namespaces/ops/secrets",
                {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "stringData": {"k": "v"}},
            )
            patched = await api.request_object(
                "PATCH",
                "/api/v1/namespaces/ops/secrets/s",
                {"metadata": {"labels": {"a": "b"}}},
                "application/merge-patch+json",
            )
            return made, patched
        finally:
            await api.close()

    made, patched = run(go())
    assert made["metadata"]["name"] == "s" and patched["metadata"]["labels"] == {"a": "b"}
    assert patched["kind"] == "Secret"
