"""The controller writes the sensors' credential Secret (the test API server, real KubeApi calls)."""

from __future__ import annotations

import asyncio
import base64

from vigil.controller.credentials import ClusterCredential
from vigil.controller.sensor_secret import publish_sensor_secret

NAMESPACE = "vigil-sensor"
SECRET = "vigil-sensor-credential"
CRED = ClusterCredential("c-1", "vgl_c_secret", "prod", "https://registered.example.com")


def decoded(secret: dict) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}


def publish(kubeapi, tmp_path, cred: ClusterCredential, service_url: str = "https://vigil.example.com") -> bool:
    from vigil.controller.kube import KubeApi, load_config

    async def main() -> bool:
        api = KubeApi(await load_config(kubeapi.write_kubeconfig(tmp_path / "kc")))
        try:
            return await publish_sensor_secret(api, NAMESPACE, SECRET, cred, service_url)
        finally:
            await api.close()

    return asyncio.run(main())


def test_the_sensor_secret_is_created_with_exactly_what_sensors_read(kubeapi, tmp_path):
    kubeapi.store.ensure_namespace(NAMESPACE)
    assert publish(kubeapi, tmp_path, CRED) is True
    secret = kubeapi.store.find("v1", "Secret", NAMESPACE, SECRET)
    assert decoded(secret) == {
        "cluster-id": "c-1",
        "credential": "vgl_c_secret",
        "service-url": "https://vigil.example.com",
    }
    assert secret["type"] == "Opaque"
    assert secret["metadata"]["labels"] == {"app.kubernetes.io/name": "vigil", "app.kubernetes.io/component": "sensor"}

    # A restart with the same credential reads the Secret and leaves it alone.
    version = secret["metadata"]["resourceVersion"]
    assert publish(kubeapi, tmp_path, CRED) is False
    assert kubeapi.store.find("v1", "Secret", NAMESPACE, SECRET)["metadata"]["resourceVersion"] == version


def test_a_differing_secret_is_patched_keeping_other_keys_and_metadata(kubeapi, tmp_path):
    kubeapi.store.ensure_namespace(NAMESPACE)
    kubeapi.store.create({"apiVersion": "v1", "kind": "Secret",
                          "metadata": {"name": SECRET, "namespace": NAMESPACE, "labels": {"owner": "ops"}},
                          "data": {"cluster-id": base64.b64encode(b"old").decode(),
                                   "other": base64.b64encode(b"x").decode()}})  # fmt: skip
    assert publish(kubeapi, tmp_path, CRED, "https://other.example.com") is True
    secret = kubeapi.store.find("v1", "Secret", NAMESPACE, SECRET)
    assert decoded(secret) == {
        "cluster-id": "c-1",
        "credential": "vgl_c_secret",
        "service-url": "https://other.example.com",
        "other": "x",
    }
    assert secret["metadata"]["labels"] == {"owner": "ops"}
