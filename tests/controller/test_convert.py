"""Object -> wire conversion on every real Pod and Node object in shared/data/k8s."""

from __future__ import annotations

import logging

import pytest

from vigil.controller.convert import ConversionError, node_to_wire, pod_to_wire, security_facts
from vigil.controller.state import ClusterState

from .conftest import k8s_objects


def _pods():
    return {n: o for n, o in k8s_objects("pods").items() if o["kind"] == "Pod"}


def test_every_real_pod_converts():
    pods = _pods()
    assert len(pods) == 8
    for name, obj in pods.items():
        pod = pod_to_wire(obj, "Pod", obj["metadata"]["name"])
        assert pod.uid == obj["metadata"]["uid"], name
        assert {c.name for c in pod.containers} >= {c["name"] for c in obj["spec"]["containers"]}, name


def test_every_real_node_converts():
    nodes = k8s_objects("nodes")
    assert len(nodes) == 6
    for name, obj in nodes.items():
        node = node_to_wire(obj)
        info = obj["status"]["nodeInfo"]
        assert (node.name, node.kernel_version, node.os_image, node.container_runtime, node.architecture) == (
            obj["metadata"]["name"],
            info["kernelVersion"],
            info["osImage"],
            info["containerRuntimeVersion"],
            info["architecture"],
        ), name
        assert [(c.type, c.status) for c in node.conditions] == [
            (c["type"], c["status"]) for c in obj["status"].get("conditions") or []
        ]


def test_eks_node_facts():
    node = node_to_wire(k8s_objects("nodes")["eks.json"])
    assert node.name == "ip-1-1-1-1.eu-west-1.compute.internal"
    assert node.architecture == "arm64"
    assert node.kernel_version == "5.10.219-208.866.amzn2.aarch64"
    assert node.os_image == "Amazon Linux 2"
    assert node.container_runtime == "containerd://1.7.11"
    assert node.kubelet_version == "v1.29.3-eks-ae9a62a"
    assert node.labels["kubernetes.io/arch"] == "arm64"
    assert not node.sensor_disabled


def test_deployment_pod_containers_all_kinds_and_docker_pullable_digest():
    pod = pod_to_wire(_pods()["deployment.json"], "Deployment", "nginx")
    by = {(c.kind, c.name): c for c in pod.containers}
    assert sorted(by) == [("ephemeral", "abc"), ("init", "bla"), ("regular", "nginx")]
    nginx = by[("regular", "nginx")]
    assert nginx.image == "nginx@sha256:f7988fb6c02e0ce69257d9bd9cf37ae20a60f1df7563c3a2a6abe24160306b8d"
    assert (
        nginx.image_id
        == "docker-pullable://nginx@sha256:f7988fb6c02e0ce69257d9bd9cf37ae20a60f1df7563c3a2a6abe24160306b8d"
    )
    assert nginx.image_digest == "sha256:f7988fb6c02e0ce69257d9bd9cf37ae20a60f1df7563c3a2a6abe24160306b8d"
    assert nginx.container_id == "docker://f41bb9e0b603517517603bab82762e33a95fb5f8fad62c9152089875e08e0b38"
    assert nginx.state == "running"
    # The init and ephemeral containers have no status: reported as written, without runtime facts.
    assert by[("init", "bla")].image_digest is None and by[("init", "bla")].container_id is None
    assert by[("init", "bla")].state == "unknown"
    assert pod.workload.kind == "Deployment" and pod.node_name == "minikube" and pod.phase == "Running"


def test_registry_image_id_digest_and_containerd_id():
    pod = pod_to_wire(_pods()["statefulset.json"], "StatefulSet", "web")
    (c,) = pod.containers
    assert c.image == "registry.k8s.io/nginx-slim:0.24"
    assert c.image_digest == "sha256:0e3657b75574b38c98c9ea0cc5a90a24352515b0237035fa61dadd457fe4b426"
    assert c.container_id == "containerd://8c4b5311ed9bc3fd8d1ffb8cf5e5c6937e16edbff198dad373863c6941bbfdc4"


def test_cronjob_pod_terminated_and_security():
    pod = pod_to_wire(_pods()["cronjob.json"], "CronJob", "kubevuln-scheduler")
    (c,) = pod.containers
    assert c.image == "quay.io/kubescape/http-request:v0.2.8"
    assert c.image_digest == "sha256:7fa45952fe6c5ce0bbd4c2172b56a0e93345d2d7f13750fac1e720548898b44a"
    assert c.state == "terminated"
    assert pod.phase == "Succeeded"
    assert pod.security.run_as_non_root is True and pod.security.run_as_user == 100
    assert pod.security.privileged is False


def test_daemonset_pod_security_facts():
    pod = pod_to_wire(_pods()["daemonset.json"], "DaemonSet", "node-agent")
    s = pod.security
    assert s.host_pid is True
    assert s.added_capabilities == [
        "SYS_ADMIN",
        "SYS_PTRACE",
        "NET_ADMIN",
        "SYSLOG",
        "SYS_RESOURCE",
        "IPC_LOCK",
        "NET_RAW",
    ]
    assert s.run_as_user == 0 and s.privileged is False


def test_pod_without_status_is_reported_as_what_it_is():
    pod = pod_to_wire(_pods()["podstatusnotpresent.json"], "Pod", "nginx")
    assert pod.phase == "Unknown"
    (c,) = pod.containers
    assert (c.image, c.image_id, c.image_digest, c.container_id, c.state) == ("nginx:1.15", "", None, None, "unknown")


@pytest.mark.parametrize(
    "image_id,digest",
    [
        ("docker-pullable://nginx@sha256:" + "a" * 64, "sha256:" + "a" * 64),
        ("quay.io/x/y@sha256:" + "b" * 64, "sha256:" + "b" * 64),
        # A bare image id is the config digest, not a manifest digest: no digest (vigil.model.image).
        ("sha256:" + "c" * 64, None),
        ("docker://sha256:" + "d" * 64, None),
        ("", None),
    ],
)
def test_image_id_forms(image_id, digest):
    obj = {
        "metadata": {"uid": "u1", "namespace": "ns", "name": "p"},
        "spec": {"containers": [{"name": "c", "image": "x"}]},
        "status": {
            "phase": "Pending",
            "containerStatuses": [
                {"name": "c", "imageID": image_id, "image": "x", "state": {"waiting": {"reason": "ContainerCreating"}}}
            ],
        },
    }
    (c,) = pod_to_wire(obj, "Pod", "p").containers
    assert c.image_digest == digest and c.state == "waiting"


def test_security_container_overrides_pod_and_privileged_any_kind():
    spec = {
        "securityContext": {"runAsNonRoot": True, "runAsUser": 1000},
        "hostNetwork": True,
        "hostIPC": True,
        "containers": [
            {"name": "a", "image": "x"},
            {"name": "b", "image": "x", "securityContext": {"runAsUser": 2000}},
        ],
        "initContainers": [
            {
                "name": "i",
                "image": "x",
                "securityContext": {"privileged": True, "runAsNonRoot": False, "capabilities": {"add": ["NET_ADMIN"]}},
            }
        ],
    }
    s = security_facts(spec)
    assert s.privileged is True and s.host_network is True and s.host_ipc is True and s.host_pid is False
    assert s.run_as_non_root is False  # the init container overrides the pod's setting
    assert s.run_as_user == 1000
    assert s.added_capabilities == ["NET_ADMIN"]


def test_pod_without_uid_is_an_error_naming_it():
    with pytest.raises(ConversionError, match=r"Pod ns/p .*metadata.uid is missing"):
        pod_to_wire({"kind": "Pod", "metadata": {"namespace": "ns", "name": "p"}}, "Pod", "p")


def test_odd_objects_never_stop_the_state(caplog):
    state = ClusterState()
    caplog.set_level(logging.WARNING)
    state.upsert_pod({"kind": "Pod", "metadata": {"name": "x"}})  # no uid, no namespace
    state.upsert_pod({"kind": "Pod", "metadata": {"uid": "u", "namespace": "Bad_NS", "name": "p"}, "spec": None})
    state.upsert_node({"kind": "Node", "metadata": {}})
    state.upsert_pod(
        {
            "kind": "Pod",
            "metadata": {"uid": "u2", "namespace": "n", "name": "ok"},
            "spec": {"containers": [{"name": "c"}]},
            "status": {"phase": "Weird"},
        }
    )
    assert list(state.pods) == ["u2"] and state.pods["u2"].containers == [] and state.pods["u2"].phase == "Unknown"
    text = caplog.text
    assert "pod skipped: it lacks metadata.uid, namespace or name: Pod x (keys: kind, metadata)" in text
    assert (
        "pod skipped: Pod Bad_NS/p (keys: kind, metadata, spec): "
        "namespace: Value error, 'Bad_NS' is not a valid namespace" in text
    )
    assert "container 'c' skipped: it has no image" in text
    assert "phase 'Weird' is not a known pod phase" in text
