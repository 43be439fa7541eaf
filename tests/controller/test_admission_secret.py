"""The controller writes the admission webhook's Secret (the test API server, real KubeApi calls, a live
service): a credential of the admission kind, never the controller's own, and the cluster id."""

from __future__ import annotations

import asyncio
import base64
import logging

import httpx
import pytest

from vigil.controller.admission_secret import publish_admission_secret
from vigil.controller.cli import _publish_admission
from vigil.controller.credentials import DEFAULT_ADMISSION_SECRET, ClusterCredential
from vigil.devtools.kubeapi.errors import ApiError

NAMESPACE = "vigil"


def decoded(secret: dict) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}


def run_with_api(kubeapi, tmp_path, work):
    from vigil.controller.kube import KubeApi, load_config

    async def main():
        api = KubeApi(await load_config(kubeapi.write_kubeconfig(tmp_path / "kc")))
        try:
            return await work(api)
        finally:
            await api.close()

    return asyncio.run(main())


def test_the_admission_secret_holds_the_credential_and_cluster_id(kubeapi, tmp_path):
    kubeapi.store.ensure_namespace(NAMESPACE)

    def publish(credential: str) -> bool:
        return run_with_api(
            kubeapi,
            tmp_path,
            lambda api: publish_admission_secret(api, NAMESPACE, DEFAULT_ADMISSION_SECRET, "c-1", credential),
        )

    assert publish("vgl_a_one") is True
    secret = kubeapi.store.find("v1", "Secret", NAMESPACE, DEFAULT_ADMISSION_SECRET)
    assert decoded(secret) == {"credential": "vgl_a_one", "cluster-id": "c-1"}
    assert secret["type"] == "Opaque"
    assert secret["metadata"]["labels"] == {
        "app.kubernetes.io/name": "vigil",
        "app.kubernetes.io/component": "admission",
    }
    version = secret["metadata"]["resourceVersion"]
    assert publish("vgl_a_one") is False
    assert kubeapi.store.find("v1", "Secret", NAMESPACE, DEFAULT_ADMISSION_SECRET)["metadata"]["resourceVersion"] == (
        version
    )
    assert publish("vgl_a_two") is True
    assert decoded(kubeapi.store.find("v1", "Secret", NAMESPACE, DEFAULT_ADMISSION_SECRET)) == {
        "credential": "vgl_a_two",
        "cluster-id": "c-1",
    }


def test_the_controller_gets_a_credential_that_opens_only_the_clusters_feed(kubeapi, tmp_path, live_service):
    svc = live_service
    kubeapi.store.ensure_namespace(NAMESPACE)
    cluster_id, credential = svc.register("prod")
    cred = ClusterCredential(cluster_id, credential, "prod", svc.url)
    where = (NAMESPACE, DEFAULT_ADMISSION_SECRET)
    run_with_api(kubeapi, tmp_path, lambda api: _publish_admission(api, svc.url, cred, True, where))
    values = decoded(kubeapi.store.find("v1", "Secret", NAMESPACE, DEFAULT_ADMISSION_SECRET))
    assert values["cluster-id"] == cluster_id and values["credential"].startswith("vgl_a_")
    headers = {"Authorization": f"Bearer {values['credential']}"}
    with httpx.stream("GET", f"{svc.url}/api/v1/clusters/{cluster_id}/admission/feed", headers=headers) as feed:
        assert feed.status_code == 200
        assert next(feed.iter_lines()).startswith('{"kind":"snapshot"')
    assert httpx.get(f"{svc.url}/api/v1/clusters", headers=headers).status_code == 403


def test_a_refused_admission_credential_is_a_warning_not_a_stop(kubeapi, tmp_path, live_service, caplog):
    svc = live_service
    kubeapi.store.ensure_namespace(NAMESPACE)
    prod_id, credential = svc.register("prod")
    other_id, _ = svc.register("dev")
    # The credential of one cluster asking for another's: the service refuses, the controller goes on.
    cred = ClusterCredential(other_id, credential, "dev", svc.url)
    with caplog.at_level(logging.WARNING, logger="vigil.controller"):
        run_with_api(
            kubeapi,
            tmp_path,
            lambda api: _publish_admission(api, svc.url, cred, True, (NAMESPACE, DEFAULT_ADMISSION_SECRET)),
        )
    with pytest.raises(ApiError, match="not found"):
        kubeapi.store.find("v1", "Secret", NAMESPACE, DEFAULT_ADMISSION_SECRET)
    warning = [r.getMessage() for r in caplog.records if "admission webhook credential not written" in r.getMessage()]
    assert warning == [
        "admission webhook credential not written (getting the admission webhook's credential: "
        f"POST {svc.url}/api/v1/clusters/{other_id}/admission-credential: 403 forbidden: this credential is scoped "
        f"to cluster {prod_id}; it cannot act for cluster {other_id}); "
        "admission control cannot start without it"
    ]
