"""The controller keeps its credential in a Secret: a controller restarted after its registration token
expired keeps the same cluster id (real `vigil controller` processes, the test API server, the service)."""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from tests.controller.conftest import wait_until

from vigil.controller.cli import CredentialPlace, credential_place
from vigil.controller.credential_secret import SecretCredentialStore, secret_data
from vigil.controller.credentials import ClusterCredential, CredentialError
from vigil.service.store.tokens import issue_token

NAMESPACE = "vigil-system"
SECRET = "vigil-controller-credential"


def pod(name: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}"},
        "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "nginx:1.27"}]},
        "status": {"phase": "Running"},
    }


def decoded(secret: dict) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}


class ControllerProcess:
    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.log = log
        self._fh = log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from vigil.cli import main; main()", "controller", "--heartbeat-interval", "1",
             "--batch-interval", "0.2", "--log-level", "INFO"],
            env=env, stdout=self._fh, stderr=subprocess.STDOUT,
        )  # fmt: skip

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._fh.close()


def clusters(svc) -> list[dict]:
    return svc.get("/api/v1/clusters").json()["items"]


def test_restart_after_the_registration_token_expired_keeps_the_cluster_id(live_service, kubeapi, tmp_path):
    kubeapi.store.ensure_namespace(NAMESPACE)
    kubeapi.store.ensure_namespace("vigil-sensor")
    kubeapi.store.create(pod("a"))
    with live_service.engine.begin() as conn:
        # Long enough for a controller to start and register on a loaded machine, short enough to wait out.
        token = issue_token(conn, role="registration", name="short-lived", ttl=timedelta(seconds=20))
    kubeconfig = kubeapi.write_kubeconfig(tmp_path / "kubeconfig", namespace=NAMESPACE)
    env = {
        **os.environ,
        "KUBECONFIG": str(kubeconfig),
        "VIGIL_SERVICE_URL": live_service.url,
        "VIGIL_CLUSTER_NAME": "prod-eu-1",
        "VIGIL_REGISTRATION_TOKEN": token.secret,  # from the environment, as the chart passes it: never in argv
        "VIGIL_CREDENTIAL_SECRET": SECRET,
        "VIGIL_SENSOR_NAMESPACE": "vigil-sensor",  # as the chart sets it: the controller writes the sensors' Secret
    }
    env.pop("VIGIL_CREDENTIAL_FILE", None)
    log = tmp_path / "controller.log"
    first = ControllerProcess(env, log)
    try:
        wait_until(lambda: [c for c in clusters(live_service) if c["pods"] == 1], 60, "the first controller's sync")
        wait_until(lambda: clusters(live_service)[0]["status"] == "connected", 30, "the first heartbeat")
    finally:
        first.stop()
    (cluster,) = clusters(live_service)
    cluster_id = cluster["id"]
    secret = kubeapi.store.find("v1", "Secret", NAMESPACE, SECRET)
    kept = decoded(secret)
    assert kept["cluster-id"] == cluster_id
    assert kept["cluster-name"] == "prod-eu-1"
    assert kept["service-url"] == live_service.url
    assert kept["credential"].startswith("vgl_c_")
    assert secret["type"] == "Opaque"
    assert secret["metadata"]["labels"] == {
        "app.kubernetes.io/name": "vigil",
        "app.kubernetes.io/component": "controller",
    }
    assert f"credential kept in Secret {NAMESPACE}/{SECRET}" in log.read_text()
    sensors = decoded(kubeapi.store.find("v1", "Secret", "vigil-sensor", "vigil-sensor-credential"))
    # The sensors get the cluster's enrolment credential, never the controller's own.
    assert sorted(sensors) == ["cluster-id", "enrolment-credential", "service-url"]
    assert (sensors["cluster-id"], sensors["service-url"]) == (cluster_id, live_service.url)
    assert sensors["enrolment-credential"].startswith("vgl_e_")
    enrolled = httpx.post(f"{live_service.url}/api/v1/clusters/{cluster_id}/sensors", json={"node": "node-a"},
                          headers={"Authorization": f"Bearer {sensors['enrolment-credential']}"})  # fmt: skip
    assert enrolled.status_code == 200, enrolled.text
    assert enrolled.json()["credential"].startswith("vgl_s_")

    # The registration token is now expired: registering with it is refused.
    wait_until(lambda: time.time() > token.expires_at.timestamp() + 0.5, 30, "the token's expiry")
    refused = httpx.post(f"{live_service.url}/api/v1/clusters/register", json={"name": "prod-eu-1"},
                         headers={"Authorization": f"Bearer {token.secret}"})  # fmt: skip
    assert refused.status_code == 401

    beat_before = clusters(live_service)[0]["controller"]["last_heartbeat_at"]
    kubeapi.store.create(pod("b"))
    second = ControllerProcess(env, log)
    try:
        wait_until(lambda: clusters(live_service)[0]["pods"] == 2, 60, "the restarted controller's sync")
        wait_until(lambda: clusters(live_service)[0]["controller"]["last_heartbeat_at"] != beat_before, 30,
                   "a heartbeat from the restarted controller")  # fmt: skip
        assert second.proc.poll() is None
    finally:
        second.stop()
    after = clusters(live_service)
    assert [c["id"] for c in after] == [cluster_id]
    assert after[0]["name"] == "prod-eu-1"
    assert f"using cluster {cluster_id} from Secret {NAMESPACE}/{SECRET}" in log.read_text()
    # The restarted controller gave the sensors a new enrolment credential; the earlier one has the overlap.
    restarted = decoded(kubeapi.store.find("v1", "Secret", "vigil-sensor", "vigil-sensor-credential"))
    assert restarted["enrolment-credential"] != sensors["enrolment-credential"]
    enrolment = [c for c in live_service.get(f"/api/v1/clusters/{cluster_id}/credentials").json()["items"]
                 if c["kind"] == "enrolment"]  # fmt: skip
    assert [c["state"] for c in enrolment] == ["expiring", "active"]
    # The restart read its own Secret and did not write it again.
    assert (
        kubeapi.store.find("v1", "Secret", NAMESPACE, SECRET)["metadata"]["resourceVersion"]
        == (secret["metadata"]["resourceVersion"])
    )


def run(coro_fn, kubeapi, tmp_path):
    from vigil.controller.kube import KubeApi, load_config

    async def main():
        api = KubeApi(await load_config(kubeapi.write_kubeconfig(tmp_path / "kc")))
        try:
            return await coro_fn(api)
        finally:
            await api.close()

    return asyncio.run(main())


CRED = ClusterCredential("c-1", "vgl_c_secret", "prod", "https://vigil.example.com")


def test_a_secret_made_beforehand_is_filled_keeping_its_metadata(kubeapi, tmp_path):
    kubeapi.store.ensure_namespace(NAMESPACE)
    kubeapi.store.create({"apiVersion": "v1", "kind": "Secret",
                          "metadata": {"name": SECRET, "namespace": NAMESPACE, "labels": {"owner": "helm"}},
                          "data": {"other": base64.b64encode(b"x").decode()}})  # fmt: skip

    async def work(api):
        store = SecretCredentialStore(api, NAMESPACE, SECRET)
        assert await store.load() is None
        kept = await store.save(CRED)
        return kept, await SecretCredentialStore(api, NAMESPACE, SECRET).load()

    kept, reread = run(work, kubeapi, tmp_path)
    assert kept == CRED and reread == CRED
    secret = kubeapi.store.find("v1", "Secret", NAMESPACE, SECRET)
    assert secret["metadata"]["labels"] == {"owner": "helm"}
    assert decoded(secret) == {"other": "x", "cluster-id": "c-1", "credential": "vgl_c_secret",
                               "cluster-name": "prod", "service-url": "https://vigil.example.com"}  # fmt: skip


def test_a_writer_that_got_there_first_wins_through_the_resource_version(kubeapi, tmp_path):
    kubeapi.store.ensure_namespace(NAMESPACE)
    other = ClusterCredential("c-1", "vgl_c_other", "prod", "https://vigil.example.com")

    async def work(api):
        mine = SecretCredentialStore(api, NAMESPACE, SECRET)
        assert await mine.load() is None
        # Meanwhile another controller registered the same cluster and created the Secret.
        theirs = SecretCredentialStore(api, NAMESPACE, SECRET)
        await theirs.save(other)
        return await mine.save(CRED)

    assert run(work, kubeapi, tmp_path) == other
    assert decoded(kubeapi.store.find("v1", "Secret", NAMESPACE, SECRET))["credential"] == "vgl_c_other"


def test_stale_update_of_another_cluster_is_retried_on_the_fresh_version(kubeapi, tmp_path):
    kubeapi.store.ensure_namespace(NAMESPACE)

    async def work(api):
        mine = SecretCredentialStore(api, NAMESPACE, SECRET)
        await mine.save(ClusterCredential("old", "vgl_c_old"))
        touch = {"metadata": {"labels": {"touched": "yes"}}}
        kubeapi.store.patch(_secret_rt(), NAMESPACE, SECRET, "application/merge-patch+json", touch)
        return await mine.save(CRED)  # its resourceVersion is stale now: 409, read again, patch again

    assert run(work, kubeapi, tmp_path) == CRED
    secret = kubeapi.store.find("v1", "Secret", NAMESPACE, SECRET)
    assert decoded(secret)["cluster-id"] == "c-1"
    assert secret["metadata"]["labels"]["touched"] == "yes"
    assert set(secret_data(CRED)) == {"cluster-id", "credential", "cluster-name", "service-url"}


def _secret_rt():
    from vigil.devtools.kubeapi.resources import resource_for

    return resource_for("v1", "Secret")


def test_where_the_credential_is_kept(tmp_path, monkeypatch):
    kubeconfig = tmp_path / "kc"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "contexts:\n- name: c\n  context: {cluster: x, namespace: ops}\n"
    )
    assert credential_place(None, "s", None, kubeconfig) == CredentialPlace(secret=("ops", "s"))
    assert credential_place(None, None, "vigil", kubeconfig) == CredentialPlace(secret=("vigil", SECRET))
    assert credential_place(tmp_path / "f", None, None, kubeconfig) == CredentialPlace(file=tmp_path / "f")
    assert credential_place(None, None, None, kubeconfig) == CredentialPlace(
        file=Path("/var/lib/vigil/controller-credential.json")
    )
    with pytest.raises(CredentialError, match="give --credential-file or --credential-secret, not both"):
        credential_place(tmp_path / "f", "s", None, kubeconfig)
    sa = tmp_path / "sa"
    sa.mkdir()
    (sa / "token").write_text("t")
    (sa / "namespace").write_text("vigil-system\n")
    monkeypatch.setattr("vigil.kube.config.SERVICE_ACCOUNT", sa)
    assert credential_place(None, None, None, None) == CredentialPlace(secret=("vigil-system", SECRET))
