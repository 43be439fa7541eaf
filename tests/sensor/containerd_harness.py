"""A one-layer OCI image-layout tar around busybox-static, imported with ``ctr images import``
so no registry is needed for these tests. The private containerd itself (own root, state and
socket) is vigil.devtools.containerd, shared with `vigil demo`; re-exported here.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

from vigil.devtools.containerd import APPLETS as BUSYBOX_APPLETS
from vigil.devtools.containerd import (
    BUSYBOX,
    Containerd,
    ContainerdError,
    missing_tools,
    start_containerd,
)

__all__ = ["BUSYBOX", "Containerd", "ContainerdError", "missing_tools", "start_containerd", "write_busybox_image"]

IMAGE_NAME = "docker.io/vigil/busybox:test"


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _layer(busybox: bytes) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for d in ("bin", "tmp", "proc", "dev", "sys", "etc"):
            ti = tarfile.TarInfo(d)
            ti.type, ti.mode = tarfile.DIRTYPE, 0o1777 if d == "tmp" else 0o755
            tar.addfile(ti)
        ti = tarfile.TarInfo("bin/busybox")
        ti.size, ti.mode = len(busybox), 0o755
        tar.addfile(ti, io.BytesIO(busybox))
        for applet in BUSYBOX_APPLETS:
            ti = tarfile.TarInfo(f"bin/{applet}")
            ti.type, ti.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(ti)
    return buf.getvalue()


def write_busybox_image(dest: Path) -> Path:
    """An OCI image-layout tar holding busybox-static; returns its path."""
    layer = _layer(BUSYBOX.read_bytes())
    layer_gz = gzip.compress(layer, mtime=0)
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Cmd": ["/bin/sh"], "Env": ["PATH=/bin"]},
            "rootfs": {"type": "layers", "diff_ids": [_sha(layer)]},
        }
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": _sha(config),
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": _sha(layer_gz),
                    "size": len(layer_gz),
                }
            ],
        }
    ).encode()
    index = json.dumps(
        {
            "schemaVersion": 2,
            "manifests": [
                {
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": _sha(manifest),
                    "size": len(manifest),
                    "annotations": {
                        "io.containerd.image.name": IMAGE_NAME,
                        "org.opencontainers.image.ref.name": "test",
                    },
                }
            ],
        }
    ).encode()
    out = dest / "busybox-oci.tar"
    with tarfile.open(out, "w") as tar:

        def add(name: str, data: bytes) -> None:
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tar.addfile(ti, io.BytesIO(data))

        add("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        add("index.json", index)
        for blob in (config, manifest, layer_gz):
            add("blobs/sha256/" + _sha(blob).split(":")[1], blob)
    return out


def busybox_sha256() -> str:
    return hashlib.sha256(BUSYBOX.read_bytes()).hexdigest()


if __name__ == "__main__":  # manual smoke run
    import tempfile
    import uuid

    with tempfile.TemporaryDirectory() as d:
        c = start_containerd(Path(d) / "ctd")
        try:
            print(c.ctr("images", "import", str(write_busybox_image(Path(d)))).stdout)
            cid = "a" * 64
            pod = str(uuid.uuid4())
            r = c.ctr(
                "run",
                "--rm",
                "--cgroup",
                f"kubepods/besteffort/pod{pod}/{cid}",
                IMAGE_NAME,
                cid,
                "/bin/sh",
                "-c",
                "cat /proc/self/cgroup",
                check=False,
            )
            print(r.returncode, r.stdout, r.stderr, os.getpid())
        finally:
            c.stop()
