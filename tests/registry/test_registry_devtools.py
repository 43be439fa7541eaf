"""The test tooling itself: the registry server's own config, reproducible images, OCI layout."""

from __future__ import annotations

import gzip
import io
import json
import tarfile

import bcrypt
import yaml

from vigil.devtools.oci import LayerFile, build_image, build_index, layer_from_dir, tar_layer, write_oci_layout
from vigil.devtools.registry_server import RegistryServer, htpasswd_lines


def test_server_uses_its_own_loopback_config(tmp_path):
    server = RegistryServer.for_pytest(tmp_path, users={"alice": "pw-1"})
    config = yaml.safe_load(server.config_path.read_text())
    assert config["http"]["addr"] == f"127.0.0.1:{server.port}"
    assert config["storage"]["filesystem"]["rootdirectory"] == str(tmp_path / "storage")
    assert config["storage"]["delete"] == {"enabled": True}
    assert config["auth"]["htpasswd"]["path"] == str(tmp_path / "htpasswd")
    assert not server.running
    with server:
        assert server.running
        assert server.url == f"http://127.0.0.1:{server.port}"
        server.restart()
        assert server.running
    assert not server.running


def test_htpasswd_is_bcrypt():
    user, hashed = htpasswd_lines({"alice": "pw-1"}).strip().split(":", 1)
    assert user == "alice" and hashed.startswith("$2b$05$")
    assert bcrypt.checkpw(b"pw-1", hashed.encode())


def test_images_are_reproducible_and_well_formed(tmp_path):
    files = {"usr/bin/tool": LayerFile(b"\x7fELF...", mode=0o755), "etc/conf": b"k=v\n"}
    first, second = tar_layer(files), tar_layer(dict(reversed(list(files.items()))))
    assert first.blob.digest == second.blob.digest
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(first.blob.data))) as tar:
        members = {m.name: m for m in tar}
    assert sorted(members) == ["etc", "etc/conf", "usr", "usr/bin", "usr/bin/tool"]
    assert members["usr/bin/tool"].mode == 0o755 and members["usr/bin/tool"].mtime == 946684800

    (tmp_path / "src" / "bin").mkdir(parents=True)
    (tmp_path / "src" / "bin" / "run").write_bytes(b"#!/bin/sh\n")
    (tmp_path / "src" / "bin" / "run").chmod(0o755)
    (tmp_path / "src" / "bin" / "link").symlink_to("run")
    from_dir = layer_from_dir(tmp_path / "src")
    assert from_dir.files == ("bin", "bin/link", "bin/run")

    image = build_image([first, from_dir], labels={"a": "b"}, platform="linux/arm/v7")
    config = json.loads(image.config.data)
    assert config["rootfs"]["diff_ids"] == [first.diff_id, from_dir.diff_id]
    assert (config["os"], config["architecture"], config["variant"]) == ("linux", "arm", "v7")
    assert config["config"]["Labels"] == {"a": "b"}

    index = build_index([image, build_image([first])])
    layout = write_oci_layout(tmp_path / "layout", index, tag="1.0")
    top = json.loads((layout / "index.json").read_text())["manifests"][0]
    assert top["digest"] == index.digest
    assert top["annotations"] == {"org.opencontainers.image.ref.name": "1.0"}
    assert json.loads((layout / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    for blob in (image.config, image.manifest, first.blob, index.manifest):
        assert (layout / "blobs" / "sha256" / blob.digest.split(":")[1]).read_bytes() == blob.data
