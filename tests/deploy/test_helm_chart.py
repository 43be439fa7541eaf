"""deploy/helm/vigil with the real Helm engine (Helm 4's Go library through helm-python-sdk): lint, render
for every values file in ci/, validate every object for two Kubernetes versions, and check the pods
against the Pod Security "restricted" profile and the flags and variables the commands really take."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
import yaml

helm_python = pytest.importorskip("helm_python", reason="helm-python-sdk (scripts/setup --test) is missing")
kubernetes_validate = pytest.importorskip("kubernetes_validate", reason="kubernetes-validate is missing")

from vigil.cli import build_app  # noqa: E402

from .pod_security import restricted_violations  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "deploy" / "helm" / "vigil"
VALUES_FILES = sorted((CHART / "ci").glob("*-values.yaml"))
KUBE_VERSIONS = ("1.30.0", "1.37.0")
NARROW_CAPABILITIES = ["BPF", "PERFMON", "SYS_RESOURCE", "SYS_PTRACE", "DAC_READ_SEARCH"]


def values_of(name: str) -> dict:
    return yaml.safe_load((CHART / "ci" / f"{name}-values.yaml").read_text())


def render(values: dict) -> list[dict]:
    chart = helm_python.Chart.load(str(CHART))
    try:
        manifests = chart.render(values, name="vigil", namespace="default", is_install=True)
    finally:
        chart.close()
    objects = []
    for path, text in sorted(manifests.items()):
        if path.endswith("NOTES.txt"):
            continue
        objects.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return objects


def by_kind(objects: list[dict]) -> dict[tuple[str, str], dict]:
    return {(o["kind"], o["metadata"]["name"]): o for o in objects}


def keys(objects: list[dict]) -> set[tuple[str, str | None, str]]:
    return {(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]) for o in objects}


def test_values_files_cover_the_install_shapes():
    assert [f.name for f in VALUES_FILES] == [
        "admission-values.yaml",
        "central-only-values.yaml",
        "defaults-values.yaml",
        "postgresql-values.yaml",
        "secured-cluster-only-values.yaml",
        "sensors-disabled-values.yaml",
    ]


@pytest.mark.parametrize("values_file", VALUES_FILES, ids=lambda p: p.name.removesuffix("-values.yaml"))
def test_chart_lints_clean(values_file: Path):
    values = yaml.safe_load(values_file.read_text())
    for version in KUBE_VERSIONS:
        report = helm_python.lint(str(CHART), values, strict=True, kube_version=f"v{version}")
        assert report["errors"] == []
        # Severity 1 is information ("icon is recommended"); nothing at warning or above.
        assert [m for m in report["messages"] if m["severity"] >= 2] == []
        assert report["total_charts_linted"] == 1


@pytest.mark.parametrize("values_file", VALUES_FILES, ids=lambda p: p.name.removesuffix("-values.yaml"))
def test_every_rendered_object_validates(values_file: Path):
    objects = render(yaml.safe_load(values_file.read_text()))
    assert objects
    for version in KUBE_VERSIONS:
        for obj in objects:
            kubernetes_validate.validate(obj, version, strict=True)


SERVICE = {
    ("Namespace", None, "vigil-system"),
    ("Deployment", "vigil-system", "vigil-service"),
    ("Service", "vigil-system", "vigil-service"),
    ("NetworkPolicy", "vigil-system", "vigil-service"),
}
CONTROLLER = {
    ("Namespace", None, "vigil-system"),
    ("ServiceAccount", "vigil-system", "vigil-controller"),
    ("ClusterRole", None, "vigil-controller"),
    ("ClusterRoleBinding", None, "vigil-controller"),
    ("Role", "vigil-system", "vigil-controller-credential"),
    ("RoleBinding", "vigil-system", "vigil-controller-credential"),
    ("Deployment", "vigil-system", "vigil-controller"),
    ("NetworkPolicy", "vigil-system", "vigil-controller"),
}
# With both the controller and the sensor: the controller writes the sensors' Secret.
SENSOR_CREDENTIAL = {
    ("Role", "vigil-sensor", "vigil-controller-sensor-credential"),
    ("RoleBinding", "vigil-sensor", "vigil-controller-sensor-credential"),
}
SENSOR = {
    ("Namespace", None, "vigil-sensor"),
    ("ServiceAccount", "vigil-sensor", "vigil-sensor"),
    ("DaemonSet", "vigil-sensor", "vigil-sensor"),
    ("NetworkPolicy", "vigil-sensor", "vigil-sensor"),
}
# The admission webhook, on by default with a certificate the chart makes.
ADMISSION = {
    ("ServiceAccount", "vigil-system", "vigil-admission"),
    ("ClusterRole", None, "vigil-admission"),
    ("ClusterRoleBinding", None, "vigil-admission"),
    ("Deployment", "vigil-system", "vigil-admission"),
    ("Service", "vigil-system", "vigil-admission"),
    ("PodDisruptionBudget", "vigil-system", "vigil-admission"),
    ("NetworkPolicy", "vigil-system", "vigil-admission"),
    ("ValidatingWebhookConfiguration", None, "vigil-admission"),
}
GENERATED_TLS = {("Secret", "vigil-system", "vigil-admission-tls")}
SQLITE = {("PersistentVolumeClaim", "vigil-system", "vigil-service-data")}
REGISTRATION = {("Secret", "vigil-system", "vigil-registration")}


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "defaults",
            SERVICE | SQLITE | CONTROLLER | REGISTRATION | SENSOR | SENSOR_CREDENTIAL | ADMISSION | GENERATED_TLS,
        ),
        (
            "admission",
            SERVICE
            | SQLITE
            | CONTROLLER
            | REGISTRATION
            | SENSOR
            | SENSOR_CREDENTIAL
            | ADMISSION
            | {
                ("ValidatingWebhookConfiguration", None, "vigil-admission-fail-closed"),
                ("MutatingWebhookConfiguration", None, "vigil-admission"),
            },
        ),
        (
            "postgresql",
            SERVICE
            | {("PodDisruptionBudget", "vigil-system", "vigil-service")}
            | CONTROLLER
            | SENSOR
            | SENSOR_CREDENTIAL
            | ADMISSION
            | GENERATED_TLS,
        ),
        ("sensors-disabled", SERVICE | SQLITE | CONTROLLER | REGISTRATION | ADMISSION | GENERATED_TLS),
        ("central-only", SERVICE | SQLITE | {("Ingress", "vigil-system", "vigil-service")}),
        (
            "secured-cluster-only",
            CONTROLLER
            | SENSOR
            | SENSOR_CREDENTIAL
            | ADMISSION
            | GENERATED_TLS
            | {("ConfigMap", "vigil-system", "vigil-service-ca"), ("ConfigMap", "vigil-sensor", "vigil-service-ca")},
        ),
    ],
)
def test_each_install_shape_renders_exactly_its_objects(name: str, expected: set):
    assert keys(render(values_of(name))) == expected


def pod_specs(objects: list[dict]) -> dict[str, dict]:
    return {
        o["metadata"]["name"]: o["spec"]["template"]["spec"]
        for o in objects
        if o["kind"] in ("Deployment", "DaemonSet")
    }


@pytest.mark.parametrize("values_file", VALUES_FILES, ids=lambda p: p.name.removesuffix("-values.yaml"))
def test_service_and_controller_meet_the_restricted_profile(values_file: Path):
    objects = render(yaml.safe_load(values_file.read_text()))
    specs = pod_specs(objects)
    checked = {name: restricted_violations(spec) for name, spec in specs.items() if name != "vigil-sensor"}
    assert checked and all(v == [] for v in checked.values()), checked
    namespaces = {o["metadata"]["name"]: o["metadata"]["labels"] for o in objects if o["kind"] == "Namespace"}
    for name, labels in namespaces.items():
        level = "privileged" if name == "vigil-sensor" else "restricted"
        assert {k: v for k, v in labels.items() if k.startswith("pod-security")} == {
            f"pod-security.kubernetes.io/{mode}": level for mode in ("enforce", "audit", "warn")
        }


def test_the_profile_check_catches_the_sensor():
    """The checker is not vacuous: the sensor's pod breaks exactly the rules it must, and no others."""
    sensor = pod_specs(render(values_of("defaults")))["vigil-sensor"]
    assert restricted_violations(sensor) == [
        "hostPID",
        "volume btf: hostPath",
        "volume tracefs: hostPath",
        "volume cgroup: hostPath",
        "volume spool: hostPath",
        "container sensor: capabilities.add BPF",
        "container sensor: capabilities.add PERFMON",
        "container sensor: capabilities.add SYS_RESOURCE",
        "container sensor: capabilities.add SYS_PTRACE",
        "container sensor: capabilities.add DAC_READ_SEARCH",
        "container sensor: runAsUser 0",
        "container sensor: seccompProfile Unconfined",
        "container sensor: runAsNonRoot not true",
    ]


def test_sensor_daemonset():
    objects = render(values_of("defaults"))
    spec = pod_specs(objects)["vigil-sensor"]
    assert spec["hostPID"] is True
    assert spec.get("hostNetwork") is None
    assert spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"] == {
        "nodeSelectorTerms": [
            {"matchExpressions": [{"key": "vigil.dev/sensor", "operator": "NotIn", "values": ["disabled"]}]}
        ]
    }
    [container] = spec["containers"]
    ctx = container["securityContext"]
    assert ctx["privileged"] is False and ctx["allowPrivilegeEscalation"] is False
    assert ctx["capabilities"] == {"drop": ["ALL"], "add": NARROW_CAPABILITIES}
    assert container["resources"] == {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}}
    mounts = {m["mountPath"]: m.get("readOnly", False) for m in container["volumeMounts"]}
    assert mounts == {
        "/sys/kernel/btf": True,
        "/sys/kernel/tracing": True,
        "/sys/fs/cgroup": True,
        "/var/lib/vigil/sensor-spool": False,
        "/var/run/vigil": True,
    }
    host_paths = {v["name"]: v["hostPath"]["path"] for v in spec["volumes"] if "hostPath" in v}
    assert host_paths == {
        "btf": "/sys/kernel/btf",
        "tracefs": "/sys/kernel/tracing",
        "cgroup": "/sys/fs/cgroup",
        "spool": "/var/lib/vigil/sensor-spool",
    }
    env = {e["name"]: e for e in container["env"]}
    assert env["VIGIL_SERVICE_URL"]["value"] == "https://vigil-service.vigil-system.svc:443"
    assert "VIGIL_SERVICE" not in env
    assert env["NODE_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "spec.nodeName"}}

    privileged = pod_specs(render(values_of("secured-cluster-only")))["vigil-sensor"]
    [container] = privileged["containers"]
    assert container["securityContext"] == {
        "runAsUser": 0,
        "runAsGroup": 0,
        "readOnlyRootFilesystem": True,
        "privileged": True,
    }
    assert container["args"] == ["sensor", "--include-host"]
    assert container["image"] == "registry.example.com/security/vigil@sha256:" + "0" * 64


def test_controller_rbac_is_read_only():
    role = by_kind(render(values_of("defaults")))[("ClusterRole", "vigil-controller")]
    verbs = {verb for rule in role["rules"] for verb in rule["verbs"]}
    resources = {r for rule in role["rules"] for r in rule["resources"]}
    assert verbs == {"get", "list", "watch"}
    assert "secrets" not in resources and not any("/" in r for r in resources)


# Exactly the calls credential_secret.py and sensor_secret.py make: get and patch on the named Secrets, and
# create (which resourceNames cannot limit).
def credential_rules(*secrets: str) -> list[dict]:
    return [
        {"apiGroups": [""], "resources": ["secrets"], "resourceNames": list(secrets), "verbs": ["get", "patch"]},
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["create"]},
    ]


def test_controller_credential_roles_are_namespaced_and_exact():
    objects = by_kind(render(values_of("defaults")))
    own = objects[("Role", "vigil-controller-credential")]
    assert own["metadata"]["namespace"] == "vigil-system"
    # With the admission webhook (the default) the controller also writes the webhook's credential.
    assert own["rules"] == credential_rules("vigil-controller-credential", "vigil-admission-credential")
    sensors = objects[("Role", "vigil-controller-sensor-credential")]
    assert sensors["metadata"]["namespace"] == "vigil-sensor"
    assert sensors["rules"] == credential_rules("vigil-sensor-credential")
    for name in ("vigil-controller-credential", "vigil-controller-sensor-credential"):
        binding = objects[("RoleBinding", name)]
        assert binding["metadata"]["namespace"] == objects[("Role", name)]["metadata"]["namespace"]
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name}
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "vigil-controller", "namespace": "vigil-system"}
        ]
    # The chart never holds the credentials: an upgrade would replace what the controller wrote.
    assert not [key for key in objects if key[0] == "Secret" and key[1].endswith("-credential")]


@pytest.mark.parametrize("values_file", VALUES_FILES, ids=lambda p: p.name.removesuffix("-values.yaml"))
def test_controller_keeps_its_credential_in_the_secret_not_a_file(values_file: Path):
    values = yaml.safe_load(values_file.read_text())
    spec = pod_specs(render(values)).get("vigil-controller")
    if spec is None:
        return
    [container] = spec["containers"]
    assert "--credential-file" not in container["args"]
    assert "VIGIL_CREDENTIAL_FILE" not in {e["name"] for e in container["env"]}
    assert [v["name"] for v in spec["volumes"] if "emptyDir" in v] == ["tmp"]
    assert [m["mountPath"] for m in container["volumeMounts"] if m["name"] == "tmp"] == ["/tmp"]
    sensors = values.get("securedCluster", {}).get("sensor", {}).get("enabled", True)
    written = ["--sensor-namespace", "vigil-sensor", "--sensor-secret", "vigil-sensor-credential"]
    assert (container["args"][1:5] == written) is sensors


def _command_params(name: str) -> tuple[set[str], set[str]]:
    """The flags and environment variables `vigil <name>` really accepts."""
    command = typer.main.get_command(build_app(only=name)).commands[name]
    flags = {opt for p in command.params for opt in (*p.opts, *getattr(p, "secondary_opts", []))}
    envvars = set()
    for p in command.params:
        envvars.update([p.envvar] if isinstance(p.envvar, str) else p.envvar or [])
    return flags, envvars


@pytest.mark.parametrize("values_file", VALUES_FILES, ids=lambda p: p.name.removesuffix("-values.yaml"))
def test_containers_use_only_real_flags_and_variables(values_file: Path):
    values = yaml.safe_load(values_file.read_text())
    secrets = {values.get("securedCluster", {}).get("registrationToken")} - {None, ""}
    for spec in pod_specs(render(values)).values():
        for container in spec["containers"]:
            role, *args = container["args"]
            flags, envvars = _command_params(role)
            assert {a for a in args if a.startswith("--")} <= flags, role
            assert {e["name"] for e in container["env"]} <= envvars, role
            # No credential on a command line: tokens come from Secrets as variables or files.
            assert not any(secret in arg for arg in container["args"] for secret in secrets)
            assert "command" not in container
            for e in container["env"]:
                if e["name"] in ("VIGIL_REGISTRATION_TOKEN", "VIGIL_DATABASE_URL", "VIGIL_CLUSTER_ID"):
                    assert set(e) == {"name", "valueFrom"} and "secretKeyRef" in e["valueFrom"], e


def test_registration_token_from_values_or_existing_secret():
    objects = by_kind(render(values_of("defaults")))
    secret = objects[("Secret", "vigil-registration")]
    import base64

    assert base64.b64decode(secret["data"]["registration-token"]).decode() == "vgl_r_example-registration-token"
    controller = pod_specs(list(objects.values()))["vigil-controller"]["containers"][0]
    env = {e["name"]: e for e in controller["env"]}
    assert env["VIGIL_REGISTRATION_TOKEN"]["valueFrom"]["secretKeyRef"] == {
        "name": "vigil-registration",
        "key": "registration-token",
    }
    assert env["VIGIL_CLUSTER_NAME"]["value"] == "prod-eu-1"
    assert env["VIGIL_SERVICE_URL"]["value"] == "https://vigil-service.vigil-system.svc:443"

    remote = pod_specs(render(values_of("secured-cluster-only")))["vigil-controller"]["containers"][0]
    env = {e["name"]: e for e in remote["env"]}
    assert env["VIGIL_REGISTRATION_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "vigil-registration-token"
    assert env["VIGIL_SERVICE_URL"]["value"] == "https://vigil.example.com"
    assert remote["args"][:7] == [
        "controller",
        "--sensor-namespace",
        "vigil-sensor",
        "--sensor-secret",
        "vigil-sensor-credential",
        "--service-ca",
        "/etc/vigil/ca/ca.crt",
    ]
    sensor = pod_specs(render(values_of("secured-cluster-only")))["vigil-sensor"]["containers"][0]
    env = {e["name"]: e for e in sensor["env"]}
    assert env["VIGIL_SERVICE_CA"] == {"name": "VIGIL_SERVICE_CA", "value": "/etc/vigil/ca/ca.crt"}
    assert "SSL_CERT_FILE" not in env


def test_service_store_and_tls():
    default = pod_specs(render(values_of("defaults")))["vigil-service"]
    [container] = default["containers"]
    assert container["args"] == [
        "service",
        "--host",
        "0.0.0.0",
        "--port",
        "8443",
        "--tls-cert",
        "/etc/vigil/tls/tls.crt",
        "--tls-key",
        "/etc/vigil/tls/tls.key",
    ]
    volumes = {v["name"]: v for v in default["volumes"]}
    assert volumes["data"] == {"name": "data", "persistentVolumeClaim": {"claimName": "vigil-service-data"}}
    assert volumes["tls"]["secret"]["secretName"] == "vigil-service-tls"

    objects = render(values_of("postgresql"))
    spec = pod_specs(objects)["vigil-service"]
    env = {e["name"]: e for e in spec["containers"][0]["env"]}
    assert env["VIGIL_DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {"name": "vigil-database", "key": "url"}
    deployment = by_kind(objects)[("Deployment", "vigil-service")]
    assert deployment["spec"]["replicas"] == 2
    pdb = by_kind(objects)[("PodDisruptionBudget", "vigil-service")]
    assert pdb["spec"] == {"minAvailable": 1, "selector": deployment["spec"]["selector"]}

    ingress_only = pod_specs(render(values_of("central-only")))["vigil-service"]
    assert ingress_only["containers"][0]["args"] == [
        "service",
        "--host",
        "0.0.0.0",
        "--port",
        "8443",
        "--insecure-http",
    ]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"central": {"replicas": 0}}, "/central/replicas"),
        ({"central": {"databse": {}}}, "databse"),
        ({"securedCluster": {"sensor": {"privileged": "yes"}}}, "/securedCluster/sensor/privileged"),
    ],
)
def test_schema_refuses_bad_values(values: dict, message: str):
    with pytest.raises(helm_python.HelmValuesError, match=message):
        render(values)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"central": {"tls": {"existingSecret": "t"}}, "securedCluster": {"registrationToken": "x"}},
            "securedCluster.clusterName is required",
        ),
        (
            {"central": {"enabled": False}, "securedCluster": {"clusterName": "c", "registrationToken": "x"}},
            "securedCluster.serviceUrl is required",
        ),
        (
            {"central": {"tls": {"existingSecret": "t"}, "replicas": 2}, "securedCluster": {"enabled": False}},
            "central.replicas > 1 needs database.type postgresql",
        ),
        ({"securedCluster": {"enabled": False}}, "central.tls: give existingSecret"),
    ],
)
def test_incomplete_values_fail_with_the_missing_setting(values: dict, message: str):
    with pytest.raises(helm_python.HelmRenderError, match=message):
        render(values)


def test_controller_writes_the_admission_secret_only_with_the_webhook():
    [controller] = pod_specs(render(values_of("defaults")))["vigil-controller"]["containers"]
    assert controller["args"][5:9] == [
        "--admission-namespace",
        "vigil-system",
        "--admission-secret",
        "vigil-admission-credential",
    ]
    values = values_of("defaults")
    values["securedCluster"]["admission"] = {"enabled": False}
    [controller] = pod_specs(render(values))["vigil-controller"]["containers"]
    # An empty name writes none: without the webhook the controller has no RBAC for that Secret.
    assert controller["args"][5:7] == ["--admission-secret", ""]
    assert "--admission-namespace" not in controller["args"]
