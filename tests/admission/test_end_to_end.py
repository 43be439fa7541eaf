"""Admission end to end: real kubectl against the test API server, which calls the webhook configurations
the chart renders; the real `vigil admission` process; a loopback docker-registry; the real service."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import helm_python
import httpx
import pytest
import yaml
from tests.integrity.integrity_helpers import image
from tests.ui.test_admission_console import signed_in

from vigil.devtools.admission import WebhookProcess
from vigil.devtools.kubeapi.server import KubeAPIServer
from vigil.devtools.oci import push
from vigil.devtools.registry_server import RegistryServer
from vigil.devtools.service import LiveService
from vigil.registry import RegistryClient, RegistryConfig

from .reviews import NEVER_PUSHED

CHART = Path(__file__).resolve().parents[2] / "deploy" / "helm" / "vigil"
UNTRUSTED = "evil.example.net/miner:latest"
POLICY = {
    "policies": [
        {"name": "prod", "mode": "enforce", "scope": {"namespaces": ["shop"]}},
        {"name": "staging", "mode": "warn", "scope": {"namespaces": ["staging"]}},
        {"name": "lab", "mode": "audit", "scope": {"namespaces": ["lab"]}},
        {"name": "vault", "mode": "enforce", "failure": "fail", "scope": {"namespaces": ["vault"]}},
        {"name": "labelled", "mode": "enforce", "scope": {"namespace_selector": {"matchLabels": {"env": "prod"}}}},
    ]
}


def chart_webhooks(ca_pem: bytes) -> list[dict]:
    """The chart's webhook configurations, with the fail-closed and mutating ones switched on."""
    values = {
        "central": {"tls": {"existingSecret": "e2e-service-tls"}},
        "securedCluster": {
            "clusterName": "e2e",
            "registrationToken": "vgl_r_e2e",
            "admission": {
                "failClosed": True,
                "mutating": {"enabled": True},
                "tls": {"mode": "secret", "secretName": "e2e-tls", "caBundle": ca_pem.decode()},
            },
        },
    }
    chart = helm_python.Chart.load(str(CHART))
    try:
        manifests = chart.render(values, name="vigil", namespace="default", is_install=True)
    finally:
        chart.close()
    texts = [text for path, text in manifests.items() if path.endswith(".yaml")]
    docs = [d for text in texts for d in yaml.safe_load_all(text) if isinstance(d, dict)]
    return [d for d in docs if d.get("kind") in ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration")]


class Kubectl:
    def __init__(self, kubeconfig: Path, work: Path) -> None:
        self.kubeconfig = kubeconfig
        self.work = work

    def __call__(self, *args: str, manifest: dict | None = None) -> subprocess.CompletedProcess[str]:
        cmd = ["kubectl", "--kubeconfig", str(self.kubeconfig), *args]
        if manifest is not None:
            path = self.work / f"{manifest['metadata']['name']}.yaml"
            path.write_text(yaml.safe_dump(manifest))
            cmd += ["-f", str(path)]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=self.work)


def pod(name: str, namespace: str, image_ref: str, annotations: dict | None = None) -> dict:
    meta: dict = {"name": name, "namespace": namespace}
    if annotations:
        meta["annotations"] = annotations
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": {"containers": [{"name": "app", "image": image_ref}]},
    }


def deployment(name: str, namespace: str, image_ref: str) -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": image_ref}]},
            },
        },
    }


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl missing (scripts/setup --test installs it)")
    work = tmp_path_factory.mktemp("admission-e2e")
    with RegistryServer.for_pytest(work / "registry") as registry:
        config = RegistryConfig.from_mapping({registry.host: {"plain_http": True}})
        app = f"{registry.host}/team/app"
        pushed = push(RegistryClient(config), f"{app}:1.0", image("e2e"))
        (work / "registries.yaml").write_text(f"{registry.host}:\n  plain_http: true\n")
        service = LiveService(work / "service").start()
        kube = KubeAPIServer().start()
        try:
            service.trust_registry(f"{registry.host}/team")
            admin = {"Authorization": f"Bearer {service.admin_token}"}
            httpx.put(f"{service.url}/api/v1/policy/enforcement", json=POLICY, headers=admin).raise_for_status()
            cluster_id, credential = service.register("e2e")
            issued = httpx.post(
                f"{service.url}/api/v1/clusters/{cluster_id}/admission-credential",
                json={},
                headers={"Authorization": f"Bearer {credential}"},
            )
            issued.raise_for_status()
            kubeconfig = kube.write_kubeconfig(work / "kubeconfig")
            kubectl = Kubectl(kubeconfig, work)
            for ns in ("shop", "staging", "lab", "vault", "payments", "sandbox"):
                assert kubectl("create", "namespace", ns).returncode == 0
            # The webhook reads this label from the API server (its kubeconfig) for the "labelled" policy.
            assert kubectl("label", "namespace", "payments", "env=prod").returncode == 0
            # The vault policy fails closed: its namespace is labelled for the fail-closed webhook.
            assert kubectl("label", "namespace", "vault", "vigil.dev/admission=fail-closed").returncode == 0
            placeholder = chart_webhooks(b"-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n")
            service_ref = placeholder[0]["webhooks"][0]["clientConfig"]["service"]
            svc_host = f"{service_ref['name']}.{service_ref['namespace']}.svc"
            webhook = WebhookProcess(
                work / "webhook",
                service.url,
                cluster_id,
                issued.json()["credential"],
                registry_config=work / "registries.yaml",
                kubeconfig=kubeconfig,
                hosts=(svc_host,),
            ).start()
            kube.map_service(service_ref["namespace"], service_ref["name"], webhook.url)
            configs = work / "webhooks.yaml"
            configs.write_text(yaml.safe_dump_all(chart_webhooks(webhook.ca_pem)))
            applied = kubectl("apply", "-f", str(configs))
            assert applied.returncode == 0, applied.stderr
            yield {
                "kubectl": kubectl,
                "service": service,
                "webhook": webhook,
                "app": app,
                "pushed": pushed,
                "kube": kube,
                "configs": placeholder,
            }
            webhook.stop()
        finally:
            kube.stop()
            service.stop()


def _webhook_name(stack, kind: str, path: str) -> str:
    for config in stack["configs"]:
        for hook in config["webhooks"]:
            if config["kind"] == kind and hook["clientConfig"]["service"]["path"] == path:
                return hook["name"]
    raise AssertionError(f"no {kind} for {path}")


def _decisions(stack, **params) -> list[dict]:
    resp = stack["service"].get("/api/v1/admission/decisions", **params)
    assert resp.status_code == 200, resp.text
    return resp.json()["items"]


def _wait_for_decision(stack, namespace: str, name: str, timeout: float = 10.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [d for d in _decisions(stack, namespace=namespace) if d["name"] == name]
        if found:
            return found[0]
        time.sleep(0.1)
    raise AssertionError(f"no decision recorded for {namespace}/{name}")


def test_an_untrusted_pod_and_deployment_are_refused_naming_the_rule(stack):
    kubectl = stack["kubectl"]
    name = _webhook_name(stack, "ValidatingWebhookConfiguration", "/validate")
    rule = (
        f'admission webhook "{name}" denied the request: policy "prod" rule untrusted_registry: image {UNTRUSTED}: '
        "registry evil.example.net is not trusted"
    )
    out = kubectl("create", manifest=pod("miner", "shop", UNTRUSTED))
    assert out.returncode == 1
    assert rule in out.stderr and out.stderr.startswith("Error from server")
    out = kubectl("create", manifest=deployment("miner-deploy", "shop", UNTRUSTED))
    assert out.returncode == 1 and rule in out.stderr
    assert kubectl("get", "pod", "miner", "-n", "shop").returncode == 1
    assert _wait_for_decision(stack, "shop", "miner")["outcome"] == "denied"


def test_a_policy_scoped_by_namespace_labels_judges_only_the_labelled_namespace(stack):
    kubectl = stack["kubectl"]
    out = kubectl("create", manifest=pod("miner", "payments", UNTRUSTED))
    assert out.returncode == 1
    assert f'policy "labelled" rule untrusted_registry: image {UNTRUSTED}: registry evil.example.net' in out.stderr
    out = kubectl("create", manifest=pod("miner", "sandbox", UNTRUSTED))
    assert (out.returncode, out.stderr) == (0, "")
    assert _wait_for_decision(stack, "payments", "miner")["outcome"] == "denied"
    assert _decisions(stack, namespace="sandbox") == []


def test_a_digest_never_pushed_is_refused_with_both_digests(stack):
    app, pushed = stack["app"], stack["pushed"]
    out = stack["kubectl"]("create", manifest=pod("stale", "shop", f"{app}:1.0@{NEVER_PUSHED}"))
    assert out.returncode == 1
    assert (
        f"digest_mismatch: digest {NEVER_PUSHED} is not in the trusted registry {app}, whose tag 1.0 is {pushed}"
        in out.stderr
    )


def test_the_mutating_webhook_pins_the_tag_to_its_registry_digest(stack):
    kubectl, app, pushed = stack["kubectl"], stack["app"], stack["pushed"]
    out = kubectl("create", manifest=pod("pinned", "shop", f"{app}:1.0"))
    assert out.returncode == 0, out.stderr
    got = kubectl("get", "pod", "pinned", "-n", "shop", "-o", "jsonpath={.spec.containers[0].image}")
    assert got.stdout == f"{app}:1.0@{pushed}"


def test_warn_mode_admits_and_kubectl_prints_the_warning(stack):
    out = stack["kubectl"]("create", manifest=pod("warned", "staging", UNTRUSTED))
    assert out.returncode == 0, out.stderr
    assert (
        f'Warning: policy "staging" rule untrusted_registry: image {UNTRUSTED}: registry evil.example.net is not '
        "trusted" in out.stderr
    )
    assert _wait_for_decision(stack, "staging", "warned")["outcome"] == "warned"


def test_audit_mode_admits_and_records_the_decision(stack):
    out = stack["kubectl"]("create", manifest=pod("audited", "lab", UNTRUSTED))
    assert out.returncode == 0 and "Warning" not in out.stderr
    decision = _wait_for_decision(stack, "lab", "audited")
    assert decision["outcome"] == "audited"
    assert [v["rule"] for v in decision["violations"]] == ["untrusted_registry"]
    console = signed_in(stack["service"], stack["service"].admin_token)
    page = console.get("/admission", params={"namespace": "lab"})
    console.close()
    assert page.status_code == 200
    assert "audited" in page.text and UNTRUSTED in page.text and "untrusted_registry" in page.text


def test_kube_system_is_admitted_and_break_glass_is_admitted_and_recorded(stack):
    kubectl = stack["kubectl"]
    assert kubectl("create", manifest=pod("system", "kube-system", UNTRUSTED)).returncode == 0
    glass = pod("glass", "shop", UNTRUSTED, annotations={"vigil.dev/break-glass": "INC-7 outage"})
    out = kubectl("create", manifest=glass)
    assert out.returncode == 0, out.stderr
    assert "Warning: admitted by break-glass (vigil.dev/break-glass: INC-7 outage); this use is recorded" in out.stderr
    decision = _wait_for_decision(stack, "shop", "glass")
    assert (decision["outcome"], decision["break_glass"]) == ("break_glass", "INC-7 outage")
    assert decision["user"]
    assert _decisions(stack, namespace="kube-system") == []


def test_updates_that_run_no_new_image_are_admitted_and_a_new_image_is_judged(stack):
    """A workload admitted once (here by break-glass) must stay manageable: dropping the annotation,
    labelling or scaling it, as controllers and operators do, runs nothing new; a new image is judged."""
    kubectl = stack["kubectl"]
    legacy = deployment("legacy", "shop", UNTRUSTED)
    legacy["metadata"]["annotations"] = {"vigil.dev/break-glass": "INC-9 legacy"}
    assert kubectl("create", manifest=legacy).returncode == 0
    assert _wait_for_decision(stack, "shop", "legacy")["outcome"] == "break_glass"
    for change in (
        ("annotate", "deployment", "legacy", "-n", "shop", "vigil.dev/break-glass-"),
        ("label", "deployment", "legacy", "-n", "shop", "team=payments"),
        ("patch", "deployment", "legacy", "-n", "shop", "-p", '{"spec": {"replicas": 0}}'),
    ):
        out = kubectl(*change)
        assert (out.returncode, out.stderr) == (0, ""), change
    out = kubectl("set", "image", "deployment/legacy", "-n", "shop", "app=evil.example.net/other:2")
    assert out.returncode == 1
    assert (
        'policy "prod" rule untrusted_registry: image evil.example.net/other:2: registry evil.example.net is not '
        "trusted" in out.stderr
    )
    got = kubectl(
        "get", "deployment", "legacy", "-n", "shop", "-o", "jsonpath={.spec.template.spec.containers[0].image}"
    )
    assert got.stdout == UNTRUSTED
    time.sleep(1.5)  # the webhook sends its decisions every second: anything more would be there by now
    recorded = [d for d in _decisions(stack, namespace="shop") if d["name"] == "legacy"]
    assert [d["outcome"] for d in recorded] == ["denied", "break_glass"]
    assert recorded[0]["images"] == ["evil.example.net/other:2"]


def test_a_policy_change_reaches_the_webhook_within_two_seconds(stack):
    service, webhook = stack["service"], stack["webhook"]
    admin = {"Authorization": f"Bearer {service.admin_token}"}
    relaxed = {"policies": [{**POLICY["policies"][0], "mode": "warn"}, *POLICY["policies"][1:]]}
    try:
        started = time.monotonic()
        httpx.put(f"{service.url}/api/v1/policy/enforcement", json=relaxed, headers=admin).raise_for_status()
        while True:
            out = stack["kubectl"]("create", "--dry-run=server", manifest=pod("relaxed", "shop", UNTRUSTED))
            if out.returncode == 0:
                break
            assert time.monotonic() - started < 2.0, "the webhook still denies 2 s after the policy change"
        assert time.monotonic() - started < 2.0
    finally:
        httpx.put(f"{service.url}/api/v1/policy/enforcement", json=POLICY, headers=admin).raise_for_status()
        webhook.wait_ready()


def test_with_the_webhook_stopped_fail_open_admits_and_fail_closed_refuses(stack):
    kubectl, webhook = stack["kubectl"], stack["webhook"]
    webhook.stop()
    try:
        started = time.monotonic()
        out = kubectl("create", manifest=pod("open", "shop", UNTRUSTED))
        assert out.returncode == 0, out.stderr
        assert time.monotonic() - started < 6.0  # within the webhook's timeoutSeconds (5)
        name = _webhook_name(stack, "ValidatingWebhookConfiguration", "/validate/fail-closed")
        out = kubectl("create", manifest=pod("closed", "vault", UNTRUSTED))
        assert out.returncode == 1
        assert f'failed calling webhook "{name}"' in out.stderr
    finally:
        webhook.start()
