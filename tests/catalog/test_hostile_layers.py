"""Hostile layers, each built here as a tar: they end in a scan warning, never a crash or a silent loss."""

from __future__ import annotations

import hashlib
import io
import tarfile

from vigil.catalog import catalog_layers

TAR = "application/vnd.oci.image.layer.v1.tar"


def layer(*members: tuple[str, bytes | None]) -> bytes:
    """A tar of (name, bytes) files and (name, None) directories."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.size, info.mode = len(data), 0o644
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def scan(*blobs: bytes):
    return catalog_layers([(TAR, io.BytesIO(b)) for b in blobs])


def digest(blob: bytes) -> str:
    return "sha256:" + hashlib.sha256(blob).hexdigest()


def test_a_whiteout_of_the_root_is_skipped_with_a_warning():
    lower = layer(("etc", None), ("etc/passwd", b"root:x:0:0\n"))
    upper = layer((".wh.", b""), ("./", None), ("app/run", b"#!/bin/sh\n"))
    contents = scan(lower, upper)
    assert sorted(contents.manifest.files) == ["/app/run", "/etc/passwd"]
    assert [str(w) for w in contents.warnings] == [f"layer 1 ({TAR}) [.wh.]: whiteout skipped: it names no entry of /"]
    assert contents.incomplete is False


def test_an_opaque_root_hides_every_lower_entry_without_a_warning():
    lower = layer(("etc", None), ("etc/passwd", b"root\n"))
    upper = layer((".wh..wh..opq", b""), ("app/run", b"x"))
    contents = scan(lower, upper)
    assert sorted(contents.manifest.files) == ["/app/run"]
    assert contents.warnings == [] and contents.incomplete is False


def test_directories_3000_deep_are_read_and_whited_out_without_recursion():
    deep = "/".join(["d"] * 3000)
    lower = layer((f"{deep}/leaf", b"x"), ("keep", b"k"))
    assert sorted(scan(lower).manifest.files) == [f"/{deep}/leaf", "/keep"]
    # removing the subtree (a whiteout, then a file over a directory) walked it recursively
    whiteout = scan(lower, layer((".wh.d", b"")))
    assert sorted(whiteout.manifest.files) == ["/keep"] and whiteout.warnings == []
    replaced = scan(lower, layer(("d", b"now a file")))
    assert sorted(replaced.manifest.files) == ["/d", "/keep"]
    # an opaque directory deep down keeps what its own layer wrote there
    opaque = scan(lower, layer((f"{deep}/.wh..wh..opq", b""), (f"{deep}/new", b"n")))
    assert sorted(opaque.manifest.files) == [f"/{deep}/new", "/keep"]


def test_a_corrupt_header_mid_layer_is_a_warning_and_marks_the_scan_incomplete():
    good = layer(("first", b"1"), ("second", b"2"), ("third", b"3"))
    # each member here: one header block (PAX headers none: ASCII names) and one data block
    offset = 2 * 1024
    blob = bytearray(good)
    assert blob[offset : offset + 5] == b"third"
    blob[offset + 148 : offset + 156] = b"garbage!"  # the header checksum field
    contents = scan(bytes(blob))
    assert sorted(contents.manifest.files) == ["/first", "/second"]
    assert [str(w) for w in contents.warnings] == [
        f"layer 0 ({digest(bytes(blob))}): corrupt tar header (invalid header) at offset 2048 of the uncompressed "
        "tar; the rest of the layer was not read, so the scan is incomplete"
    ]
    assert contents.incomplete is True
    assert contents.layers[0].entries == 2
    assert scan(good).incomplete is False


def test_data_cut_short_mid_layer_is_a_warning_too():
    good = layer(("first", b"1"), ("second", b"x" * 4000))
    cut = good[: 1024 + 512 + 1000]  # inside the second member's data
    contents = scan(cut)
    assert sorted(contents.manifest.files) == ["/first"]
    assert [str(w) for w in contents.warnings] == [
        f"layer 0 ({digest(cut)}): unreadable tar member (unexpected end of data) at offset 1024 of the uncompressed "
        "tar; the rest of the layer was not read, so the scan is incomplete"
    ]
    assert contents.incomplete is True
