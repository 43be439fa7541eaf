"""The certificate the chart makes for the admission webhook works as kube-apiserver uses it: the real
`vigil admission` process, run with the chart's own arguments and the files its Deployment mounts from the
generated Secret (the CA, with which it issues its own certificates, or the chart's certificate), is trusted
by a client that trusts only the webhook configuration's caBundle and checks the Service's DNS name (what the
API server does for clientConfig.service), and refused for another name or another CA."""

from __future__ import annotations

import base64
import os
import signal
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

helm_python = pytest.importorskip("helm_python", reason="helm-python-sdk (scripts/setup --test) is missing")

from vigil.devtools.net import free_port  # noqa: E402

CHART = Path(__file__).resolve().parents[2] / "deploy" / "helm" / "vigil"
SERVICE_NAME = "vigil-admission.vigil-system.svc"
TLS_MOUNT = "/etc/vigil/admission-tls/"
CREDENTIAL = "/var/run/vigil/admission/credential"


def rendered(self_issue: bool) -> tuple[list[str], list[str], dict[str, bytes], bytes]:
    """The webhook container's args, the Secret keys its Deployment mounts, the Secret's files, and the CA
    the ValidatingWebhookConfiguration trusts."""
    values = yaml.safe_load((CHART / "ci" / "defaults-values.yaml").read_text())
    values["securedCluster"]["admission"] = {"tls": {"selfIssue": self_issue}}
    chart = helm_python.Chart.load(str(CHART))
    try:
        text = chart.render(values, name="vigil", namespace="vigil-system", is_install=True)[
            "vigil/templates/admission.yaml"
        ]
    finally:
        chart.close()
    docs = {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(text) if d}
    secret = docs[("Secret", "vigil-admission-tls")]
    [hook] = docs[("ValidatingWebhookConfiguration", "vigil-admission")]["webhooks"]
    pod = docs[("Deployment", "vigil-admission")]["spec"]["template"]["spec"]
    [container] = pod["containers"]
    [tls_volume] = [v for v in pod["volumes"] if v["name"] == "tls"]
    mounted = [item["key"] for item in tls_volume["secret"]["items"]]
    files = {key: base64.b64decode(value) for key, value in secret["data"].items()}
    return container["args"], mounted, files, base64.b64decode(hook["clientConfig"]["caBundle"])


@pytest.fixture(params=[True, False], ids=["self-issued", "chart-certificate"])
def webhook(request, tmp_path: Path):
    args, mounted, files, ca_bundle = rendered(request.param)
    for name in mounted:
        path = tmp_path / name
        path.touch(0o600)
        path.write_bytes(files[name])
    (tmp_path / "credential").write_text("vgl_a_not-used-here")
    port = free_port()
    local = []
    for arg in args:
        arg = arg.replace(TLS_MOUNT, f"{tmp_path}/").replace(CREDENTIAL, str(tmp_path / "credential"))
        local.append(f"127.0.0.1:{port}" if arg == "0.0.0.0:8443" else arg)
    assert local.count(f"127.0.0.1:{port}") == 1 and not [a for a in local if a.startswith("/etc/vigil")]
    env = dict(
        os.environ,
        # Nothing listens there: the webhook stays not ready, and says why.
        VIGIL_SERVICE_URL=f"https://127.0.0.1:{free_port()}",
        VIGIL_CLUSTER_ID="c-test",
    )
    log = tmp_path / "webhook.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "vigil.cli", *local], stdout=out, stderr=subprocess.STDOUT, env=env
        )
    try:
        yield port, ca_bundle, proc, log
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def get(port: int, ca: bytes, path: str, server_name: str = SERVICE_NAME) -> httpx.Response:
    """GET over a connection to 127.0.0.1 that verifies the certificate for server_name, like the API server
    calling https://<service>.<namespace>.svc:443 (the Service's DNS name, whatever address it resolves to)."""
    context = ssl.create_default_context(cadata=ca.decode())
    transport = httpx.HTTPTransport(verify=context)
    with httpx.Client(transport=transport, timeout=3) as client:
        return client.get(
            f"https://127.0.0.1:{port}{path}",
            headers={"Host": server_name},
            extensions={"sni_hostname": server_name},
        )


def wait_healthy(port: int, ca: bytes, proc: subprocess.Popen, log: Path, timeout: float = 30) -> httpx.Response:
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"vigil admission exited {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            return get(port, ca, "/healthz")
        except httpx.ConnectError as exc:
            last = str(exc)
            if "CERTIFICATE_VERIFY_FAILED" in last:
                raise
        time.sleep(0.1)
    raise AssertionError(f"no answer on /healthz after {timeout}s: {last}; log: {log.read_text()[-2000:]}")


def test_the_api_server_trusts_the_webhooks_certificate(webhook):
    port, ca_bundle, proc, log = webhook
    health = wait_healthy(port, ca_bundle, proc, log)
    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    # Readiness waits for the service's first snapshot, which never comes here.
    ready = get(port, ca_bundle, "/readyz")
    assert ready.status_code == 503
    assert ready.json()["status"] == "not ready"

    # Not vacuous: the name is checked, and so is the CA.
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        get(port, ca_bundle, "/healthz", server_name="vigil-admission.other-namespace.svc")
    *_, other_ca = rendered(True)
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        get(port, other_ca, "/healthz")
