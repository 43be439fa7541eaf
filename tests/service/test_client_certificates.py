"""Mutual TLS for controllers and sensors: a real service (`service_config`, uvicorn, TLS) with
`--client-certs optional|required`, its client CA in the data dir, certificates bound to credentials."""

from __future__ import annotations

import asyncio
import json
import ssl
import stat
import threading
import time
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import uvicorn
from cryptography import x509
from typer.testing import CliRunner

from vigil.cli import build_app
from vigil.devtools.kubeapi.tls import make_serving_cert
from vigil.devtools.net import free_port, wait_for_port
from vigil.service.cli.serve import ADMIN_TOKEN_FILE, service_config
from vigil.service.client_ca import CA_CERT_FILE, CA_KEY_FILE, CREDENTIAL_URI_PREFIX, ClientCA
from vigil.service.settings import Settings
from vigil.service.store.clusters import cluster_for_registration
from vigil.wire.client_certificate import (
    CERTIFICATE_PATH,
    ClientCertificateError,
    ClientIdentity,
    new_key_and_csr,
    obtain_certificate,
    tls_context,
)


class TlsService:
    """`vigil service --tls-cert --tls-key --client-certs MODE` in a thread, on loopback."""

    def __init__(self, root: Path, mode: str, database_url: str | None = None) -> None:
        serving = make_serving_cert(["127.0.0.1"])
        root.mkdir(parents=True, exist_ok=True)
        self.ca_file = root / "service-ca.pem"
        self.ca_file.write_bytes(serving.ca_pem)
        cert, key = root / "tls.crt", root / "tls.key"
        cert.write_bytes(serving.cert_pem)
        key.write_bytes(serving.key_pem)
        self.data_dir = root / "data"
        self.settings = Settings(
            data_dir=self.data_dir, database_url=database_url, port=free_port(), client_certs=mode
        ).all_in_background()
        for worker in (self.settings.integrity, self.settings.contents, self.settings.alerts):
            worker.background = False
        config, self.engine = service_config(self.settings, cert, key, False)
        self.url = f"https://127.0.0.1:{self.settings.port}"
        self.admin_token = (self.data_dir / ADMIN_TOKEN_FILE).read_text().strip()
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def start(self) -> TlsService:
        self._thread.start()
        wait_for_port(self.settings.port)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self.engine.dispose()

    def client(self, identity: ClientIdentity | None = None) -> httpx.Client:
        return httpx.Client(base_url=self.url, verify=tls_context(self.ca_file, identity), timeout=30)

    def register(self, name: str) -> tuple[str, str]:
        with self.engine.begin() as conn:
            token = cluster_for_registration(conn, name, timedelta(hours=1), 1)[1].secret
        with self.client() as c:
            resp = c.post("/api/v1/clusters/register", json={"name": name}, headers=bearer(token))
        assert resp.status_code == 200, resp.text
        return resp.json()["cluster_id"], resp.json()["credential"]

    def credential_id(self, secret: str) -> str:
        from vigil.service.store.tokens import authenticate

        with self.engine.connect() as conn:
            return authenticate(conn, secret).token_id


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def beat(cluster_id: str) -> dict:
    return {"cluster_id": cluster_id, "component": "controller", "version": "test", "interval_seconds": 15}


@pytest.fixture
def tls_service(tmp_path, database_url):
    started: list[TlsService] = []

    def start(mode: str) -> TlsService:
        svc = TlsService(tmp_path / f"svc-{len(started)}", mode, database_url).start()
        started.append(svc)
        return svc

    yield start
    for svc in started:
        svc.stop()


def test_the_client_ca_is_kept_in_the_data_dir_and_reused(tmp_path):
    first = ClientCA.load_or_create(tmp_path)
    assert stat.S_IMODE((tmp_path / CA_KEY_FILE).stat().st_mode) == 0o600
    again = ClientCA.load_or_create(tmp_path)
    assert again.cert_pem == first.cert_pem
    assert (tmp_path / CA_CERT_FILE).read_text() == first.cert_pem


def test_a_credential_gets_a_certificate_bound_to_it_and_is_admitted_with_it(tls_service, tmp_path):
    svc = tls_service("optional")
    cluster_id, credential = svc.register("prod")
    out = ClientIdentity(tmp_path / "client.crt", tmp_path / "client.key")
    issued = obtain_certificate(svc.url, credential, out, svc.ca_file)

    credential_id = svc.credential_id(credential)
    assert issued.credential_id == credential_id
    assert stat.S_IMODE(out.key.stat().st_mode) == 0o600
    cert = x509.load_pem_x509_certificate(out.cert.read_bytes())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.UniformResourceIdentifier) == [CREDENTIAL_URI_PREFIX + credential_id]
    ca = x509.load_pem_x509_certificate((svc.data_dir / CA_CERT_FILE).read_bytes())
    assert cert.issuer == ca.subject
    assert issued.ca == (svc.data_dir / CA_CERT_FILE).read_text()
    assert (cert.not_valid_after_utc - cert.not_valid_before_utc).days == 30

    with svc.client(out) as c:
        resp = c.post("/api/v1/ingest/heartbeat", json=beat(cluster_id), headers=bearer(credential))
    assert resp.status_code == 200, resp.text
    # Optional: a credential without a certificate still works, and people's tokens need none.
    with svc.client() as c:
        assert c.post("/api/v1/ingest/heartbeat", json=beat(cluster_id), headers=bearer(credential)).status_code == 200
        assert c.get("/api/v1/clusters", headers=bearer(svc.admin_token)).status_code == 200


def test_a_certificate_from_another_ca_fails_the_handshake(tls_service, tmp_path):
    svc = tls_service("optional")
    cluster_id, credential = svc.register("prod")
    # A CA of another service, naming the very same credential: the name alone counts for nothing.
    other = ClientCA.load_or_create(tmp_path / "other-ca")
    key_pem, csr = new_key_and_csr()
    forged = other.issue(csr, svc.credential_id(credential), timedelta(days=1))
    identity = ClientIdentity(tmp_path / "forged.crt", tmp_path / "forged.key")
    identity.cert.write_text(forged.pem)
    identity.key.write_bytes(key_pem)

    # TLS 1.3 finishes the client's side of the handshake first: the service then closes the connection
    # before reading the request, so no HTTP answer ever comes.
    with svc.client(identity) as c, pytest.raises(httpx.RemoteProtocolError) as closed:
        c.post("/api/v1/ingest/heartbeat", json=beat(cluster_id), headers=bearer(credential))
    assert str(closed.value) == "Server disconnected without sending a response."
    # With TLS 1.2 the client waits for the server's Finished, so the handshake itself fails.
    ctx = tls_context(svc.ca_file, identity)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    with httpx.Client(base_url=svc.url, verify=ctx) as c, pytest.raises(httpx.ConnectError) as refused:
        c.post("/api/v1/ingest/heartbeat", json=beat(cluster_id), headers=bearer(credential))
    assert str(refused.value).startswith("[SSL: UNEXPECTED_EOF_WHILE_READING]")
    # The same TLS 1.2 client without the forged certificate is let in.
    ctx = tls_context(svc.ca_file, None)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    with httpx.Client(base_url=svc.url, verify=ctx) as c:
        assert c.post("/api/v1/ingest/heartbeat", json=beat(cluster_id), headers=bearer(credential)).status_code == 200


def test_a_certificate_bound_to_one_credential_is_refused_with_another(tls_service, tmp_path):
    svc = tls_service("optional")
    _, credential_a = svc.register("prod")
    cluster_b, credential_b = svc.register("staging")
    identity_a = ClientIdentity(tmp_path / "a.crt", tmp_path / "a.key")
    obtain_certificate(svc.url, credential_a, identity_a, svc.ca_file)
    a, b = svc.credential_id(credential_a), svc.credential_id(credential_b)

    with svc.client(identity_a) as c:
        resp = c.post("/api/v1/ingest/heartbeat", json=beat(cluster_b), headers=bearer(credential_b))
        assert resp.status_code == 401
        assert resp.json() == {
            "error": "unauthorized",
            "detail": f"the client certificate is bound to credential {a}, not to {b}: "
            "send the credential the certificate was issued to",
        }
        # Nor does it lend an admin token anything.
        assert c.get("/api/v1/clusters", headers=bearer(svc.admin_token)).status_code == 401


def test_required_refuses_cluster_credentials_without_a_certificate(tls_service, tmp_path):
    svc = tls_service("required")
    cluster_id, credential = svc.register("prod")
    with svc.client() as c:
        resp = c.post("/api/v1/ingest/heartbeat", json=beat(cluster_id), headers=bearer(credential))
        assert resp.status_code == 401
        assert resp.json()["detail"] == (
            "a cluster credential needs a client certificate on this service (--client-certs required); "
            "get one with `vigil credential certificate`"
        )
        # People keep their tokens alone.
        assert c.get("/api/v1/clusters", headers=bearer(svc.admin_token)).status_code == 200

    identity = ClientIdentity(tmp_path / "c.crt", tmp_path / "c.key")
    first = obtain_certificate(svc.url, credential, identity, svc.ca_file)
    with svc.client(identity) as c:
        assert c.post("/api/v1/ingest/heartbeat", json=beat(cluster_id), headers=bearer(credential)).status_code == 200

    # The secret alone gets no second certificate: a copy of it made now does not get its own key in.
    _, csr = new_key_and_csr()
    with svc.client() as c:
        resp = c.post(CERTIFICATE_PATH, json={"csr": csr}, headers=bearer(credential))
    assert resp.status_code == 403
    assert resp.json()["detail"] == (
        f"credential {first.credential_id} already has a client certificate: renew it over a connection "
        "that presents it, or rotate the credential to start again"
    )
    # Renewal presents the current certificate (the files `obtain_certificate` finds in place).
    renewed = obtain_certificate(svc.url, credential, identity, svc.ca_file)
    assert renewed.serial != first.serial
    with svc.client(identity) as c:
        assert c.post("/api/v1/ingest/heartbeat", json=beat(cluster_id), headers=bearer(credential)).status_code == 200


def test_certificate_requests_are_checked(tls_service, tmp_path):
    svc = tls_service("optional")
    _, credential = svc.register("prod")
    with svc.client() as c:
        resp = c.post(CERTIFICATE_PATH, json={"csr": "not a csr"}, headers=bearer(credential))
        assert (resp.status_code, resp.json()["detail"]) == (400, "the CSR is not a PEM certificate signing request")
        _, csr = new_key_and_csr()
        resp = c.post(CERTIFICATE_PATH, json={"csr": csr}, headers=bearer(svc.admin_token))
        assert (resp.status_code, resp.json()["detail"]) == (
            403,
            "admin tokens get no client certificate; only cluster and sensor credentials do",
        )
        resp = c.post(CERTIFICATE_PATH, json={"csr": "x" * 20000}, headers=bearer(credential))
        assert resp.status_code == 422


def test_off_issues_no_certificates(tmp_path):
    from vigil.devtools.service import LiveService

    svc = LiveService(tmp_path / "data").start()
    try:
        _, credential = svc.register("prod")
        with pytest.raises(ClientCertificateError) as refused:
            obtain_certificate(svc.url, credential, ClientIdentity(tmp_path / "c.crt", tmp_path / "c.key"), timeout=10)
        assert str(refused.value) == (
            f"POST {svc.url}{CERTIFICATE_PATH}: 409 client_certificates_off: this service issues no client "
            "certificates (--client-certs is off)"
        )
        assert not (tmp_path / "c.key").exists()
    finally:
        svc.stop()


def test_client_certs_need_the_service_to_serve_tls(tmp_path):
    result = CliRunner().invoke(
        build_app(), ["service", "--data-dir", str(tmp_path / "data"), "--client-certs", "required"]
    )
    assert result.exit_code == 2
    assert "--client-certs required needs --tls-cert and --tls-key" in " ".join(result.output.split())
    result = CliRunner().invoke(build_app(), ["service", "--data-dir", str(tmp_path / "data"), "--client-certs", "on"])
    assert result.exit_code == 2
    assert "client certificates 'on' must be off, optional or required" in result.output


def test_the_credential_command_writes_a_key_and_certificate(tls_service, tmp_path):
    from vigil.controller.credentials import ClusterCredential, save_credential

    svc = tls_service("required")
    cluster_id, credential = svc.register("prod")
    cred_file = tmp_path / "controller-credential.json"
    save_credential(cred_file, ClusterCredential(cluster_id, credential, "prod", svc.url))
    cert, key = tmp_path / "pki" / "client.crt", tmp_path / "pki" / "client.key"
    args = ["credential", "certificate", "--service", svc.url, "--credential-file", str(cred_file)]
    args += ["--client-cert", str(cert), "--client-key", str(key), "--service-ca", str(svc.ca_file)]
    result = CliRunner().invoke(build_app(), args)
    assert result.exit_code == 0, result.output
    assert f"client certificate for credential {svc.credential_id(credential)} written to {cert}" in result.output
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert credential not in result.output
    with svc.client(ClientIdentity(cert, key)) as c:
        assert c.post("/api/v1/ingest/heartbeat", json=beat(cluster_id), headers=bearer(credential)).status_code == 200


def test_a_controller_pushes_its_inventory_over_mutual_tls(tls_service, tmp_path, shared_data):
    """The real controller (`_main`, as `vigil controller --client-cert --client-key` runs it) against the
    test API server, through a service that requires client certificates."""
    from vigil.controller.cli import CredentialPlace, _main, service_trust
    from vigil.controller.credentials import ClusterCredential, save_credential
    from vigil.controller.runner import ControllerSettings
    from vigil.devtools.kubeapi import KubeAPIServer

    nodes = {p.name: json.loads(p.read_text()) for p in sorted((shared_data / "k8s" / "nodes").glob("*.json"))}
    kubeapi = KubeAPIServer().__enter__()
    for node in nodes.values():
        kubeapi.store.create(node)
    svc = tls_service("required")
    cluster_id, credential = svc.register("prod")
    cred_file = tmp_path / "cred.json"
    save_credential(cred_file, ClusterCredential(cluster_id, credential, "prod", svc.url))
    identity = ClientIdentity(tmp_path / "client.crt", tmp_path / "client.key")
    obtain_certificate(svc.url, credential, identity, svc.ca_file)
    verify = service_trust(svc.ca_file, identity.cert, identity.key)
    kubeconfig = kubeapi.write_kubeconfig(tmp_path / "kubeconfig")

    loop = asyncio.new_event_loop()
    settings = ControllerSettings(batch_interval=0.2, heartbeat_interval=1.0, page_size=3)
    task = loop.create_task(
        _main(svc.url, CredentialPlace(file=cred_file), None, None, kubeconfig, None, verify, settings)
    )
    thread = threading.Thread(target=lambda: loop.run_until_complete(asyncio.gather(task, return_exceptions=True)))
    thread.start()
    try:
        want = {n["metadata"]["name"] for n in nodes.values()}

        def held() -> set[str]:
            with svc.client() as c:
                resp = c.get("/api/v1/nodes", params={"cluster": cluster_id}, headers=bearer(svc.admin_token))
            return {n["name"] for n in resp.json()["items"]}

        deadline = time.monotonic() + 30
        while held() != want:
            assert time.monotonic() < deadline, f"the service holds {sorted(held())}, not nodes {sorted(want)}"
            time.sleep(0.2)
    finally:
        loop.call_soon_threadsafe(task.cancel)
        thread.join(15)
        loop.close()
        kubeapi.__exit__(None, None, None)
    assert not task.done() or task.cancelled(), task.exception()


def test_a_sensor_ships_over_mutual_tls(tls_service, tmp_path):
    from datetime import UTC, datetime

    from vigil.sensor.cli import _trust
    from vigil.sensor.shipper import Shipper
    from vigil.sensor.spool import Spool
    from vigil.wire.runtime import RuntimeBatch, RuntimeRecord, SensorHeartbeat

    svc = tls_service("required")
    cluster_id, credential = svc.register("prod")
    identity = ClientIdentity(tmp_path / "sensor.crt", tmp_path / "sensor.key")
    obtain_certificate(svc.url, credential, identity, svc.ca_file)
    spool = Spool(tmp_path / "spool")
    now = datetime.now(UTC)
    seq = spool.next_seq()
    spool.put(
        RuntimeBatch(
            batch_id=f"{spool.sensor_id}-{seq}",
            cluster_id=cluster_id,
            node_name="node-a",
            sensor_id=spool.sensor_id,
            seq=seq,
            window_start=now,
            window_end=now,
            records=[
                RuntimeRecord(
                    container_id="containerd://" + "c" * 64,
                    path="/bin/sh",
                    sha256="ab" * 32,
                    first_seen=now,
                    last_seen=now,
                    count=1,
                )
            ],
        )
    )
    without = Shipper(svc.url, credential, spool, verify=_trust(svc.ca_file))
    try:
        # Refused (401): the sensor logs it and keeps its batches for a shipper that can deliver.
        assert without.heartbeat(SensorHeartbeat(cluster_id=cluster_id, node_name="node-a")) is None
    finally:
        without.close()
    shipper = Shipper(svc.url, credential, spool, verify=_trust(svc.ca_file, identity.cert, identity.key))
    try:
        assert shipper.heartbeat(SensorHeartbeat(cluster_id=cluster_id, node_name="node-a")) is not None
        assert shipper.ship(force=True).delivered == 1
    finally:
        shipper.close()


def test_a_sensor_credential_is_bound_to_its_own_certificate(tls_service, tmp_path):
    svc = tls_service("required")
    cluster_id, cluster_credential = svc.register("prod")
    with svc.client() as c:
        # The enrolment credential is shared by the cluster's sensors: it needs no certificate, gets none.
        enrolment = c.post(
            f"/api/v1/clusters/{cluster_id}/sensor-enrolment", json={}, headers=bearer(svc.admin_token)
        ).json()["credential"]
        sensor = c.post(f"/api/v1/clusters/{cluster_id}/sensors", json={"node": "node-a"}, headers=bearer(enrolment))
        assert sensor.status_code == 200, sensor.text
        sensor_credential = sensor.json()["credential"]
        _, csr = new_key_and_csr()
        resp = c.post(CERTIFICATE_PATH, json={"csr": csr}, headers=bearer(enrolment))
        assert (resp.status_code, resp.json()["detail"]) == (
            403,
            "enrolment tokens get no client certificate; only cluster and sensor credentials do",
        )
        beat_a = {"cluster_id": cluster_id, "node_name": "node-a"}
        resp = c.post("/api/v1/ingest/sensor-heartbeat", json=beat_a, headers=bearer(sensor_credential))
        assert resp.status_code == 401
        assert resp.json()["detail"].startswith("a sensor credential needs a client certificate on this service")

    identity = ClientIdentity(tmp_path / "sensor.crt", tmp_path / "sensor.key")
    issued = obtain_certificate(svc.url, sensor_credential, identity, svc.ca_file)
    assert issued.credential_id == svc.credential_id(sensor_credential)
    with svc.client(identity) as c:
        resp = c.post("/api/v1/ingest/sensor-heartbeat", json=beat_a, headers=bearer(sensor_credential))
        assert resp.status_code == 200, resp.text
        # The node's certificate lends nothing to the cluster's own credential.
        resp = c.post("/api/v1/ingest/heartbeat", json=beat(cluster_id), headers=bearer(cluster_credential))
        assert resp.status_code == 401


def test_concurrent_first_certificates_issue_one(tls_service):
    svc = tls_service("optional")
    _, credential = svc.register("prod")
    csrs = [new_key_and_csr()[1] for _ in range(6)]
    answers: list[int] = []
    gate = threading.Barrier(len(csrs))

    def ask(csr: str) -> None:
        with svc.client() as c:
            gate.wait()
            answers.append(c.post(CERTIFICATE_PATH, json={"csr": csr}, headers=bearer(credential)).status_code)

    threads = [threading.Thread(target=ask, args=(csr,)) for csr in csrs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(answers) == [201] + [403] * (len(csrs) - 1)
