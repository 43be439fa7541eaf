"""The chart's admission webhook (deploy/helm/vigil, securedCluster.admission), rendered by the real Helm engine:
the webhook configurations (fail-open by default, the fail-closed and mutating ones only when asked), the
exempt namespaces, the certificate the chart makes and the caBundle that trusts it, cert-manager and
user-provided certificates, the Deployment (restricted, spread, probed), its PodDisruptionBudget, RBAC and
NetworkPolicy, and that an uninstall leaves no webhook behind."""

from __future__ import annotations

import base64
import copy
import datetime
import hashlib
from pathlib import Path

import pytest
import yaml

helm_python = pytest.importorskip("helm_python", reason="helm-python-sdk (scripts/setup --test) is missing")
kubernetes_validate = pytest.importorskip("kubernetes_validate", reason="kubernetes-validate is missing")

from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402

from .pod_security import restricted_violations  # noqa: E402

CHART = Path(__file__).resolve().parents[2] / "deploy" / "helm" / "vigil"
DEFAULTS = yaml.safe_load((CHART / "ci" / "defaults-values.yaml").read_text())
PEM = "-----BEGIN CERTIFICATE-----\nMIIBexample\n-----END CERTIFICATE-----\n"

RULES = [
    {
        "apiGroups": [""],
        "apiVersions": ["v1"],
        "operations": ["CREATE", "UPDATE"],
        "resources": ["pods", "pods/ephemeralcontainers"],
        "scope": "Namespaced",
    },
    {
        "apiGroups": ["apps"],
        "apiVersions": ["v1"],
        "operations": ["CREATE", "UPDATE"],
        "resources": ["deployments", "replicasets", "statefulsets", "daemonsets"],
        "scope": "Namespaced",
    },
    {
        "apiGroups": ["batch"],
        "apiVersions": ["v1"],
        "operations": ["CREATE", "UPDATE"],
        "resources": ["jobs", "cronjobs"],
        "scope": "Namespaced",
    },
]
EXEMPT = ["kube-system", "kube-public", "kube-node-lease", "vigil-system", "vigil-sensor"]
SELECTOR = {
    "app.kubernetes.io/name": "vigil",
    "app.kubernetes.io/instance": "vigil",
    "app.kubernetes.io/component": "admission",
}


def merged(base: dict, extra: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in extra.items():
        out[key] = merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def with_admission(admission: dict | None = None, **top: dict) -> dict:
    values = merged(DEFAULTS, top)
    return merged(values, {"securedCluster": {"admission": admission or {}}})


def render_files(values: dict, namespace: str = "default") -> dict[str, str]:
    chart = helm_python.Chart.load(str(CHART))
    try:
        return chart.render(values, name="vigil", namespace=namespace, is_install=True)
    finally:
        chart.close()


def render_list(values: dict, namespace: str = "default") -> list[dict]:
    objects = []
    for path, text in sorted(render_files(values, namespace).items()):
        if not path.endswith("NOTES.txt"):
            objects.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return objects


def render(values: dict, namespace: str = "default") -> dict[tuple[str, str], dict]:
    """By kind and name (the few objects the chart puts in two namespaces under one name: the last)."""
    return {(doc["kind"], doc["metadata"]["name"]): doc for doc in render_list(values, namespace)}


def config_map_namespaces(values: dict) -> list[str]:
    return [o["metadata"]["namespace"] for o in render_list(values) if o["kind"] == "ConfigMap"]


def webhook(service_path: str, ca_bundle: str | None, **policy) -> dict:
    """One webhook entry as the chart renders it with the default namespaces."""
    service = {"name": "vigil-admission", "namespace": "vigil-system", "path": service_path, "port": 443}
    client = {"service": service} | ({"caBundle": ca_bundle} if ca_bundle is not None else {})
    labels = policy.pop("namespaceLabels", {})
    return {
        **policy,
        "sideEffects": "None",
        "admissionReviewVersions": ["v1"],
        "matchPolicy": "Equivalent",
        "timeoutSeconds": policy.pop("timeoutSeconds", 5),
        "namespaceSelector": {
            **labels,
            "matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": EXEMPT}],
        },
        "clientConfig": client,
        "rules": policy.pop("rules", RULES),
    }


def tls_secret(objects: dict) -> dict[str, bytes]:
    secret = objects[("Secret", "vigil-admission-tls")]
    return {key: base64.b64decode(value) for key, value in secret["data"].items()}


def test_default_is_one_fail_open_validating_webhook():
    objects = render(DEFAULTS)
    vwc = objects[("ValidatingWebhookConfiguration", "vigil-admission")]
    ca_bundle = vwc["webhooks"][0]["clientConfig"]["caBundle"]
    assert vwc["webhooks"] == [
        webhook("/validate", ca_bundle, name="validate.admission.vigil.dev", failurePolicy="Ignore")
    ]
    assert "annotations" not in vwc["metadata"]
    assert ("ValidatingWebhookConfiguration", "vigil-admission-fail-closed") not in objects
    assert ("MutatingWebhookConfiguration", "vigil-admission") not in objects


def test_generated_ca_bundle_is_the_secrets_ca_and_signs_the_serving_certificate():
    objects = render(DEFAULTS)
    secret = objects[("Secret", "vigil-admission-tls")]
    assert secret["type"] == "kubernetes.io/tls"
    assert sorted(secret["data"]) == ["ca.crt", "ca.key", "tls.crt", "tls.key"]
    vwc = objects[("ValidatingWebhookConfiguration", "vigil-admission")]
    assert vwc["webhooks"][0]["clientConfig"]["caBundle"] == secret["data"]["ca.crt"]

    files = tls_secret(objects)
    ca = x509.load_pem_x509_certificate(files["ca.crt"])
    leaf = x509.load_pem_x509_certificate(files["tls.crt"])
    assert ca.subject.rfc4514_string() == "CN=vigil-admission-ca"
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    assert leaf.subject.rfc4514_string() == "CN=vigil-admission.vigil-system.svc"
    assert leaf.issuer == ca.subject
    assert isinstance(ca.public_key(), ec.EllipticCurvePublicKey) and ca.public_key().curve.name == "secp256r1"
    ca.public_key().verify(leaf.signature, leaf.tbs_certificate_bytes, ec.ECDSA(leaf.signature_hash_algorithm))
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == [
        "vigil-admission",
        "vigil-admission.vigil-system",
        "vigil-admission.vigil-system.svc",
        "vigil-admission.vigil-system.svc.cluster.local",
    ]
    key = serialization.load_pem_private_key(files["tls.key"], password=None)
    assert key.public_key().public_numbers() == leaf.public_key().public_numbers()
    ca_key = serialization.load_pem_private_key(files["ca.key"], password=None)
    assert ca_key.public_key().public_numbers() == ca.public_key().public_numbers()
    assert (ca.not_valid_after_utc - ca.not_valid_before_utc).days == 3650
    assert (leaf.not_valid_after_utc - leaf.not_valid_before_utc).days == 365

    # The upgrade bookkeeping: renew the certificate 30 days before it expires, the CA 30 days before its own.
    annotations = secret["metadata"]["annotations"]
    assert set(annotations) == {"vigil.dev/renew-after", "vigil.dev/ca-renew-after", "vigil.dev/rotation"}
    assert annotations["vigil.dev/rotation"] == ""
    renew = datetime.datetime.fromtimestamp(int(annotations["vigil.dev/renew-after"]), datetime.UTC)
    ca_renew = datetime.datetime.fromtimestamp(int(annotations["vigil.dev/ca-renew-after"]), datetime.UTC)
    assert datetime.timedelta(days=29) < leaf.not_valid_after_utc - renew <= datetime.timedelta(days=30, seconds=5)
    assert datetime.timedelta(days=29) < ca.not_valid_after_utc - ca_renew <= datetime.timedelta(days=30, seconds=5)

    # By default (selfIssue) the pods mount the CA and issue their own certificates; they roll when the CA
    # changes. With selfIssue false they mount the certificate and its key, never the CA key, and roll when
    # the certificate changes.
    for self_issue, files_mounted in ((True, ["ca.crt", "ca.key"]), (False, ["tls.crt", "tls.key"])):
        objects = render(with_admission({"tls": {"selfIssue": self_issue}}))
        data = objects[("Secret", "vigil-admission-tls")]["data"]
        pod = objects[("Deployment", "vigil-admission")]["spec"]["template"]
        assert pod["metadata"]["annotations"] == {
            "vigil.dev/tls-checksum": hashlib.sha256(data[files_mounted[0]].encode()).hexdigest()
        }
        volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
        assert volumes["tls"] == {
            "name": "tls",
            "secret": {
                "secretName": "vigil-admission-tls",
                "defaultMode": 0o440,
                "items": [{"key": name, "path": name} for name in files_mounted],
            },
        }


def test_fail_closed_webhook_only_when_asked():
    objects = render(with_admission({"failClosed": True, "timeoutSeconds": 3}))
    open_one = objects[("ValidatingWebhookConfiguration", "vigil-admission")]
    closed = objects[("ValidatingWebhookConfiguration", "vigil-admission-fail-closed")]
    ca_bundle = open_one["webhooks"][0]["clientConfig"]["caBundle"]
    assert open_one["webhooks"] == [
        webhook("/validate", ca_bundle, name="validate.admission.vigil.dev", failurePolicy="Ignore", timeoutSeconds=3)
    ]
    assert closed["webhooks"] == [
        webhook(
            "/validate/fail-closed",
            ca_bundle,
            name="fail-closed.admission.vigil.dev",
            failurePolicy="Fail",
            timeoutSeconds=3,
            # Only the namespaces labelled for it refuse pods while the webhook is down.
            namespaceLabels={"matchLabels": {"vigil.dev/admission": "fail-closed"}},
        )
    ]
    relabelled = render(with_admission({"failClosed": True, "failClosedNamespaceLabel": "tier=vault"}))
    selector = relabelled[("ValidatingWebhookConfiguration", "vigil-admission-fail-closed")]["webhooks"][0]
    assert selector["namespaceSelector"]["matchLabels"] == {"tier": "vault"}
    assert ("MutatingWebhookConfiguration", "vigil-admission") not in objects
    with pytest.raises(helm_python.HelmValuesError, match="failClosedNamespaceLabel.: .no label. does not match"):
        render(with_admission({"failClosed": True, "failClosedNamespaceLabel": "no label"}))
    assert ("ValidatingWebhookConfiguration", "vigil-admission-fail-closed") not in render(
        with_admission({"failClosed": False})
    )


def test_mutating_webhook_pins_pods_on_create_only_when_asked():
    objects = render(with_admission({"mutating": {"enabled": True}}))
    mwc = objects[("MutatingWebhookConfiguration", "vigil-admission")]
    ca_bundle = objects[("ValidatingWebhookConfiguration", "vigil-admission")]["webhooks"][0]["clientConfig"][
        "caBundle"
    ]
    pods_on_create = [
        {
            "apiGroups": [""],
            "apiVersions": ["v1"],
            "operations": ["CREATE"],
            "resources": ["pods"],
            "scope": "Namespaced",
        }
    ]
    assert mwc["webhooks"] == [
        webhook(
            "/mutate",
            ca_bundle,
            name="mutate.admission.vigil.dev",
            failurePolicy="Ignore",
            reinvocationPolicy="Never",
            rules=pods_on_create,
        )
    ]
    assert ("ValidatingWebhookConfiguration", "vigil-admission-fail-closed") not in objects


def test_exempt_namespaces_follow_the_chart_namespaces_not_the_release_one():
    objects = render(with_admission(namespaces={"main": "security", "sensor": "security-nodes"}), namespace="apps")
    [hook] = objects[("ValidatingWebhookConfiguration", "vigil-admission")]["webhooks"]
    assert hook["namespaceSelector"] == {
        "matchExpressions": [
            {
                "key": "kubernetes.io/metadata.name",
                "operator": "NotIn",
                "values": ["kube-system", "kube-public", "kube-node-lease", "security", "security-nodes"],
            }
        ]
    }
    assert hook["clientConfig"]["service"] == {
        "name": "vigil-admission",
        "namespace": "security",
        "path": "/validate",
        "port": 443,
    }
    no_sensor = render(with_admission(securedCluster={"sensor": {"enabled": False}}))
    [hook] = no_sensor[("ValidatingWebhookConfiguration", "vigil-admission")]["webhooks"]
    assert hook["namespaceSelector"]["matchExpressions"][0]["values"] == [
        "kube-system",
        "kube-public",
        "kube-node-lease",
        "vigil-system",
    ]


@pytest.mark.parametrize(
    ("admission", "message"),
    [
        ({"timeoutSeconds": 6}, "- at '/securedCluster/admission/timeoutSeconds': maximum: got 6, want 5\n"),
        ({"timeoutSeconds": 0}, "- at '/securedCluster/admission/timeoutSeconds': minimum: got 0, want 1\n"),
        (
            {"tls": {"mode": "selfSigned"}},
            "- at '/securedCluster/admission/tls/mode': value must be one of 'generate', 'certManager', 'secret'\n",
        ),
        ({"replicas": 0}, "- at '/securedCluster/admission/replicas': minimum: got 0, want 1\n"),
        ({"coldBudget": 5}, "- at '/securedCluster/admission/coldBudget': maximum: got 5, want 4\n"),
        ({"failClosed": "yes"}, "- at '/securedCluster/admission/failClosed': got string, want boolean\n"),
        (
            {"mutating": {"enabeld": True}},
            "- at '/securedCluster/admission/mutating': additional properties 'enabeld' not allowed\n",
        ),
    ],
)
def test_schema_refuses_bad_admission_values(admission: dict, message: str):
    with pytest.raises(helm_python.HelmValuesError) as caught:
        render(with_admission(admission))
    assert str(caught.value) == (
        "values don't meet the specifications of the schema(s) in the following chart(s):\nvigil:\n" + message
    )


@pytest.mark.parametrize(
    ("admission", "message"),
    [
        (
            {"tls": {"mode": "secret", "secretName": "webhook-tls"}},
            "securedCluster.admission.tls.mode secret needs secretName (a kubernetes.io/tls Secret) and caBundle "
            "(the PEM CA that signed it)",
        ),
        (
            {"timeoutSeconds": 1, "coldBudget": 1},
            "securedCluster.admission.coldBudget (1 s) must be below timeoutSeconds (1 s): a cold decision must "
            "answer before the API server gives up",
        ),
    ],
)
def test_inconsistent_admission_values_fail_with_the_setting(admission: dict, message: str):
    with pytest.raises(helm_python.HelmRenderError, match=message.replace("(", r"\(").replace(")", r"\)")):
        render(with_admission(admission))


def test_user_provided_certificate_and_ca_bundle():
    objects = render(with_admission({"tls": {"mode": "secret", "secretName": "webhook-tls", "caBundle": PEM}}))
    assert not [key for key in objects if key[0] == "Secret" and key[1] != "vigil-registration"]
    [hook] = objects[("ValidatingWebhookConfiguration", "vigil-admission")]["webhooks"]
    assert base64.b64decode(hook["clientConfig"]["caBundle"]).decode() == PEM
    pod = objects[("Deployment", "vigil-admission")]["spec"]["template"]
    assert "annotations" not in pod["metadata"]
    [tls] = [v for v in pod["spec"]["volumes"] if v["name"] == "tls"]
    assert tls["secret"]["secretName"] == "webhook-tls"


CERT_MANAGER_CA = {
    ("Issuer", "vigil-admission-selfsigned"): {"selfSigned": {}},
    ("Certificate", "vigil-admission-ca"): {
        "isCA": True,
        "commonName": "vigil-admission-ca",
        "secretName": "vigil-admission-ca",
        "duration": "87600h",
        "renewBefore": "720h",
        "privateKey": {"algorithm": "ECDSA", "size": 256},
        "issuerRef": {"name": "vigil-admission-selfsigned", "kind": "Issuer"},
    },
    ("Issuer", "vigil-admission-ca"): {"ca": {"secretName": "vigil-admission-ca"}},
}


def serving_certificate(issuer_ref: dict) -> dict:
    return {
        "secretName": "vigil-admission-tls",
        "commonName": "vigil-admission.vigil-system.svc",
        "dnsNames": [
            "vigil-admission",
            "vigil-admission.vigil-system",
            "vigil-admission.vigil-system.svc",
            "vigil-admission.vigil-system.svc.cluster.local",
        ],
        "duration": "8760h",
        "renewBefore": "720h",
        "privateKey": {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"},
        "issuerRef": issuer_ref,
    }


def test_cert_manager_issues_the_certificate_and_injects_the_ca():
    values = with_admission({"tls": {"mode": "certManager"}, "failClosed": True, "mutating": {"enabled": True}})
    objects = render(values)
    cert_manager = {key: obj for key, obj in objects.items() if obj["apiVersion"] == "cert-manager.io/v1"}
    assert {key: obj["spec"] for key, obj in cert_manager.items()} == CERT_MANAGER_CA | {
        ("Certificate", "vigil-admission"): serving_certificate({"kind": "Issuer", "name": "vigil-admission-ca"})
    }
    assert {obj["metadata"]["namespace"] for obj in cert_manager.values()} == {"vigil-system"}
    assert ("Secret", "vigil-admission-tls") not in objects
    configurations = [
        objects[("ValidatingWebhookConfiguration", "vigil-admission")],
        objects[("ValidatingWebhookConfiguration", "vigil-admission-fail-closed")],
        objects[("MutatingWebhookConfiguration", "vigil-admission")],
    ]
    for configuration in configurations:
        assert configuration["metadata"]["annotations"] == {
            "cert-manager.io/inject-ca-from": "vigil-system/vigil-admission"
        }
        [hook] = configuration["webhooks"]
        assert "caBundle" not in hook["clientConfig"]
    report = helm_python.lint(str(CHART), values, strict=True, kube_version="v1.30.0")
    assert report["errors"] == [] and [m for m in report["messages"] if m["severity"] >= 2] == []

    issuer = {"kind": "ClusterIssuer", "name": "corp-ca"}
    objects = render(with_admission({"tls": {"mode": "certManager", "certManager": {"issuerRef": issuer}}}))
    cert_manager = {key: obj["spec"] for key, obj in objects.items() if obj["apiVersion"] == "cert-manager.io/v1"}
    assert cert_manager == {("Certificate", "vigil-admission"): serving_certificate(issuer)}


def test_deployment_runs_the_webhook_restricted_and_spread():
    objects = render(DEFAULTS)
    deployment = objects[("Deployment", "vigil-admission")]
    assert deployment["metadata"]["namespace"] == "vigil-system"
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
    }
    assert deployment["spec"]["selector"] == {"matchLabels": SELECTOR}
    spec = deployment["spec"]["template"]["spec"]
    assert restricted_violations(spec) == []
    assert spec["serviceAccountName"] == "vigil-admission"
    assert spec["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 65532,
        "runAsGroup": 65532,
        "fsGroup": 65532,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert spec["topologySpreadConstraints"] == [
        {
            "maxSkew": 1,
            "topologyKey": key,
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": SELECTOR},
        }
        for key in ("kubernetes.io/hostname", "topology.kubernetes.io/zone")
    ]
    [container] = spec["containers"]
    assert container["args"] == [
        "admission",
        "--credential-file",
        "/var/run/vigil/admission/credential",
        "--listen",
        "0.0.0.0:8443",
        "--tls-ca-cert",
        "/etc/vigil/admission-tls/ca.crt",
        "--tls-ca-key",
        "/etc/vigil/admission-tls/ca.key",
        "--tls-host",
        "vigil-admission",
        "--tls-host",
        "vigil-admission.vigil-system",
        "--tls-host",
        "vigil-admission.vigil-system.svc",
        "--tls-host",
        "vigil-admission.vigil-system.svc.cluster.local",
        "--cold-budget",
        "0.8",
    ]
    # Serving the chart's certificate instead, and in the other modes:
    for admission in (
        {"tls": {"selfIssue": False}},
        {"tls": {"mode": "certManager"}},
        {"tls": {"mode": "secret", "secretName": "t", "caBundle": PEM}},
    ):
        deployment = render(with_admission(admission))[("Deployment", "vigil-admission")]
        [other] = deployment["spec"]["template"]["spec"]["containers"]
        assert other["args"][5:9] == [
            "--tls-cert",
            "/etc/vigil/admission-tls/tls.crt",
            "--tls-key",
            "/etc/vigil/admission-tls/tls.key",
        ]
        assert "--tls-ca-key" not in other["args"]
    assert container["env"] == [
        {"name": "VIGIL_SERVICE_URL", "value": "https://vigil-service.vigil-system.svc:443"},
        {
            "name": "VIGIL_CLUSTER_ID",
            "valueFrom": {"secretKeyRef": {"name": "vigil-admission-credential", "key": "cluster-id"}},
        },
    ]
    assert container["ports"] == [{"name": "https", "containerPort": 8443, "protocol": "TCP"}]
    assert container["readinessProbe"] == {
        "httpGet": {"path": "/readyz", "port": "https", "scheme": "HTTPS"},
        "periodSeconds": 5,
        "timeoutSeconds": 2,
    }
    assert container["livenessProbe"] == {
        "httpGet": {"path": "/healthz", "port": "https", "scheme": "HTTPS"},
        "periodSeconds": 20,
        "timeoutSeconds": 5,
    }
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert container["resources"] == {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}}
    assert {m["mountPath"]: m.get("readOnly", False) for m in container["volumeMounts"]} == {
        "/tmp": False,
        "/etc/vigil/admission-tls": True,
        "/var/run/vigil/admission": True,
    }
    volumes = {v["name"]: v for v in spec["volumes"]}
    # Optional: the pod runs before the controller has written the credential, and the webhook waits for it.
    assert volumes["credential"] == {
        "name": "credential",
        "secret": {
            "secretName": "vigil-admission-credential",
            "optional": True,
            "defaultMode": 0o440,
            "items": [{"key": "credential", "path": "credential"}],
        },
    }
    assert volumes["tmp"] == {"name": "tmp", "emptyDir": {}}
    assert sorted(volumes) == ["credential", "tls", "tmp"]


def test_deployment_takes_the_controllers_service_settings_and_registry_config():
    remote = yaml.safe_load((CHART / "ci" / "secured-cluster-only-values.yaml").read_text())
    objects = render(remote)
    [container] = objects[("Deployment", "vigil-admission")]["spec"]["template"]["spec"]["containers"]
    assert container["args"][-4:] == ["--service-ca", "/etc/vigil/ca/ca.crt", "--cold-budget", "0.8"]
    assert container["env"][0] == {"name": "VIGIL_SERVICE_URL", "value": "https://vigil.example.com"}
    assert container["image"] == "registry.example.com/security/vigil@sha256:" + "0" * 64
    assert config_map_namespaces(remote) == ["vigil-system", "vigil-sensor"]

    gitops = with_admission(
        {"registryConfig": {"existingSecret": "vigil-registries"}, "coldBudget": 0.25},
        central={"enabled": False},
        securedCluster={
            "existingSecret": "vigil-controller",
            "settingsFromSecret": True,
            "serviceCA": PEM,
            "controller": {"enabled": False},
        },
    )
    objects = render(gitops)
    spec = objects[("Deployment", "vigil-admission")]["spec"]["template"]["spec"]
    [container] = spec["containers"]
    assert container["args"][container["args"].index("--service-ca") :] == [
        "--service-ca",
        "/etc/vigil/ca/ca.crt",
        "--registry-config",
        "/etc/vigil/registry/registry-config.yaml",
        "--cold-budget",
        "0.25",
    ]
    assert container["env"][0] == {
        "name": "VIGIL_SERVICE_URL",
        "valueFrom": {"secretKeyRef": {"name": "vigil-controller", "key": "service-url"}},
    }
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["registry-config"]["secret"] == {
        "secretName": "vigil-registries",
        "defaultMode": 0o440,
        "items": [{"key": "registry-config.yaml", "path": "registry-config.yaml"}],
    }
    assert volumes["service-ca"] == {"name": "service-ca", "configMap": {"name": "vigil-service-ca"}}
    # Without the controller the webhook still gets the namespace, the CA ConfigMap and its objects.
    assert config_map_namespaces(gitops) == ["vigil-system", "vigil-sensor"]
    assert objects[("Namespace", "vigil-system")]
    assert ("Deployment", "vigil-controller") not in objects
    for obj in objects.values():
        kubernetes_validate.validate(obj, "1.30.0", strict=True)


def test_service_and_disruption_budget():
    objects = render(DEFAULTS)
    service = objects[("Service", "vigil-admission")]
    assert service["spec"] == {
        "type": "ClusterIP",
        "selector": SELECTOR,
        "ports": [{"name": "https", "port": 443, "targetPort": "https", "protocol": "TCP"}],
    }
    assert objects[("PodDisruptionBudget", "vigil-admission")]["spec"] == {
        "minAvailable": 1,
        "selector": {"matchLabels": SELECTOR},
    }
    single = render(with_admission({"replicas": 1}))
    assert single[("Deployment", "vigil-admission")]["spec"]["replicas"] == 1
    assert ("PodDisruptionBudget", "vigil-admission") not in single


def test_rbac_is_minimal():
    objects = render(DEFAULTS)
    assert objects[("ClusterRole", "vigil-admission")]["rules"] == [
        {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get", "list", "watch"]}
    ]
    binding = objects[("ClusterRoleBinding", "vigil-admission")]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": "vigil-admission",
    }
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "vigil-admission", "namespace": "vigil-system"}]
    # Nothing else is granted to the webhook's account.
    bound = [
        obj["roleRef"]["name"]
        for obj in objects.values()
        if obj["kind"] in ("RoleBinding", "ClusterRoleBinding")
        and {"kind": "ServiceAccount", "name": "vigil-admission", "namespace": "vigil-system"} in obj["subjects"]
    ]
    assert bound == ["vigil-admission"]
    # The controller writes the webhook's credential Secret: that one name is added to its own Secret's Role.
    assert objects[("Role", "vigil-controller-credential")]["rules"] == [
        {
            "apiGroups": [""],
            "resources": ["secrets"],
            "resourceNames": ["vigil-controller-credential", "vigil-admission-credential"],
            "verbs": ["get", "patch"],
        },
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["create"]},
    ]


def test_network_policy_admits_the_api_server_on_the_webhook_port_only():
    policy = render(DEFAULTS)[("NetworkPolicy", "vigil-admission")]
    assert policy["metadata"]["namespace"] == "vigil-system"
    assert policy["spec"] == {
        "podSelector": {"matchLabels": SELECTOR},
        "policyTypes": ["Ingress"],
        "ingress": [{"ports": [{"port": 8443, "protocol": "TCP"}]}],
    }
    assert ("NetworkPolicy", "vigil-admission") not in render(with_admission(networkPolicy={"enabled": False}))


def test_disabled_renders_no_admission_object():
    objects = render(with_admission({"enabled": False}))
    assert [
        key for key, obj in objects.items() if obj["metadata"]["labels"]["app.kubernetes.io/component"] == "admission"
    ] == []
    assert objects[("Role", "vigil-controller-credential")]["rules"][0]["resourceNames"] == [
        "vigil-controller-credential"
    ]
    assert "Admission webhook" not in render_files(with_admission({"enabled": False}))["vigil/templates/NOTES.txt"]


ALL_ON = [
    {},
    {"failClosed": True, "mutating": {"enabled": True}},
    {"failClosed": True, "mutating": {"enabled": True}, "tls": {"mode": "certManager"}},
    {"failClosed": True, "mutating": {"enabled": True}, "tls": {"mode": "secret", "secretName": "t", "caBundle": PEM}},
]


@pytest.mark.parametrize("admission", ALL_ON, ids=["defaults", "all-webhooks", "cert-manager", "own-secret"])
def test_uninstall_leaves_no_webhook(admission: dict):
    """`helm uninstall` deletes a release's objects but keeps those annotated helm.sh/resource-policy: keep and
    never deletes hook objects without a delete policy: the webhook configurations (and what they call) are
    neither, so no webhook is left pointing at a deleted Service."""
    objects = render(with_admission(admission))
    webhooks = [o for o in objects.values() if o["kind"].endswith("WebhookConfiguration")]
    assert webhooks
    admission = [o for o in objects.values() if o["metadata"]["labels"]["app.kubernetes.io/component"] == "admission"]
    assert all(w in admission for w in webhooks)
    for obj in admission:
        annotations = obj["metadata"].get("annotations") or {}
        assert not [a for a in annotations if a.startswith("helm.sh/")], (obj["kind"], obj["metadata"]["name"])
    template = (CHART / "templates" / "admission.yaml").read_text()
    assert "helm.sh/hook" not in template and "helm.sh/resource-policy" not in template


def test_notes_name_the_webhook_and_its_exemptions():
    notes = render_files(with_admission({"failClosed": True}))["vigil/templates/NOTES.txt"]
    assert (
        "Admission webhook vigil-admission (2 replicas, fail-open, 5 s time-out, plus fail-closed webhook "
        "vigil-admission-fail-closed) checks pods outside kube-system, kube-public, kube-node-lease, vigil-system, "
        "vigil-sensor;\nit reads Secret vigil-system/vigil-admission-credential (the controller writes it). "
        "TLS: generate.\n"
    ) in notes


# The upgrade path: `lookup` answers only against a live cluster, so the chart's own helper is driven here with
# the Secret an earlier release made (as lookup returns it) and the time of the upgrade.
PROBE = """{{ include "vigil.admissionGeneratedTls" (dict "old" .Values.old "now" .Values.now "rotation"
  .Values.rotation "host" "vigil-admission.vigil-system.svc" "dnsNames" (list "vigil-admission.vigil-system.svc")) }}
"""
DAY = 86400


@pytest.fixture(scope="module")
def probe_chart(tmp_path_factory) -> Path:
    chart = tmp_path_factory.mktemp("probe")
    (chart / "templates").mkdir()
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: probe\nversion: 0.1.0\n")
    (chart / "templates" / "_helpers.tpl").write_text((CHART / "templates" / "_helpers.tpl").read_text())
    (chart / "templates" / "probe.yaml").write_text(PROBE)
    return chart


def generate(probe_chart: Path, old: dict, now: int, rotation: str = "") -> dict:
    """The Secret the chart would apply: as lookup would return it on the next upgrade."""
    chart = helm_python.Chart.load(str(probe_chart))
    try:
        out = chart.render({"old": old, "now": now, "rotation": rotation}, name="vigil", namespace="vigil-system")
    finally:
        chart.close()
    made = yaml.safe_load(out["probe/templates/probe.yaml"])
    return {"metadata": {"annotations": made["annotations"]}, "data": made["data"], "caBundle": made["caBundle"]}


def certificate(secret: dict, key: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(base64.b64decode(secret["data"][key]))


def test_upgrade_keeps_the_ca_and_renews_the_certificate_in_its_last_30_days(probe_chart: Path):
    installed_at = 1_800_000_000
    first = generate(probe_chart, {}, installed_at)
    assert first["metadata"]["annotations"] == {
        "vigil.dev/rotation": "",
        "vigil.dev/renew-after": str(installed_at + 335 * DAY),
        "vigil.dev/ca-renew-after": str(installed_at + 3620 * DAY),
    }
    assert first["caBundle"] == first["data"]["ca.crt"]

    # A later upgrade within the certificate's first 335 days changes nothing: same caBundle, no rollout.
    assert generate(probe_chart, first, installed_at + 334 * DAY) == first

    # Past that, a new certificate from the same CA (so caBundle, and the API server's trust, stay).
    renewed_at = installed_at + 336 * DAY
    renewed = generate(probe_chart, first, renewed_at)
    assert {k: renewed["data"][k] for k in ("ca.crt", "ca.key")} == {k: first["data"][k] for k in ("ca.crt", "ca.key")}
    assert renewed["data"]["tls.crt"] != first["data"]["tls.crt"]
    assert renewed["data"]["tls.key"] != first["data"]["tls.key"]
    ca, leaf = certificate(renewed, "ca.crt"), certificate(renewed, "tls.crt")
    ca.public_key().verify(leaf.signature, leaf.tbs_certificate_bytes, ec.ECDSA(leaf.signature_hash_algorithm))
    assert leaf.subject.rfc4514_string() == "CN=vigil-admission.vigil-system.svc"
    assert renewed["metadata"]["annotations"] == {
        "vigil.dev/rotation": "",
        "vigil.dev/renew-after": str(renewed_at + 335 * DAY),
        "vigil.dev/ca-renew-after": str(installed_at + 3620 * DAY),
    }
    assert renewed["caBundle"] == first["data"]["ca.crt"]


@pytest.mark.parametrize(
    ("change", "rotation", "later"),
    [
        ("a new rotation value", "2027-01", 1),
        ("the CA in its last 30 days", "", 3621),
        ("a Secret without the CA key", "", 1),
    ],
)
def test_a_new_ca_on(probe_chart: Path, change: str, rotation: str, later: int):
    installed_at = 1_800_000_000
    first = generate(probe_chart, {}, installed_at)
    old = copy.deepcopy(first)
    if change == "a Secret without the CA key":
        del old["data"]["ca.key"]
    again = generate(probe_chart, old, installed_at + later * DAY, rotation)
    assert again["data"]["ca.crt"] != first["data"]["ca.crt"]
    assert again["metadata"]["annotations"] == {
        "vigil.dev/rotation": rotation,
        "vigil.dev/renew-after": str(installed_at + (later + 335) * DAY),
        "vigil.dev/ca-renew-after": str(installed_at + (later + 3620) * DAY),
    }
    # The pods roll to the new CA's certificates one by one: until the next upgrade caBundle also trusts the
    # CA an old pod still serves from, unless a new rotation value retired it.
    new_ca, old_ca = (base64.b64decode(s["data"]["ca.crt"]).strip() for s in (again, first))
    trusted = [c.public_bytes(serialization.Encoding.PEM).strip() for c in bundle(again)]
    assert trusted == ([new_ca] if rotation else [new_ca, old_ca])
    leaf = certificate(again, "tls.crt")
    bundle(again)[0].public_key().verify(
        leaf.signature, leaf.tbs_certificate_bytes, ec.ECDSA(leaf.signature_hash_algorithm)
    )
    # The next upgrade keeps the new CA and trusts it alone.
    assert (
        generate(probe_chart, again, installed_at + (later + 1) * DAY, rotation)["caBundle"] == again["data"]["ca.crt"]
    )


def bundle(secret: dict) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(base64.b64decode(secret["caBundle"]))
