"""Vigil's image from deploy/image/Containerfile: built by scripts/build-image with buildah (cached),
pushed with skopeo to a loopback docker-registry behind htpasswd, pulled and run with podman as uid
65532, and scanned by Vigil itself. Each role runs from it as its chart runs it: the service; the
controller syncing the test Kubernetes API server into a service; the sensor with host PID and five
capabilities, tracing a containerd container and shipping to a service."""

from __future__ import annotations

import base64
import json
import os
import re
import socket
import subprocess
import sys
import tarfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from vigil.devtools.containerd import missing_tools, start_containerd
from vigil.devtools.kubeapi import KubeAPIServer
from vigil.devtools.kubeapi.resources import BY_KIND
from vigil.devtools.registry_server import RegistryServer, find_registry_binary
from vigil.devtools.service import LiveService
from vigil.intel import AdvisoryStore

from .conftest import ENV, REPO, need, run

# The sensor's harness lives beside its tests, not in a package: it is importable only once its folder is on the path.
sys.path.insert(0, str(REPO / "tests" / "sensor"))

from sensor_e2e import (  # noqa: E402
    inventory_snapshot,
    new_container_ids,
    node_sensor,
    post_inventory,
    processes,
    pull,
    push_image,
    remove_container,
    run_container,
    wait_for,
    wait_for_cmdline,
    web_pod,
)

PODMAN = ["podman", "--storage-driver", "vfs", "--runtime", "runc", "--cgroup-manager", "cgroupfs"]
# podman's default rlimits exceed this machine's hard limits.
ULIMITS = ["--ulimit", "nofile=20000:20000", "--ulimit", "nproc=4096:4096"]
# The image build alone takes minutes on a busy 2-core machine.
pytestmark = pytest.mark.timeout(1800)
TOKEN_LINE = re.compile(r"^vgl_u_\S+$", re.M)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def auth_registry(tmp_path):
    """A registry that wants a password, and a containers-auth.json holding it (never on a command line)."""
    with RegistryServer.for_pytest(tmp_path / "registry", users={"ci": "push-secret"}) as server:
        authfile = tmp_path / "auth.json"
        auth = base64.b64encode(b"ci:push-secret").decode()
        authfile.write_text(json.dumps({"auths": {server.host: {"auth": auth}}}))
        authfile.chmod(0o600)
        yield server, authfile


def test_build_info_and_labels(vigil_image: Path, build_info: dict):
    layout = vigil_image / "oci"
    [desc] = json.loads((layout / "index.json").read_text())["manifests"]
    assert desc["annotations"]["org.opencontainers.image.ref.name"] == build_info["version"] == "0.1.0"
    config = run(["skopeo", "inspect", "--config", f"oci:{layout}:{build_info['version']}"]).stdout
    config = json.loads(config)
    labels = config["config"]["Labels"]
    assert labels["org.opencontainers.image.version"] == "0.1.0"
    assert labels["org.opencontainers.image.revision"] == build_info["revision"]
    assert re.fullmatch(r"[0-9a-f]{40}(-dirty)?", build_info["revision"])
    assert labels["org.opencontainers.image.created"] == build_info["created"]
    assert labels["org.opencontainers.image.source"].startswith("https://")
    assert config["config"]["User"] == "65532:65532"
    assert config["config"]["Entrypoint"] == ["/opt/vigil/bin/vigil"]
    # --timestamp: the image's creation time is the inputs' last commit, not the build's wall clock.
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(build_info["source_date_epoch"]))
    assert config["created"].startswith(created[:-1])
    assert build_info["created"] == created
    # ... and every file Vigil's stage adds carries that time too (the base's layer is the base's).
    manifest = json.loads((layout / "blobs" / "sha256" / desc["digest"].split(":", 1)[1]).read_text())
    [*_, own] = manifest["layers"]
    with tarfile.open(layout / "blobs" / "sha256" / own["digest"].split(":", 1)[1]) as tar:
        mtimes = {member.mtime for member in tar}
        names = set(tar.getnames())
    assert mtimes == {build_info["source_date_epoch"]}
    assert {"opt/vigil/bin/vigil", "usr/lib/x86_64-linux-gnu/libbpf.so.1", "var/lib/vigil"} <= names
    leftovers = [
        n
        for n in names
        if n.startswith(("var/lib/apt/lists/", "var/cache/apt/archives/"))
        and n.rsplit("/", 1)[1] not in ("partial", "lock", ".wh.partial", ".wh.lock")
    ]
    assert leftovers == []


def test_cached_build_is_reused(vigil_image: Path, base_image: str):
    """Unchanged inputs: the same directory comes back without building (well under the build's time)."""
    started = time.monotonic()
    proc = run([str(REPO / "scripts" / "build-image"), "--base", base_image], timeout=300)
    assert Path(proc.stdout.strip().splitlines()[-1]) == vigil_image
    assert "cached" in proc.stderr
    assert time.monotonic() - started < 60


def test_service_runs_from_pushed_image_as_uid_65532(
    vigil_image: Path, build_info: dict, base_image: str, auth_registry, tmp_path
):
    need("podman", "skopeo", "runc")
    registry, authfile = auth_registry
    ref = f"{registry.host}/vigil/vigil:{build_info['version']}"
    run(
        [
            str(REPO / "scripts" / "build-image"),
            "--base",
            base_image,
            "--push",
            f"docker://{ref}",
            "--authfile",
            str(authfile),
            "--insecure",
        ],
        timeout=600,
    )
    remote = json.loads(
        run(["skopeo", "inspect", "--authfile", str(authfile), "--tls-verify=false", f"docker://{ref}"]).stdout
    )
    assert remote["Digest"] == build_info["digest"]
    assert remote["Labels"]["org.opencontainers.image.revision"] == build_info["revision"]

    run([*PODMAN, "pull", "--quiet", "--tls-verify=false", "--authfile", str(authfile), ref], timeout=600)
    port = free_port()
    name = f"vigil-image-test-{port}"
    run(
        [
            *PODMAN,
            "run",
            "-d",
            "--name",
            name,
            "--network",
            "host",
            *ULIMITS,
            ref,
            "service",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        timeout=300,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        health = _wait_healthy(base, name)
        assert health == {"status": "ok", "version": "0.1.0"}
        pid = int(run([*PODMAN, "inspect", "--format", "{{.State.Pid}}", name]).stdout.strip())
        status = Path(f"/proc/{pid}/status").read_text()
        uids = re.search(r"^Uid:\s+(.*)$", status, re.M).group(1).split()
        gids = re.search(r"^Gid:\s+(.*)$", status, re.M).group(1).split()
        assert uids == ["65532"] * 4 and gids == ["65532"] * 4

        # The admin token the service writes on first start to a 0600 file in its data dir, never to its log.
        logs = run([*PODMAN, "logs", name]).stdout
        assert TOKEN_LINE.findall(logs) == []
        admin = run([*PODMAN, "exec", name, "cat", "/var/lib/vigil/admin-token"]).stdout.strip()
        assert admin.startswith("vgl_u_")
        with httpx.Client(base_url=base, timeout=10, trust_env=False) as http:
            assert http.get("/api/v1/clusters").status_code == 401
            auth = {"Authorization": f"Bearer {admin}"}
            issued = http.post(
                "/api/v1/clusters/registration-tokens", json={"ttl_seconds": 600, "max_uses": 1}, headers=auth
            )
            assert issued.status_code == 201, issued.text
            reg = http.post(
                "/api/v1/clusters/register",
                json={"name": "image-test"},
                headers={"Authorization": f"Bearer {issued.json()['token']}"},
            )
            assert reg.status_code == 200, reg.text
            listed = http.get("/api/v1/clusters", headers=auth)
            assert listed.status_code == 200
            assert [(c["id"], c["name"]) for c in listed.json()["items"]] == [(reg.json()["cluster_id"], "image-test")]
        # The store lives in the image's data dir, owned by the service's user.
        owner = run([*PODMAN, "exec", name, "stat", "-c", "%u:%g %a", "/var/lib/vigil"]).stdout.split()
        assert owner == ["65532:65532", "700"]
    finally:
        subprocess.run([*PODMAN, "rm", "-f", "-t", "2", name], capture_output=True, env=ENV, timeout=120)
        subprocess.run([*PODMAN, "rmi", "-f", ref], capture_output=True, env=ENV, timeout=120)


def _wait_healthy(base: str, name: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=2, trust_env=False) as http:
        while time.monotonic() < deadline:
            try:
                response = http.get(f"{base}/healthz")
                if response.status_code == 200:
                    return response.json()
            except httpx.TransportError:
                pass
            time.sleep(0.5)
    logs = subprocess.run([*PODMAN, "logs", name], capture_output=True, text=True, env=ENV)
    raise AssertionError(f"no /healthz within {timeout}s:\n{logs.stdout[-2000:]}\n{logs.stderr[-2000:]}")


def test_vigil_scans_its_own_image(vigil_image: Path, build_info: dict, tmp_path):
    """`vigil scan` over the OCI layout lists exactly the Debian packages dpkg knows inside the image."""
    need("podman")
    db = tmp_path / "advisories.db"
    AdvisoryStore(db).close()
    layout = vigil_image / "oci"
    scanned = run(
        [str(REPO / ".venv" / "bin" / "vigil"), "scan", str(layout), "--output", "json", "--db", str(db)], timeout=300
    )
    report = json.loads(scanned.stdout)
    debs = {(p["name"], p["version"]) for p in report["packages"] if p["type"] == "deb"}
    assert report["digest"] == build_info["digest"]

    # podman 4.3 cannot name an image pulled from a layout under a dot-directory: skopeo copies it in.
    roots = run([*PODMAN, "info", "--format", "{{.Store.GraphRoot}}+{{.Store.RunRoot}}"]).stdout.strip()
    image = f"localhost/vigil-scan-test:{build_info['version']}"
    run(
        [
            "skopeo",
            "copy",
            "--quiet",
            f"oci:{layout}:{build_info['version']}",
            f"containers-storage:[vfs@{roots}]{image}",
        ],
        timeout=600,
    )
    try:
        dpkg = run(
            [
                *PODMAN,
                "run",
                "--rm",
                *ULIMITS,
                "--entrypoint",
                "dpkg-query",
                image,
                "-W",
                "-f",
                "${Package}\t${Version}\n",
            ],
            timeout=300,
        ).stdout
        # One image for every role: each command loads, and the sensor finds libbpf the way its loader does.
        roles = run(
            [
                *PODMAN,
                "run",
                "--rm",
                *ULIMITS,
                "--entrypoint",
                "sh",
                image,
                "-c",
                "for role in service controller sensor scanner; do vigil $role --help >/dev/null || exit 1; done;"
                ' python3 -c \'import ctypes, ctypes.util; n = ctypes.util.find_library("bpf"); ctypes.CDLL(n);'
                " print(n)'; id -u",
            ],
            timeout=300,
        ).stdout.split()
        assert roles == ["libbpf.so.1", "65532"]
    finally:
        subprocess.run([*PODMAN, "rmi", "-f", image], capture_output=True, env=ENV, timeout=120)
    installed = {tuple(line.split("\t")) for line in dpkg.splitlines() if line}
    assert debs == installed
    names = {name for name, _ in installed}
    assert {"python3", "python3.11", "libbpf1"} <= names
    assert "python3-venv" not in names  # only the wheel stage has it

    pythons = {(p["name"], p["version"]) for p in report["packages"] if p["type"] == "pypi"}
    assert ("vigil", "0.1.0") in pythons
    assert "pip" not in {name for name, _ in pythons}

    # The SBOM that build-image wrote beside the layout lists the same Debian packages.
    sbom = json.loads((vigil_image / "sbom.cdx.json").read_text())
    sbom_debs = {(c["name"], c["version"]) for c in sbom["components"] if c.get("purl", "").startswith("pkg:deb/")}
    assert sbom_debs == installed


# -- the controller and the sensor, each from the image, as the chart runs them -------------------

# The sensor DaemonSet's capabilities (deploy/helm/vigil/templates/sensor.yaml), by number (linux/capability.h).
SENSOR_CAPS = {"DAC_READ_SEARCH": 2, "SYS_PTRACE": 19, "SYS_RESOURCE": 24, "PERFMON": 38, "BPF": 39}


@pytest.fixture(scope="module")
def podman_image(vigil_image: Path, build_info: dict) -> Iterator[str]:
    """The built image in podman's storage under a name of its own (same digest as the build)."""
    need("podman", "skopeo", "runc")
    roots = run([*PODMAN, "info", "--format", "{{.Store.GraphRoot}}+{{.Store.RunRoot}}"]).stdout.strip()
    ref = f"localhost/vigil-roles-test:{build_info['version']}"
    run(
        [
            "skopeo",
            "copy",
            "--quiet",
            f"oci:{vigil_image / 'oci'}:{build_info['version']}",
            f"containers-storage:[vfs@{roots}]{ref}",
        ],
        timeout=600,
    )
    try:
        assert run([*PODMAN, "image", "inspect", "--format", "{{.Digest}}", ref]).stdout.strip() == build_info["digest"]
        yield ref
    finally:
        subprocess.run([*PODMAN, "rmi", "-f", ref], capture_output=True, env=ENV, timeout=120)


@contextmanager
def podman_container(name: str, args: list[str], env: dict[str, str] | None = None) -> Iterator[str]:
    """`podman run -d` (``env``: variables podman passes on by name, so no value is on a command line)."""
    proc = subprocess.run(
        [*PODMAN, "run", "-d", "--name", name, *ULIMITS, *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**ENV, **(env or {})},
    )
    try:
        assert proc.returncode == 0, proc.stderr[-3000:]
        yield name
    finally:
        subprocess.run([*PODMAN, "rm", "-f", "-t", "2", name], capture_output=True, env=ENV, timeout=120)


def container_pid(name: str) -> int:
    return int(run([*PODMAN, "inspect", "--format", "{{.State.Pid}}", name]).stdout.strip())


def container_logs(name: str) -> str:
    logs = subprocess.run([*PODMAN, "logs", name], capture_output=True, text=True, env=ENV, timeout=60)
    return logs.stdout + logs.stderr


def proc_status(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {key: value.strip() for key, _, value in (line.partition(":") for line in lines)}


def test_controller_from_the_image_syncs_the_test_api_server(podman_image: str, shared_data: Path, tmp_path):
    """`vigil controller` in a container as uid 65532 (read-only root, no capabilities) lists and watches
    the test API server and keeps the service's pods equal to the API server's, through a change."""
    pods = {
        p.name: obj
        for p in sorted((shared_data / "k8s" / "pods").glob("*.json"))
        if (obj := json.loads(p.read_text()))["kind"] == "Pod"
    }
    nodes = [json.loads(p.read_text()) for p in sorted((shared_data / "k8s" / "nodes").glob("*.json"))]
    state = tmp_path / "state"  # the chart's emptyDir at /var/lib/vigil
    state.mkdir(mode=0o700)
    os.chown(state, 65532, 65532)
    service = LiveService(tmp_path / "service").start()
    try:
        with KubeAPIServer(bookmark_interval=0.5) as kubeapi:
            for node in nodes:
                kubeapi.store.apply(node)
            # mockPod.json and podstatusnotpresent.json are later versions of podstatusrunning.json's pod.
            for name, pod in pods.items():
                if name not in ("mockPod.json", "podstatusnotpresent.json"):
                    kubeapi.store.apply(pod)
            kubeconfig = kubeapi.write_kubeconfig(tmp_path / "kubeconfig")
            os.chown(kubeconfig, 65532, 65532)
            token = service.registration_token()
            name = f"vigil-controller-test-{uuid.uuid4().hex[:8]}"
            args = [
                "--network",
                "host",
                "--read-only",
                "--cap-drop",
                "ALL",
                "--security-opt",
                "no-new-privileges",
                "-v",
                f"{state}:/var/lib/vigil",
                "-v",
                f"{kubeconfig}:/etc/vigil/kubeconfig:ro",
                "-e",
                "VIGIL_REGISTRATION_TOKEN",
                "-e",
                "VIGIL_CLUSTER_NAME=image-controller",
                podman_image,
                "controller",
                "--service",
                service.url,
                "--kubeconfig",
                "/etc/vigil/kubeconfig",
                "--credential-file",
                "/var/lib/vigil/controller-credential.json",
                "--heartbeat-interval",
                "1",
                "--batch-interval",
                "0.2",
            ]
            assert token not in " ".join(args)
            with podman_container(name, args, env={"VIGIL_REGISTRATION_TOKEN": token}):

                def registered() -> str | None:
                    clusters = service.list_all("/api/v1/clusters")
                    return next((c["id"] for c in clusters if c["name"] == "image-controller"), None)

                try:
                    cluster_id = wait_for("the controller's registration", registered, timeout=120)
                    pid = container_pid(name)
                    status = proc_status(pid)
                    assert status["Uid"].split() == ["65532"] * 4 and status["CapEff"] == "0000000000000000"
                    assert token not in Path(f"/proc/{pid}/cmdline").read_text()

                    def api_pods() -> set[tuple[str, str, str, str]]:
                        return {
                            (m["namespace"], m["name"], m["uid"], p["spec"].get("nodeName", ""))
                            for p in kubeapi.store.objects(BY_KIND[("v1", "Pod")])
                            for m in [p["metadata"]]
                        }

                    def service_pods() -> set[tuple[str, str, str, str]]:
                        return {
                            (p["namespace"], p["name"], p["uid"], p["node_name"] or "")
                            for p in service.list_all("/api/v1/pods", cluster=cluster_id)
                        }

                    want = api_pods()
                    assert len(want) == 6
                    wait_for("the service to hold the API server's pods", lambda: service_pods() == want, 60)
                    assert {n["name"] for n in service.list_all("/api/v1/nodes", cluster=cluster_id)} == {
                        n["metadata"]["name"] for n in nodes
                    }
                    # Watched, not only listed: a pod replaced under its name (new uid) and one deleted.
                    kubeapi.store.remove("v1", "Pod", "default", "nginx")
                    kubeapi.store.apply(pods["mockPod.json"])
                    kubeapi.store.remove("v1", "Pod", "default", "web-0")
                    changed = api_pods()
                    assert changed != want and len(changed) == 5
                    wait_for("the service to follow the API server", lambda: service_pods() == changed, 60)
                except BaseException:
                    print(container_logs(name)[-4000:])
                    raise
                assert "Traceback" not in container_logs(name)
        # The credential the controller obtained stays in its state volume, the service user's alone.
        cred = state / "controller-credential.json"
        st = cred.stat()
        assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (65532, 65532, 0o600)
        assert json.loads(cred.read_text())["cluster_id"] == cluster_id
    finally:
        service.stop()


def test_sensor_from_the_image_traces_a_containerd_container(podman_image: str, tmp_path):
    """`vigil sensor` in a container as the DaemonSet runs it (host PID, root with exactly the five
    capabilities, read-only root and host mounts, the credential in a mounted file) traces what runs in
    a container of another runtime (containerd + runc) and ships it, with sha256, to the service."""
    missing = missing_tools() + ([] if find_registry_binary() else ["docker-registry"])
    if missing:
        pytest.skip(f"missing {', '.join(missing)}")
    if not Path("/sys/kernel/btf/vmlinux").exists():
        pytest.skip("kernel BTF (/sys/kernel/btf/vmlinux) missing: the sensor cannot load")
    node = "node-image-1"
    service = LiveService(tmp_path / "service").start()
    registry = RegistryServer(workdir=tmp_path / "registry").start()
    ctd = start_containerd(tmp_path / "ctd")
    try:
        image = push_image(registry)
        pull(ctd, image)
        cluster_id, credential = service.register("image-sensor")
        pod, cid = new_container_ids()
        post_inventory(service, credential, inventory_snapshot(cluster_id, node, pods=[web_pod(pod, node, cid, image)]))
        enrolment = httpx.post(
            f"{service.url}/api/v1/clusters/{cluster_id}/sensor-enrolment",
            json={},
            headers={"Authorization": f"Bearer {service.admin_token}"},
        ).json()["credential"]
        secret = tmp_path / "credential"  # the chart's Secret volume: key `enrolment-credential`, mode 0400
        secret.mkdir()
        (secret / "enrolment-credential").write_text(enrolment + "\n")
        (secret / "enrolment-credential").chmod(0o400)
        spool = tmp_path / "spool"
        spool.mkdir()
        name = f"vigil-sensor-test-{uuid.uuid4().hex[:8]}"
        args = [
            "--network",
            "host",
            "--pid",
            "host",
            "--user",
            "0:0",
            "--cap-drop",
            "ALL",
            "--cap-add",
            ",".join(SENSOR_CAPS),
            "--security-opt",
            "no-new-privileges",
            # The chart's seccompProfile Unconfined: podman's default profile refuses bpf() without CAP_SYS_ADMIN.
            "--security-opt",
            "seccomp=unconfined",
            "--read-only",
            "-v",
            "/sys/kernel/btf:/sys/kernel/btf:ro",
            "-v",
            "/sys/kernel/tracing:/sys/kernel/tracing:ro",
            "-v",
            "/sys/fs/cgroup:/sys/fs/cgroup:ro",
            "-v",
            f"{spool}:/var/lib/vigil/sensor-spool",
            "-v",
            f"{secret}:/var/run/vigil:ro",
            "-e",
            "VIGIL_ENROLMENT_CREDENTIAL_FILE=/var/run/vigil/enrolment-credential",
            "-e",
            f"VIGIL_CLUSTER_ID={cluster_id}",
            "-e",
            f"NODE_NAME={node}",
            "-e",
            "VIGIL_SPOOL_DIR=/var/lib/vigil/sensor-spool",
            podman_image,
            "sensor",
            "--service",
            service.url,
            "--batch-interval",
            "1",
        ]
        ref = f"containerd://{cid}"
        with podman_container(name, args):
            try:
                wait_for(
                    "the sensor's first heartbeat",
                    lambda: (node_sensor(service, cluster_id, node) or {}).get("last_heartbeat_at"),
                    timeout=120,
                )
                pid = container_pid(name)
                status = proc_status(pid)
                # A container gets no capability its host lacks: this machine's bounding set has no
                # SYS_RESOURCE, which kernels from 5.11 do not need (BPF memory is charged to the memory
                # cgroup, not to RLIMIT_MEMLOCK). The other four are needed: BPF and PERFMON to load and
                # attach, SYS_PTRACE to open /proc/<pid>/exe (no sha256 without it), DAC_READ_SEARCH to
                # reach the spool inside the image's /var/lib/vigil (mode 0700, uid 65532).
                caps = sum(1 << n for n in SENSOR_CAPS.values()) & int(proc_status(os.getpid())["CapBnd"], 16)
                assert caps | 1 << SENSOR_CAPS["SYS_RESOURCE"] == sum(1 << n for n in SENSOR_CAPS.values())
                assert status["Uid"].split() == ["0"] * 4
                assert (int(status["CapEff"], 16), int(status["CapBnd"], 16)) == (caps, caps)
                assert (status["NoNewPrivs"], status["Seccomp"]) == ("1", "0")
                cmdline = Path(f"/proc/{pid}/cmdline").read_text()
                assert credential not in cmdline and enrolment not in cmdline

                init_pid = run_container(ctd, image, pod, cid)
                wait_for_cmdline(init_pid, ["/bin/sleep", "300"])
                assert "run.sh" in ctd.ctr("task", "exec", "--exec-id", "ls", cid, "/bin/ls", "/app").stdout
                wait_for(
                    "the exec in the service",
                    lambda: any(p["path"] == "/bin/ls" for p in processes(service, cluster_id, container_id=ref)),
                    timeout=60,
                )
            except BaseException:
                print(container_logs(name)[-4000:])
                raise
            finally:
                remove_container(ctd, cid, pod)
            # SIGTERM: the sensor drains, ships and leaves.
            run([*PODMAN, "stop", "-t", "30", name], timeout=120)
            assert run([*PODMAN, "inspect", "--format", "{{.State.ExitCode}}", name]).stdout.strip() == "0"
            logs = container_logs(name)
        assert "Traceback" not in logs, logs[-4000:]

        everything = processes(service, cluster_id)
        # Other containers on this machine are reported too, rightly; host processes never (host tracing is off).
        assert [p for p in everything if p["container_id"] is None] == []
        items = processes(service, cluster_id, container_id=ref)
        busybox, script = image.sha256("/bin/busybox"), image.sha256("/app/run.sh")
        got = sorted((p["kind"], p["path"], p["sha256"], p["count"]) for p in items)
        assert got == [
            ("executable", "/bin/echo", busybox, 1),
            ("executable", "/bin/ls", busybox, 1),
            ("executable", "/bin/sh", busybox, 1),  # the #! interpreter of run.sh
            ("executable", "/bin/sleep", busybox, 1),
            ("script", "/app/run.sh", script, 1),
        ]
        (ls,) = [p for p in items if p["path"] == "/bin/ls"]
        assert [s["argv"] for s in ls["samples"]] == [["/bin/ls", "/app"]]
        assert (ls["pod_uid"], ls["node_name"]) == (pod, node)
        assert ls["pod"] == {"namespace": "shop", "name": "web-7d4b9c-x2v8q"}
        sensor = node_sensor(service, cluster_id, node)
        assert (sensor["status"], sensor["events_lost"], sensor["btf"]) == ("monitored_with_sensor", 0, True)
        # It shipped under its node's own credential, enrolled once and kept 0600 in the spool hostPath.
        kept = spool / "sensor-credential.json"
        assert oct(kept.stat().st_mode & 0o777) == "0o600"
        assert json.loads(kept.read_text())["node"] == node
        listed = service.get(f"/api/v1/clusters/{cluster_id}/credentials").json()["items"]
        assert [(c["kind"], c["node"], c["state"]) for c in listed if c["kind"] == "sensor"] == [
            ("sensor", node, "active")
        ]
    finally:
        ctd.stop()
        registry.close()
        service.stop()
