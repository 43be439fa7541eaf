"""Vigil's image from deploy/image/Containerfile: built by scripts/build-image with buildah (cached),
pushed with skopeo to a loopback docker-registry behind htpasswd, pulled and run with podman as uid
65532, and scanned by Vigil itself."""

from __future__ import annotations

import base64
import json
import re
import socket
import subprocess
import tarfile
import time
from pathlib import Path

import httpx
import pytest

from vigil.devtools.registry_server import RegistryServer
from vigil.intel import AdvisoryStore

from .conftest import ENV, REPO, need, run

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

        # The admin token the service prints once on first start, as a user reads it from the log.
        logs = run([*PODMAN, "logs", name]).stdout
        [admin] = TOKEN_LINE.findall(logs)
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
