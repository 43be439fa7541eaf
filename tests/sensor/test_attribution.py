from __future__ import annotations

import pytest

from vigil.sensor.attribution import (
    HOST,
    RUNTIME_LAYOUTS,
    Attribution,
    attribute_cgroup_path,
    attribute_proc_cgroup,
    proc_cgroup_paths,
)

CID = "3f2a9c0d1e8b7a6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c"
CID2 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
UID = "5b1c7e0e-2f0a-4b8e-9d3c-6a7f1e2d3c4b"
UID_ = UID.replace("-", "_")


@pytest.mark.parametrize(
    "path, expected",
    [
        # kubelet, cgroupfs driver, containerd (bare id: the node's runtime)
        (f"/kubepods/besteffort/pod{UID}/{CID}", Attribution("kubelet", "containerd", CID, UID, "besteffort")),
        (f"/kubepods/burstable/pod{UID}/{CID}", Attribution("kubelet", "containerd", CID, UID, "burstable")),
        (f"/kubepods/pod{UID}/{CID}", Attribution("kubelet", "containerd", CID, UID, "guaranteed")),
        (f"kubepods/besteffort/pod{UID}/{CID}", Attribution("kubelet", "containerd", CID, UID, "besteffort")),
        # kubelet, cgroupfs driver, CRI-O
        (f"/kubepods/burstable/pod{UID}/crio-{CID}", Attribution("kubelet", "cri-o", CID, UID, "burstable")),
        # kubelet, systemd driver
        (
            f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice/cri-containerd-{CID}.scope",
            Attribution("kubelet", "containerd", CID, UID, "burstable"),
        ),
        (
            f"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{UID_}.slice/crio-{CID}.scope",
            Attribution("kubelet", "cri-o", CID, UID, "besteffort"),
        ),
        (
            f"/kubepods.slice/kubepods-pod{UID_}.slice/cri-containerd-{CID}.scope",
            Attribution("kubelet", "containerd", CID, UID, "guaranteed"),
        ),
        (
            f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice/docker-{CID}.scope",
            Attribution("kubelet", "docker", CID, UID, "burstable"),
        ),
        # a process in a sub-cgroup of its container (systemd inside the container)
        (
            f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice/cri-containerd-{CID}.scope/init.scope",
            Attribution("kubelet", "containerd", CID, UID, "burstable"),
        ),
        # kind / nested kubelet under a prefix slice
        (
            f"/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/"
            f"kubelet-kubepods-besteffort-pod{UID_}.slice/cri-containerd-{CID}.scope",
            Attribution("kubelet", "containerd", CID, UID, "besteffort"),
        ),
        # the pod's own cgroup (no container): pod known, container not
        (f"/kubepods/burstable/pod{UID}", Attribution("kubelet", pod_uid=UID, qos_class="burstable")),
        # CRI-O's conmon is the runtime's helper, in the pod but not a container
        (
            f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice/crio-conmon-{CID}.scope",
            Attribution("kubelet", pod_uid=UID, qos_class="burstable"),
        ),
        # Docker
        (f"/docker/{CID}", Attribution("docker", "docker", CID)),
        (f"/system.slice/docker-{CID}.scope", Attribution("systemd-scope", "docker", CID)),
        # Podman
        (f"/machine.slice/libpod-{CID}.scope", Attribution("systemd-scope", "podman", CID)),
        (
            f"/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{CID}.scope",
            Attribution("systemd-scope", "podman", CID),
        ),
        # containerd without Kubernetes (ctr run: /<namespace>/<id>)
        (f"/default/{CID2}", Attribution("containerd-namespace", "containerd", CID2)),
        # the host
        ("/", HOST),
        ("", HOST),
        ("/system.slice/containerd.service", HOST),
        ("/user.slice/user-0.slice/session-3.scope", HOST),
        ("/init.scope", HOST),
        (f"/system.slice/libpod-conmon-{CID}.scope", HOST),
        ("/kubepods/besteffort", HOST),
        ("/kubepods.slice/kubepods-burstable.slice", HOST),
        # malformed: not a uid, not a 64-hex id
        ("/kubepods/besteffort/podnot-a-uid/abc", HOST),
        (f"/docker/{CID[:12]}", HOST),
        (f"/system.slice/docker-{CID.upper()}.scope", HOST),
        # a "pod" directory outside kubepods is not a pod
        (f"/mything/pod{UID}/{CID}", HOST),
    ],
)
def test_attribute_cgroup_path(path: str, expected: Attribution) -> None:
    assert attribute_cgroup_path(path) == expected


def test_default_runtime_names_bare_ids() -> None:
    a = attribute_cgroup_path(f"/kubepods/besteffort/pod{UID}/{CID}", default_runtime="cri-o")
    assert a.container_ref == f"cri-o://{CID}"
    assert a.pod_uid == UID


def test_container_ref_and_host() -> None:
    a = attribute_cgroup_path(f"/kubepods.slice/kubepods-pod{UID_}.slice/cri-containerd-{CID}.scope")
    assert a.container_ref == f"containerd://{CID}"
    assert not a.is_host
    assert HOST.is_host and HOST.container_ref is None


def test_layout_table_lists_every_parser() -> None:
    assert list(RUNTIME_LAYOUTS) == ["kubelet", "docker", "systemd-scope", "containerd-namespace"]


HYBRID_CONTAINER = f"""9:name=systemd:/kubepods/besteffort/pod{UID}/{CID}
8:pids:/kubepods/besteffort/pod{UID}/{CID}
4:memory:/process_api/078a/kubepods/besteffort/pod{UID}/{CID}
0::/kubepods/besteffort/pod{UID}/{CID}
"""
# A runtime that joined only the v1 hierarchies: the unified path says nothing.
V1_ONLY = f"""4:memory:/kubepods/burstable/pod{UID}/{CID}
1:cpu:/kubepods/burstable/pod{UID}/{CID}
0::/
"""
HOST_HYBRID = """9:name=systemd:/
4:memory:/process_api/078a7f2925c169aa007e758e067bd2a5
0::/
"""


def test_proc_cgroup_paths_prefers_unified() -> None:
    assert proc_cgroup_paths(HYBRID_CONTAINER)[0] == f"/kubepods/besteffort/pod{UID}/{CID}"
    assert proc_cgroup_paths("0::/system.slice/x.service\n") == ["/system.slice/x.service"]


def test_attribute_proc_cgroup() -> None:
    assert attribute_proc_cgroup(HYBRID_CONTAINER) == Attribution("kubelet", "containerd", CID, UID, "besteffort")
    assert attribute_proc_cgroup(V1_ONLY) == Attribution("kubelet", "containerd", CID, UID, "burstable")
    assert attribute_proc_cgroup(HOST_HYBRID) == HOST
