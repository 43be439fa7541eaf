"""Pure logic: os-release, ecosystems, member paths, whiteout rules."""

from __future__ import annotations

import io
import json

import pytest
from typer.testing import CliRunner

from vigil.catalog import catalog_layers
from vigil.catalog.cli import app
from vigil.catalog.layers import UnsafePath, normalize_member_path
from vigil.catalog.layout_writer import TarLayer
from vigil.catalog.model import OSRelease
from vigil.catalog.osrelease import os_ecosystem, os_release_from_fields, parse_os_release

from .conftest import PKGDB


def test_parse_os_release_quotes_and_escapes():
    fields = parse_os_release('# c\nID=ubuntu\nVERSION_ID="22.04"\nNAME=\'Ubuntu\'\nX="a \\"b\\" \\$c"\nbad line\n')
    assert fields == {"ID": "ubuntu", "VERSION_ID": "22.04", "NAME": "Ubuntu", "X": 'a "b" $c'}


@pytest.mark.parametrize(
    ("text", "ecosystem"),
    [
        ('ID=debian\nVERSION_ID="12"\nVERSION_CODENAME=bookworm', "Debian:12"),
        ("ID=debian\nVERSION_CODENAME=trixie", "Debian:13"),  # testing has no VERSION_ID
        ('ID=ubuntu\nVERSION_ID="22.04"', "Ubuntu:22.04:LTS"),
        ('ID=ubuntu\nVERSION_ID="23.10"', "Ubuntu:23.10"),
        ("ID=alpine\nVERSION_ID=3.19.1", "Alpine:v3.19"),
        ("ID=alpine\nVERSION_ID=3.20.0_alpha20240329", "Alpine:v3.20"),
        ('ID="rocky"\nVERSION_ID="9.3"', "Rocky Linux:9"),
        ("ID=plan9", None),
    ],
)
def test_ecosystems(text, ecosystem):
    assert os_ecosystem(os_release_from_fields(parse_os_release(text))) == ecosystem


def test_no_os_no_ecosystem():
    assert os_ecosystem(None) is None
    assert os_release_from_fields({"NAME": "x"}) is None
    assert os_ecosystem(OSRelease(id="debian")) == "Debian"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("./usr/bin/ls", ("/usr/bin/ls", False)),
        ("usr//bin/./ls", ("/usr/bin/ls", False)),
        ("/etc/passwd", ("/etc/passwd", True)),
        ("./", ("/", False)),
    ],
)
def test_member_paths(name, expected):
    assert normalize_member_path(name) == expected


@pytest.mark.parametrize("name", ["../x", "a/../../x", "a/.."])
def test_member_paths_with_dotdot_are_unsafe(name):
    with pytest.raises(UnsafePath):
        normalize_member_path(name)


def tar_bytes(tmp_path, name, build) -> bytes:
    layer = TarLayer(tmp_path / name)
    build(layer)
    layer.close()
    return (tmp_path / name).read_bytes()


def test_whiteouts_hide_lower_layers_only(tmp_path):
    def lower(t):
        t.add_bytes("a/old", b"1")
        t.add_bytes("a/sub/deep", b"2")
        t.add_bytes("b/keep", b"3")
        t.add_bytes("c", b"4")

    def upper(t):
        # new file first, opaque marker after it: same-layer entries survive
        t.add_bytes("a/new", b"5")
        t.add_opaque("a")
        t.add_bytes("c/now-a-dir", b"6")  # a directory replaces the file c
        t.add_bytes("d", b"7")
        t.add_whiteout("d")  # same layer: d stays
        t.add_whiteout("b/missing")  # nothing to hide: no effect

    layers = [
        ("application/vnd.oci.image.layer.v1.tar", io.BytesIO(tar_bytes(tmp_path, "l0", lower))),
        ("application/vnd.oci.image.layer.v1.tar", io.BytesIO(tar_bytes(tmp_path, "l1", upper))),
    ]
    result = catalog_layers(layers)
    assert sorted(result.manifest.files) == ["/a/new", "/b/keep", "/c/now-a-dir", "/d"]
    assert result.warnings == []


def test_hardlink_to_missing_target_is_a_warning(tmp_path):
    data = tar_bytes(tmp_path, "l0", lambda t: t.add_hardlink("x", "nowhere"))
    result = catalog_layers([("application/vnd.oci.image.layer.v1.tar", io.BytesIO(data))])
    assert result.manifest.files == {}
    assert [str(w) for w in result.warnings] == [
        "layer 0 (application/vnd.oci.image.layer.v1.tar) [x]: hard link skipped: target /nowhere is not a "
        "regular file in the image"
    ]


def test_cli_json_on_a_rootfs(tmp_path):
    root = tmp_path / "root"
    (root / "lib/apk/db").mkdir(parents=True)
    (root / "lib/apk/db/installed").write_bytes((PKGDB / "alpine/installed-corrupt").read_bytes())
    (root / "etc").mkdir()
    (root / "etc/os-release").write_text("ID=alpine\nVERSION_ID=3.16.2\n")
    res = CliRunner().invoke(app, [str(root), "--output", "json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["os"]["id"] == "alpine"
    assert [(p["name"], p["version"], p["ecosystem"]) for p in doc["packages"]] == [
        ("alpine-baselayout-data", "3.2.0-r22", "Alpine:v3.16")
    ]
    assert [w["entry"] for w in doc["warnings"]] == ["record at line 1"]
    assert {f["path"] for f in doc["manifest"]["files"]} == {"/lib/apk/db/installed", "/etc/os-release"}


def test_cli_table_and_error(tmp_path):
    res = CliRunner().invoke(app, [str(tmp_path)])
    assert res.exit_code == 0
    assert "files: 0" in res.stdout
    res = CliRunner().invoke(app, [str(tmp_path / "missing")])
    assert res.exit_code == 2
    assert f"{tmp_path / 'missing'}: neither an OCI image layout nor a rootfs directory" in res.output
