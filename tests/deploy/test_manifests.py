"""deploy/manifests/ is the chart rendered by scripts/render-manifests, and is kept up to date."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = REPO / "deploy" / "manifests"


def test_manifests_are_rendered_from_the_current_chart():
    pytest.importorskip("helm_python", reason="helm-python-sdk (scripts/setup --test) is missing")
    proc = subprocess.run(
        [str(REPO / "scripts" / "render-manifests"), "--check"], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip() == "render-manifests: 12 files up to date"


def objects(shape: str) -> list[dict]:
    kustomization = yaml.safe_load((MANIFESTS / shape / "kustomization.yaml").read_text())
    docs = []
    for name in kustomization["resources"]:
        docs.extend(d for d in yaml.safe_load_all((MANIFESTS / shape / name).read_text()) if d)
    return docs


def test_each_folder_is_a_kustomization_of_its_objects():
    central = {(o["kind"], o["metadata"]["name"]) for o in objects("central")}
    secured = {(o["kind"], o["metadata"]["name"]) for o in objects("secured-cluster")}
    assert central == {
        ("Namespace", "vigil-system"),
        ("PersistentVolumeClaim", "vigil-service-data"),
        ("Deployment", "vigil-service"),
        ("Service", "vigil-service"),
        ("NetworkPolicy", "vigil-service"),
    }
    assert secured == {
        ("Namespace", "vigil-system"),
        ("Namespace", "vigil-sensor"),
        ("ServiceAccount", "vigil-controller"),
        ("ClusterRole", "vigil-controller"),
        ("ClusterRoleBinding", "vigil-controller"),
        ("Role", "vigil-controller-credential"),
        ("RoleBinding", "vigil-controller-credential"),
        ("Role", "vigil-controller-sensor-credential"),
        ("RoleBinding", "vigil-controller-sensor-credential"),
        ("Deployment", "vigil-controller"),
        ("NetworkPolicy", "vigil-controller"),
        ("ServiceAccount", "vigil-sensor"),
        ("DaemonSet", "vigil-sensor"),
        ("NetworkPolicy", "vigil-sensor"),
        ("ServiceAccount", "vigil-admission"),
        ("ClusterRole", "vigil-admission"),
        ("ClusterRoleBinding", "vigil-admission"),
        ("Issuer", "vigil-admission-selfsigned"),
        ("Certificate", "vigil-admission-ca"),
        ("Issuer", "vigil-admission-ca"),
        ("Certificate", "vigil-admission"),
        ("Deployment", "vigil-admission"),
        ("Service", "vigil-admission"),
        ("PodDisruptionBudget", "vigil-admission"),
        ("NetworkPolicy", "vigil-admission"),
        ("ValidatingWebhookConfiguration", "vigil-admission"),
    }
    # No secret value is rendered: the manifests read every credential from Secrets the user creates or the
    # controller writes.
    assert not [o for o in objects("central") + objects("secured-cluster") if o["kind"] == "Secret"]
    # The webhook's CA is cert-manager's, injected into the configuration: none is rendered into the files.
    [webhooks] = [o for o in objects("secured-cluster") if o["kind"] == "ValidatingWebhookConfiguration"]
    assert webhooks["metadata"]["annotations"] == {"cert-manager.io/inject-ca-from": "vigil-system/vigil-admission"}
    assert [w["clientConfig"] for w in webhooks["webhooks"]] == [
        {"service": {"name": "vigil-admission", "namespace": "vigil-system", "path": "/validate", "port": 443}}
    ]


def test_the_old_controller_base_is_folded_in():
    assert not (REPO / "deploy" / "controller").exists()
    tracked = subprocess.run(
        ["git", "grep", "-l", "deploy/controller", "--", ":!tests/deploy/test_manifests.py"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert tracked.stdout == ""
    [role] = [
        o
        for o in objects("secured-cluster")
        if o["kind"] == "ClusterRole" and o["metadata"]["name"] == "vigil-controller"
    ]
    assert role["rules"] == [
        {
            "apiGroups": [""],
            "resources": ["nodes", "pods", "replicationcontrollers"],
            "verbs": ["get", "list", "watch"],
        },
        {
            "apiGroups": ["apps"],
            "resources": ["deployments", "replicasets", "statefulsets", "daemonsets"],
            "verbs": ["get", "list", "watch"],
        },
        {"apiGroups": ["batch"], "resources": ["jobs", "cronjobs"], "verbs": ["get", "list", "watch"]},
    ]
