"""deploy/manifests/secured-cluster (the controller base folded into the chart's static manifests) renders with
kubectl kustomize, validates against the Kubernetes schemas (cert-manager's objects against the fields cert-manager
v1 defines), and is least-privilege."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "manifests" / "secured-cluster"
# The spec fields cert-manager.io/v1 defines for the kinds the manifests use (the CRDs are not in
# kubernetes-validate's schemas).
CERT_MANAGER_SPEC = {
    "Issuer": {"selfSigned", "ca", "acme", "vault", "venafi"},
    "Certificate": {
        "isCA",
        "commonName",
        "secretName",
        "duration",
        "renewBefore",
        "privateKey",
        "issuerRef",
        "dnsNames",
        "ipAddresses",
        "usages",
        "subject",
    },
}
WATCHED = {
    "": {"nodes", "pods", "replicationcontrollers"},
    "apps": {"deployments", "replicasets", "statefulsets", "daemonsets"},
    "batch": {"jobs", "cronjobs"},
}


@pytest.fixture(scope="module")
def rendered() -> list[dict]:
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl not installed (needed for kubectl kustomize)")
    out = subprocess.run(["kubectl", "kustomize", str(DEPLOY)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def test_validates_against_kubernetes_schemas_offline(rendered):
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    assert sorted(d["kind"] for d in rendered) == [
        "Certificate",
        "Certificate",
        "ClusterRole",
        "ClusterRole",
        "ClusterRoleBinding",
        "ClusterRoleBinding",
        "DaemonSet",
        "Deployment",
        "Deployment",
        "Issuer",
        "Issuer",
        "Namespace",
        "Namespace",
        "NetworkPolicy",
        "NetworkPolicy",
        "NetworkPolicy",
        "PodDisruptionBudget",
        "Role",
        "Role",
        "RoleBinding",
        "RoleBinding",
        "Service",
        "ServiceAccount",
        "ServiceAccount",
        "ServiceAccount",
        "ValidatingWebhookConfiguration",
    ]
    for doc in rendered:
        if doc["apiVersion"] == "cert-manager.io/v1":
            assert set(doc["spec"]) <= CERT_MANAGER_SPEC[doc["kind"]], doc
            assert doc["metadata"]["namespace"] == "vigil-system"
            continue
        kubernetes_validate.validate(doc, "1.31.0", strict=True)  # raises ValidationError on any mistake


def test_validator_catches_a_mistake():
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    bad = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"}, "spec": {"replicas": "one"}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, "1.31.0", strict=True)


def test_rbac_is_read_only_and_minimal(rendered):
    (role,) = [d for d in rendered if d["kind"] == "ClusterRole" and d["metadata"]["name"] == "vigil-controller"]
    granted: dict[str, set[str]] = {}
    for rule in role["rules"]:
        assert set(rule["verbs"]) == {"get", "list", "watch"}, rule
        for group in rule["apiGroups"]:
            granted.setdefault(group, set()).update(rule["resources"])
    assert granted == WATCHED
    flat = {r for rs in granted.values() for r in rs}
    assert "secrets" not in flat and "nodes/proxy" not in flat and "*" not in flat
    bindings = {d["metadata"]["name"]: d["subjects"] for d in rendered if d["kind"] == "ClusterRoleBinding"}
    assert bindings == {
        "vigil-controller": [{"kind": "ServiceAccount", "name": "vigil-controller", "namespace": "vigil-system"}],
        "vigil-admission": [{"kind": "ServiceAccount", "name": "vigil-admission", "namespace": "vigil-system"}],
    }
    (webhook_role,) = [d for d in rendered if d["kind"] == "ClusterRole" and d["metadata"]["name"] == "vigil-admission"]
    assert webhook_role["rules"] == [
        {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get", "list", "watch"]}
    ]


def test_secret_roles_name_the_three_credential_secrets_and_nothing_more(rendered):
    roles = {(d["metadata"]["namespace"], d["metadata"]["name"]): d["rules"] for d in rendered if d["kind"] == "Role"}

    def rules(*secrets: str) -> list[dict]:
        return [
            {"apiGroups": [""], "resources": ["secrets"], "resourceNames": list(secrets), "verbs": ["get", "patch"]},
            {"apiGroups": [""], "resources": ["secrets"], "verbs": ["create"]},
        ]

    assert roles == {
        ("vigil-system", "vigil-controller-credential"): rules(
            "vigil-controller-credential", "vigil-admission-credential"
        ),
        ("vigil-sensor", "vigil-controller-sensor-credential"): rules("vigil-sensor-credential"),
    }
    subjects = [d["subjects"] for d in rendered if d["kind"] == "RoleBinding"]
    assert subjects == [[{"kind": "ServiceAccount", "name": "vigil-controller", "namespace": "vigil-system"}]] * 2


def test_deployment_is_hardened_and_reads_its_secret(rendered):
    (dep,) = [d for d in rendered if d["kind"] == "Deployment" and d["metadata"]["name"] == "vigil-controller"]
    assert dep["metadata"]["namespace"] == "vigil-system"
    pod = dep["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "vigil-controller"
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["seccompProfile"] == {
        "type": "RuntimeDefault"
    }
    assert not pod.get("hostNetwork") and not pod.get("hostPID")
    (c,) = pod["containers"]
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in c["env"]}
    assert env["VIGIL_SERVICE_URL"] == {"name": "vigil-controller", "key": "service-url"}
    assert {"VIGIL_REGISTRATION_TOKEN", "VIGIL_CLUSTER_NAME"} <= set(env)
    assert c["args"][0] == "controller"
