"""The controller writes the sensors' Secret (the test API server, real KubeApi calls): the enrolment
credential, never the cluster's own."""

from __future__ import annotations

import asyncio
import base64

from vigil.controller.sensor_secret import publish_sensor_secret

NAMESPACE = "vigil-sensor"
SECRET = "vigil-sensor-credential"
ENROLMENT = "vgl_e_secret"


def decoded(secret: dict) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}


def publish(kubeapi, tmp_path, enrolment: str = ENROLMENT, service_url: str = "https://vigil.example.com") -> bool:
    from vigil.controller.kube import KubeApi, load_config

    async def main() -> bool:
        api = KubeApi(await load_config(kubeapi.write_kubeconfig(tmp_path / "kc")))
        try:
            return await publish_sensor_secret(api, NAMESPACE, SECRET, "c-1", enrolment, service_url)
        finally:
            await api.close()

    return asyncio.run(main())


def test_the_sensor_secret_is_created_with_exactly_what_sensors_read(kubeapi, tmp_path):
    kubeapi.store.ensure_namespace(NAMESPACE)
    assert publish(kubeapi, tmp_path) is True
    secret = kubeapi.store.find("v1", "Secret", NAMESPACE, SECRET)
    assert decoded(secret) == {
        "cluster-id": "c-1",
        "enrolment-credential": ENROLMENT,
        "service-url": "https://vigil.example.com",
    }
    assert secret["type"] == "Opaque"
    assert secret["metadata"]["labels"] == {"app.kubernetes.io/name": "vigil", "app.kubernetes.io/component": "sensor"}

    # The same values again: the Secret is read and left alone.
    version = secret["metadata"]["resourceVersion"]
    assert publish(kubeapi, tmp_path) is False
    assert kubeapi.store.find("v1", "Secret", NAMESPACE, SECRET)["metadata"]["resourceVersion"] == version
    # A new enrolment credential replaces the earlier one.
    assert publish(kubeapi, tmp_path, "vgl_e_next") is True
    assert decoded(kubeapi.store.find("v1", "Secret", NAMESPACE, SECRET))["enrolment-credential"] == "vgl_e_next"


def test_a_differing_secret_is_patched_keeping_other_keys_and_metadata(kubeapi, tmp_path):
    kubeapi.store.ensure_namespace(NAMESPACE)
    kubeapi.store.create({"apiVersion": "v1", "kind": "Secret",
                          "metadata": {"name": SECRET, "namespace": NAMESPACE, "labels": {"owner": "ops"}},
                          "data": {"cluster-id": base64.b64encode(b"old").decode(),
                                   "other": base64.b64encode(b"x").decode()}})  # fmt: skip
    assert publish(kubeapi, tmp_path, service_url="https://other.example.com") is True
    secret = kubeapi.store.find("v1", "Secret", NAMESPACE, SECRET)
    assert decoded(secret) == {
        "cluster-id": "c-1",
        "enrolment-credential": ENROLMENT,
        "service-url": "https://other.example.com",
        "other": "x",
    }
    assert secret["metadata"]["labels"] == {"owner": "ops"}


def test_the_cluster_credential_an_earlier_version_gave_the_sensors_is_removed(kubeapi, tmp_path):
    kubeapi.store.ensure_namespace(NAMESPACE)
    earlier = {"cluster-id": "c-1", "credential": "vgl_c_cluster", "service-url": "https://vigil.example.com"}
    kubeapi.store.create({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                          "metadata": {"name": SECRET, "namespace": NAMESPACE},
                          "data": {k: base64.b64encode(v.encode()).decode() for k, v in earlier.items()}})  # fmt: skip
    assert publish(kubeapi, tmp_path) is True
    assert decoded(kubeapi.store.find("v1", "Secret", NAMESPACE, SECRET)) == {
        "cluster-id": "c-1",
        "enrolment-credential": ENROLMENT,
        "service-url": "https://vigil.example.com",
    }


def test_the_cluster_credential_is_removed_even_when_every_other_value_matches(kubeapi, tmp_path):
    kubeapi.store.ensure_namespace(NAMESPACE)
    values = {"cluster-id": "c-1", "enrolment-credential": ENROLMENT, "service-url": "https://vigil.example.com"}
    kubeapi.store.create({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                          "metadata": {"name": SECRET, "namespace": NAMESPACE},
                          "data": {k: base64.b64encode(v.encode()).decode()
                                   for k, v in {**values, "credential": "vgl_c_cluster"}.items()}})  # fmt: skip
    assert publish(kubeapi, tmp_path) is True
    assert decoded(kubeapi.store.find("v1", "Secret", NAMESPACE, SECRET)) == values
    assert publish(kubeapi, tmp_path) is False
