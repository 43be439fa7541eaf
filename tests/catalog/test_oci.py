"""An OCI image layout built from real parts, in three layers (gzip, plain,
zstd) with whiteouts, an opaque directory, hard and symbolic links and unsafe
member names; the final file manifest and packages checked exactly."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from vigil.catalog import (
    LayerBlob,
    LayerDigestMismatch,
    LayoutError,
    catalog_layers,
    catalog_oci_layout,
    catalog_rootfs,
)
from vigil.catalog.layout_writer import TarLayer, add_layer, write_image, write_index

from .conftest import go_version_m

SITE = "usr/lib/python3/dist-packages"


def walk_files(root: Path, prefix: str = "/") -> tuple[dict[str, tuple[str, int, int]], dict[str, str]]:
    """Independent view of a directory: regular files (sha256, size, mode) and symlinks."""
    files, links = {}, {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            local = Path(dirpath) / name
            image = prefix.rstrip("/") + "/" + str(local.relative_to(root))
            if local.is_symlink():
                links[image] = os.readlink(local)
            elif local.is_file():
                st = local.stat()
                files[image] = (hashlib.sha256(local.read_bytes()).hexdigest(), st.st_size, st.st_mode & 0o7777)
    return files, links


@pytest.fixture(scope="module")
def image(tmp_path_factory, debian_rootfs, python_site, go_module_binary, commons_lang3_jar):
    work = tmp_path_factory.mktemp("oci")
    layout = work / "layout"
    # layer 0, gzip: the whole Debian rootfs
    l0 = TarLayer(work / "l0.tar")
    l0.add_tree(debian_rootfs)
    l0.close()
    # layer 1, plain tar: apps on top, things removed and replaced
    l1 = TarLayer(work / "l1.tar")
    l1.add_path(python_site, SITE)
    l1.add_path(go_module_binary, "usr/local/bin/hello")
    l1.add_dir("opt/app/lib")
    l1.add_path(commons_lang3_jar, "opt/app/lib/commons-lang3.jar")
    l1.add_whiteout("/usr/share/doc/bash")
    l1.add_whiteout("/etc/issue.net")
    l1.add_opaque("/usr/share/doc/apt")
    l1.add_bytes("usr/share/doc/apt/NOTE", b"replaced by an opaque directory\n")
    l1.add_bytes("etc/hostname", b"vigil-test\n")
    l1.add_bytes("../escape", b"outside the root\n")
    l1.add_bytes("/abs-file", b"absolute member name\n")
    l1.close()
    # layer 2, zstd: a Python package deleted, links added
    l2 = TarLayer(work / "l2.tar")
    l2.add_whiteout(f"/{SITE}/urllib3")
    l2.add_whiteout(f"/{SITE}/urllib3-1.26.4.dist-info")
    l2.add_hardlink("usr/local/bin/hello-link", "usr/local/bin/hello")
    l2.add_symlink("usr/local/bin/hi", "hello")
    l2.close()
    written = [
        add_layer(layout, work / "l0.tar", "gzip"),
        add_layer(layout, work / "l1.tar", ""),
        add_layer(layout, work / "l2.tar", "zstd"),
    ]
    write_index(layout, [write_image(layout, written)])
    result = catalog_oci_layout(layout)
    return {"layout": layout, "written": written, "result": result, "work": work}


def expected_manifest(debian_rootfs, python_site, go_module_binary, commons_lang3_jar):
    files, links = walk_files(debian_rootfs)
    for gone in ("/usr/share/doc/bash/", "/usr/share/doc/apt/"):
        files = {p: v for p, v in files.items() if not p.startswith(gone)}
        links = {p: v for p, v in links.items() if not p.startswith(gone)}
    del files["/etc/issue.net"]
    site_files, site_links = walk_files(python_site, "/" + SITE)
    files.update(site_files)
    links.update(site_links)
    for prefix in (f"/{SITE}/urllib3/", f"/{SITE}/urllib3-1.26.4.dist-info/"):
        files = {p: v for p, v in files.items() if not p.startswith(prefix)}

    def one(path: Path):
        data = path.read_bytes()
        return (hashlib.sha256(data).hexdigest(), len(data), path.stat().st_mode & 0o7777)

    files["/usr/local/bin/hello"] = files["/usr/local/bin/hello-link"] = one(go_module_binary)
    files["/opt/app/lib/commons-lang3.jar"] = one(commons_lang3_jar)
    for path, data in (
        ("/usr/share/doc/apt/NOTE", b"replaced by an opaque directory\n"),
        ("/etc/hostname", b"vigil-test\n"),
        ("/abs-file", b"absolute member name\n"),
    ):
        files[path] = (hashlib.sha256(data).hexdigest(), len(data), 0o644)
    links["/usr/local/bin/hi"] = "hello"
    return files, links


def test_final_file_manifest(image, debian_rootfs, python_site, go_module_binary, commons_lang3_jar):
    result = image["result"]
    files, links = expected_manifest(debian_rootfs, python_site, go_module_binary, commons_lang3_jar)
    got = {p: (r.sha256, r.size, r.mode) for p, r in result.manifest.files.items()}
    assert got.keys() - files.keys() == set()
    assert files.keys() - got.keys() == set()
    assert got == files
    assert {p: s.target for p, s in result.manifest.symlinks.items()} == links
    assert "/usr/share/doc/bash/copyright" not in result.manifest.files  # whited-out directory
    assert "/etc/issue.net" not in result.manifest.files  # whited-out file
    assert "/escape" not in result.manifest.files and "/../escape" not in result.manifest.files


def test_unsafe_member_names_are_warned(image):
    assert [str(w) for w in image["result"].warnings] == [
        "layer 1 (application/vnd.oci.image.layer.v1.tar) [../escape]: tar member skipped: a '..' component "
        "in its path",
        "layer 1 (application/vnd.oci.image.layer.v1.tar) [/abs-file]: tar member has an absolute path; read "
        "relative to the image root",
    ]


def test_layer_digests(image):
    records = image["result"].layers
    assert [(r.media_type, r.digest, r.diff_id, r.size) for r in records] == [
        (w.media_type, w.digest, w.diff_id, w.size) for w in image["written"]
    ]


def test_packages(image, debian_rootfs, python_site, go_module_binary):
    result = image["result"]
    deb = subprocess.run(
        ["dpkg-query", f"--admindir={debian_rootfs}/var/lib/dpkg", "-W", "-f", "${Package} ${Version}\n"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert sorted(f"{p.name} {p.version}" for p in result.packages_of("deb")) == sorted(deb.splitlines())
    pip = json.loads(
        subprocess.run(
            [sys.executable, "-m", "pip", "list", "--path", str(python_site), "--format", "json"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    assert sorted((p.name, p.version) for p in result.packages_of("pypi")) == sorted(
        (d["name"], d["version"]) for d in pip if d["name"] != "urllib3"
    )
    go_version, lines = go_version_m(go_module_binary)
    mod = next(line for line in lines if line[0] == "mod")
    # the hard link is a second copy of the binary: its packages appear for both paths
    go = sorted((p.name, p.version, p.found_in) for p in result.packages_of("golang"))
    expected_go = sorted(
        (name, version, where)
        for where in ("/usr/local/bin/hello", "/usr/local/bin/hello-link")
        for name, version in (
            (mod[1], mod[2]),
            ("github.com/pkg/errors", "v0.9.1"),
            ("stdlib", go_version.removeprefix("go")),
        )
    )
    assert go == expected_go
    [jar] = result.packages_of("maven")
    assert jar.found_in == "/opt/app/lib/commons-lang3.jar"
    assert result.os is not None and result.os.version_codename == "bookworm"


def test_same_packages_as_the_unpacked_rootfs(image, debian_rootfs):
    from_layers = image["result"]
    from_dir = catalog_rootfs(debian_rootfs)

    def without_files(pkgs):
        return [{k: v for k, v in p.to_dict().items() if k != "files"} for p in pkgs]

    assert without_files(from_layers.packages_of("deb")) == without_files(from_dir.packages_of("deb"))
    # Owned files differ only where the upper layers removed directories dpkg
    # lists: a listed directory is left out, a listed path that is gone is not.
    diff = set()
    for a, b in zip(from_layers.packages_of("deb"), from_dir.packages_of("deb"), strict=True):
        diff |= set(a.files) ^ set(b.files)
    assert diff == {"/usr/share/doc/apt/examples", "/usr/share/doc/bash"}


class OneWayStream:
    """Only ``read``: what an HTTP response body offers."""

    def __init__(self, path: Path) -> None:
        self._f = path.open("rb")

    def read(self, size: int = -1) -> bytes:
        return self._f.read(size)


def blobs_of(image):
    layout, written = image["layout"], image["written"]
    return [(w, layout / "blobs/sha256" / w.digest[7:]) for w in written]


def test_catalog_layers_from_one_way_streams(image):
    items = [LayerBlob(w.media_type, OneWayStream(p), w.digest) for w, p in blobs_of(image)[1:]]
    result = catalog_layers(items)
    assert sorted(p.name for p in result.packages_of("pypi")) == ["Jinja2", "MarkupSafe", "idna"]
    assert result.packages_of("deb") == []
    assert "/usr/local/bin/hello-link" in result.manifest.files


def test_digest_mismatch_is_an_error(image):
    ((w, p),) = blobs_of(image)[1:2]
    wrong = "sha256:" + "0" * 64
    with pytest.raises(LayerDigestMismatch) as err:
        catalog_layers([(w.media_type, OneWayStream(p), wrong)])
    assert str(err.value) == f"layer 0: blob read has digest {w.digest}, expected {wrong}"


def test_media_type_unknown_is_sniffed(image):
    ((w, p),) = blobs_of(image)[2:3]  # zstd
    result = catalog_layers([("application/octet-stream", OneWayStream(p))])
    assert result.layers[0].diff_id == w.diff_id


def test_platform_selection(image, tmp_path):
    layout = tmp_path / "multi"
    shutil.copytree(image["layout"], layout)
    amd64 = json.loads((image["layout"] / "index.json").read_text())["manifests"][0]
    arm64 = write_image(layout, image["written"][1:2], arch="arm64")
    write_index(layout, [amd64, arm64])
    small = catalog_oci_layout(layout, "linux/arm64")
    assert [r.digest for r in small.layers] == [image["written"][1].digest]
    assert len(catalog_oci_layout(layout).layers) == 3  # linux/amd64 is chosen by default
    with pytest.raises(LayoutError) as err:
        catalog_oci_layout(layout, "linux/s390x")
    assert str(err.value) == f"{layout}: no image for platform linux/s390x; the layout has linux/amd64, linux/arm64"


def test_missing_blob_is_an_error(image, tmp_path):
    layout = tmp_path / "broken"
    shutil.copytree(image["layout"], layout)
    digest = image["written"][2].digest
    (layout / "blobs/sha256" / digest[7:]).unlink()
    with pytest.raises(LayoutError) as err:
        catalog_oci_layout(layout)
    assert str(err.value) == f"{layout}: layer blob {digest} is missing"
