"""Real parts for the deploy tests: a Debian bookworm base image made here (public registries are out
of reach), Vigil's image built from deploy/image/Containerfile by scripts/build-image (cached by a hash
of its inputs), and a loopback docker-registry to push it to."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from catalog.conftest import debian_rootfs  # noqa: F401 - the fixture, re-exported for these tests
from vigil.devtools.registry_server import RegistryServer

REPO = Path(__file__).resolve().parents[2]
BASE_IMAGE = "localhost/vigil-test/debian:bookworm-slim"
BUILDAH = ["buildah", "--storage-driver", "vfs"]
ENV = dict(os.environ, BUILDAH_ISOLATION="chroot")


def need(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pytest.skip(f"missing {', '.join(missing)} (scripts/setup --test installs them)")
    if os.geteuid() != 0:
        pytest.skip("building and running images with vfs storage needs root here")


def run(cmd: list[str], timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=ENV, **kw)
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    return proc


def image_exists(ref: str) -> bool:
    return subprocess.run([*BUILDAH, "inspect", "--type", "image", ref], capture_output=True, env=ENV).returncode == 0


@pytest.fixture(scope="session")
def base_image(debian_rootfs: Path) -> str:  # noqa: F811 - pytest injects the imported fixture
    """BASE_IMAGE: the debootstrap'ed minbase rootfs, without apt's caches, committed from scratch."""
    need("buildah")
    if image_exists(BASE_IMAGE):
        return BASE_IMAGE
    container = run([*BUILDAH, "from", "scratch"]).stdout.strip()
    try:
        mount = Path(run([*BUILDAH, "mount", container]).stdout.strip())
        run(["cp", "-a", f"{debian_rootfs}/.", f"{mount}/"])
        for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for entry in (mount / cache).glob("*"):
                if entry.is_file():
                    entry.unlink()
        run([*BUILDAH, "umount", container])
        run(
            [
                *BUILDAH,
                "config",
                "--env",
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "--cmd",
                "/bin/bash",
                container,
            ]
        )
        run([*BUILDAH, "commit", "--quiet", "--timestamp", "0", container, BASE_IMAGE])
    finally:
        subprocess.run([*BUILDAH, "rm", container], capture_output=True, env=ENV)
    return BASE_IMAGE


@pytest.fixture(scope="session")
def vigil_image(base_image: str) -> Path:
    """The directory scripts/build-image leaves: oci/ (an OCI layout), build.json, sbom.cdx.json."""
    need("buildah", "skopeo")
    proc = run([str(REPO / "scripts" / "build-image"), "--base", base_image], timeout=1800)
    out = Path(proc.stdout.strip().splitlines()[-1])
    assert (out / "build.json").is_file(), proc.stderr[-2000:]
    return out


@pytest.fixture(scope="session")
def build_info(vigil_image: Path) -> dict:
    return json.loads((vigil_image / "build.json").read_text())


@pytest.fixture
def registry(tmp_path):
    with RegistryServer.for_pytest(tmp_path / "registry") as server:
        yield server
