"""The webhook's serving certificate rotates in place: open connections go on, new ones get the new one."""

from __future__ import annotations

import datetime as dt
import socket
import ssl
import threading
from pathlib import Path

import httpx
import pytest
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from vigil.admission.certs import CertificateError, FileCertificate, IssuedCertificate
from vigil.devtools.kubeapi.tls import make_serving_cert
from vigil.devtools.net import free_port, wait_for_port


def make_ca(tmp_path: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "vigil-admission-ca")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "ca.crt", tmp_path / "ca.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def served_serial(port: int, ca: bytes) -> int:
    ctx = ssl.create_default_context(cadata=ca.decode())
    with (
        socket.create_connection(("127.0.0.1", port)) as sock,
        ctx.wrap_socket(sock, server_hostname="127.0.0.1") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


@pytest.fixture
def serve():
    servers: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(context: ssl.SSLContext) -> int:
        port = free_port()
        app = Starlette(routes=[Route("/healthz", lambda r: PlainTextResponse("ok"))])
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="off")
        config.load()
        config.ssl = context
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        wait_for_port(port)
        servers.append((server, thread))
        return port

    yield start
    for server, thread in servers:
        server.should_exit = True
        thread.join(5)


def test_an_issued_certificate_is_renewed_at_two_thirds_without_dropping_connections(tmp_path, serve):
    ca_cert, ca_key = make_ca(tmp_path)
    issued = IssuedCertificate.open(ca_cert, ca_key, ["127.0.0.1", "vigil-admission.vigil.svc"], dt.timedelta(hours=3))
    assert issued.renew_at() - issued.issued_at == dt.timedelta(hours=2)
    port = serve(issued.context)
    ca = ca_cert.read_bytes()
    before = served_serial(port, ca)
    with httpx.Client(verify=ssl.create_default_context(cadata=ca.decode())) as kept:
        assert kept.get(f"https://127.0.0.1:{port}/healthz").text == "ok"
        issued.renew()
        # The kept-alive connection goes on; a new one sees the new certificate.
        assert kept.get(f"https://127.0.0.1:{port}/healthz").text == "ok"
    assert served_serial(port, ca) != before


def test_certificate_files_are_reloaded_when_the_secret_changes(tmp_path, serve):
    first = make_serving_cert(["127.0.0.1"])
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    cert.write_bytes(first.cert_pem)
    key.write_bytes(first.key_pem)
    files = FileCertificate.open(cert, key)
    port = serve(files.context)
    assert files.reload_if_changed() is False
    old = served_serial(port, first.ca_pem)
    second = make_serving_cert(["127.0.0.1"])
    # As the kubelet updates a mounted Secret: new files swapped in, not rewritten in place.
    (tmp_path / "new.crt").write_bytes(second.cert_pem)
    (tmp_path / "new.key").write_bytes(second.key_pem)
    (tmp_path / "new.key").replace(key)
    assert files.reload_if_changed() is False  # the key alone does not fit the old certificate: keep serving
    (tmp_path / "new.crt").replace(cert)
    assert files.reload_if_changed() is True
    assert served_serial(port, second.ca_pem) != old


def test_unusable_certificates_are_errors_naming_the_file(tmp_path):
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate")
    with pytest.raises(CertificateError, match=f"--tls-ca-cert {junk}: not a PEM certificate"):
        IssuedCertificate.open(junk, junk, ["127.0.0.1"])
    ca_cert, _ = make_ca(tmp_path)
    with pytest.raises(CertificateError, match=f"--tls-ca-key {junk}: not an unencrypted PEM private key"):
        IssuedCertificate.open(ca_cert, junk, ["127.0.0.1"])
    with pytest.raises(CertificateError, match="no such file"):
        FileCertificate.open(tmp_path / "missing.crt", tmp_path / "missing.key")
