"""Hostile images, each crafted here (tarfile, zipfile, sqlite3), scanned by the real scanner in a child
process that reports its own peak RSS: every one ends in the warning naming the limit it hit and an
incomplete scan, within a memory and a time bound, never a crash, a stall or a service-sized heap."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import json
import os
import re
import socket
import sqlite3
import subprocess
import sys
import tarfile
import threading
import time
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vigil.catalog.limits import ScanLimits
from vigil.cli import app
from vigil.devtools.oci import Blob, Layer, build_image, write_oci_layout
from vigil.devtools.service import LiveService
from vigil.model.image import ImageRef
from vigil.registry import media_types as mt
from vigil.scanner import isolated
from vigil.scanner.isolated import pull_isolated
from vigil.scanner.pull import DEFAULT_PLATFORM, pull_contents
from vigil.service.jobs.workers import make_contents
from vigil.service.settings import Settings
from vigil.service.store.db import create_store_engine

from .helpers import client_for, image_pk, import_advisories, post, push_layout, run_scans, snapshot

MiB = 1 << 20
GiB = 1 << 30
PEAK_RSS_BOUND = 200 * MiB  # the interpreter with Vigil imported is ~40 MiB
WALL_BOUND = 60.0  # seconds, a whole child process

# Runs in the child: scan one OCI layout with the given limits, print what a user would see.
_SCAN_LAYOUT = """
import json, sys, time
"PEAK_RSS"
from vigil.catalog import catalog_oci_layout
from vigil.catalog.limits import ScanLimits
spec = json.loads(sys.argv[1])
started = time.monotonic()
contents = catalog_oci_layout(spec["layout"], limits=ScanLimits(**spec["limits"]))
print(json.dumps({
    "warnings": [str(w) for w in contents.warnings],
    "incomplete": contents.incomplete,
    "files": sorted(contents.manifest.files),
    "digests": sorted({f.sha256 for f in contents.manifest.files.values()}),
    "packages": sorted(f"{p.name}@{p.version} {p.found_in}" for p in contents.packages),
    "seconds": time.monotonic() - started,
    "peak_rss": peak_rss(),
}))
"""


# The child's own peak: VmHWM starts afresh at exec, where ru_maxrss keeps the forking parent's.
_PEAK_RSS = """
def peak_rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
"""


def run_child(script: str, spec: dict) -> dict:
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-c", script.replace('"PEAK_RSS"', _PEAK_RSS), json.dumps(spec)],
        capture_output=True,
        text=True,
        timeout=WALL_BOUND * 2,
    )
    wall = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"scan child: peak RSS {result['peak_rss'] / MiB:.0f} MiB, {wall:.1f} s")  # the figures, with -s
    assert result["peak_rss"] < PEAK_RSS_BOUND, f"peak RSS {result['peak_rss'] >> 20} MiB"
    assert wall < WALL_BOUND, f"{wall:.1f} s"
    return result


def scan_layers(tmp_path: Path, blobs: list[bytes], **limits: int | float) -> dict:
    """Each blob an uncompressed (or gzip, by its magic) layer of one image, written as an OCI layout."""
    layers = []
    for data in blobs:
        raw = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
        media_type = mt.OCI_LAYER_GZIP if raw is not data else mt.OCI_LAYER
        diff_id = "sha256:" + hashlib.sha256(raw).hexdigest()
        layers.append(Layer(Blob(media_type, data), diff_id, ()))
    layout = write_oci_layout(tmp_path / "layout", build_image(layers))
    return run_child(_SCAN_LAYOUT, {"layout": str(layout), "limits": limits})


def tar_of(*members: tuple[tarfile.TarInfo, bytes | None], fmt: int = tarfile.PAX_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def regular(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), 0o644
    return info, data


def directory(name: str) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type, info.mode = tarfile.DIRTYPE, 0o755
    return info, None


def sparse(name: str, real_size: int, data: bytes = b"\0" * 512) -> tuple[tarfile.TarInfo, bytes]:
    """A GNU sparse member (PAX format 0.1): ``data`` is all it stores, ``real_size`` what it claims."""
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), 0o644
    info.pax_headers = {
        "GNU.sparse.name": name,
        "GNU.sparse.size": str(real_size),
        "GNU.sparse.map": f"0,{len(data)}",
    }
    return info, data


def hard_link(name: str, target: str) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = tarfile.LNKTYPE, target, 0o644
    return info, None


def jar(entries: dict[str, bytes], *, compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as z:
        for name, data in entries.items():
            z.writestr(name, data)
    return buf.getvalue()


def pom(artifact: str, version: str = "1.0") -> dict[str, bytes]:
    return {
        f"META-INF/maven/org.example/{artifact}/pom.properties": (
            f"groupId=org.example\nartifactId={artifact}\nversion={version}\n"
        ).encode()
    }


def header_size_at(blob: bytes, offset: int) -> int:
    return tarfile.nti(blob[offset + 124 : offset + 136])  # type: ignore[attr-defined]


LAYER0 = f"layer 0 ({mt.OCI_LAYER})"


# -- (a) sparse members ----------------------------------------------------------------------------


def test_a_sparse_member_claiming_8_gib_is_skipped_by_its_real_size(tmp_path):
    blob = tar_of(regular("etc/hostname", b"box\n"), sparse("var/lib/rpm/rpmdb.sqlite", 8 * GiB))
    result = scan_layers(tmp_path, [blob], max_file_bytes=64 * MiB)
    assert result["warnings"] == [
        "layer 0 [var/lib/rpm/rpmdb.sqlite]: file of 8589934592 bytes skipped: over the limit "
        "max_file_bytes (VIGIL_SCAN_MAX_FILE_BYTES=67108864)"
    ]
    assert result["incomplete"] is True
    assert result["files"] == ["/etc/hostname"]
    assert result["seconds"] < 10


def test_sparse_members_under_the_file_limit_count_their_real_size_against_the_total(tmp_path):
    members = [sparse(f"data/{i:02d}.bin", 8 * MiB) for i in range(40)]
    result = scan_layers(tmp_path, [tar_of(*members)], max_total_bytes=100 * MiB)
    # 8 MiB each: the 13th brings the total to 104 MiB, past the limit; the layer is not read further
    assert result["warnings"] == [
        f"{LAYER0}: limit max_total_bytes (VIGIL_SCAN_MAX_TOTAL_BYTES=104857600) reached: "
        f"{13 * 8 * MiB} bytes read at /data/12.bin; the rest of the layer was not read"
    ]
    assert result["incomplete"] is True
    assert result["files"] == [f"/data/{i:02d}.bin" for i in range(12)]


# -- (b) hard links --------------------------------------------------------------------------------


def test_50_hard_links_to_one_large_kept_file_cost_its_bytes_once(tmp_path):
    payload = os.urandom(24 * MiB)  # incompressible: stored in the jar as it is
    app = jar({**pom("app"), "blob.bin": payload}, compression=zipfile.ZIP_STORED)
    links = [hard_link(f"opt/app/link{i:02d}.jar", "opt/app/app.jar") for i in range(50)]
    blob = tar_of(regular("opt/app/app.jar", app), *links)
    # Both limits below two copies of the archive: links that were copies (or counted as read
    # again) would hit them on the first link.
    result = scan_layers(tmp_path, [blob], max_stored_bytes=40 * MiB, max_total_bytes=40 * MiB)
    assert result["warnings"] == []
    assert result["incomplete"] is False
    assert len(result["files"]) == 51 and len(result["digests"]) == 1
    assert result["packages"] == sorted(
        ["org.example:app@1.0 /opt/app/app.jar"] + [f"org.example:app@1.0 /opt/app/link{i:02d}.jar" for i in range(50)]
    )


def test_hard_links_still_count_as_files(tmp_path):
    links = [hard_link(f"l{i}", "target") for i in range(50)]
    result = scan_layers(tmp_path, [tar_of(regular("target", b"x" * 4096), *links)], max_files=20)
    assert result["warnings"] == [
        f"{LAYER0}: limit max_files (VIGIL_SCAN_MAX_FILES=20) reached: at l19; the rest of the layer was not read"
    ]
    assert result["incomplete"] is True and len(result["files"]) == 20


# -- (c) oversized tar headers ---------------------------------------------------------------------


def test_a_huge_pax_header_stops_its_layer_not_the_scan(tmp_path):
    bad = tarfile.TarInfo("opt/bad")
    bad.pax_headers = {"comment": "x" * (64 * MiB)}
    blob = tar_of(regular("etc/first", b"1"), (bad, b""), regular("etc/never", b"2"))
    size = header_size_at(blob, 1024)
    assert size > 64 * MiB
    result = scan_layers(tmp_path, [blob, tar_of(regular("etc/upper", b"3"))])
    assert result["warnings"] == [
        f"{LAYER0}: limit max_header_bytes (VIGIL_SCAN_MAX_HEADER_BYTES=1048576) reached: a {size}-byte "
        "extended tar header at offset 1024; the rest of the layer was not read"
    ]
    assert result["incomplete"] is True
    assert result["files"] == ["/etc/first", "/etc/upper"]


def test_a_huge_gnu_long_name_is_refused_before_it_is_read(tmp_path):
    long_name = "d/" * (16 * MiB)
    blob = tar_of(regular("etc/first", b"1"), regular(long_name + "f", b"2"), fmt=tarfile.GNU_FORMAT)
    size = header_size_at(blob, 1024)
    result = scan_layers(tmp_path, [blob], max_header_bytes=64 * 1024)
    assert result["warnings"] == [
        f"{LAYER0}: limit max_header_bytes (VIGIL_SCAN_MAX_HEADER_BYTES=65536) reached: a {size}-byte "
        "extended tar header at offset 1024; the rest of the layer was not read"
    ]
    assert result["incomplete"] is True
    assert result["files"] == ["/etc/first"]


# -- (d) jar and zip bombs -------------------------------------------------------------------------


def test_a_jar_bomb_is_judged_on_its_claimed_sizes_before_it_inflates(tmp_path):
    bomb = jar({**pom("bomb"), "META-INF/maven/org.example/big/pom.properties": b"\0" * (128 * MiB)})
    info = zipfile.ZipFile(io.BytesIO(bomb)).getinfo("META-INF/maven/org.example/big/pom.properties")
    blob = gzip.compress(tar_of(regular("app/bomb.jar", bomb)), 1)
    result = scan_layers(tmp_path, [blob])
    assert result["warnings"] == [
        "/app/bomb.jar [META-INF/maven/org.example/big/pom.properties]: archive entry skipped: "
        f"{info.compress_size} bytes inflate to {128 * MiB}, over the limit "
        "max_expansion_ratio (VIGIL_SCAN_MAX_EXPANSION_RATIO=200)"
    ]
    assert result["incomplete"] is True
    assert result["packages"] == ["org.example:bomb@1.0 /app/bomb.jar"]


def test_a_zip_entry_lying_about_its_size_inflates_no_further_than_its_claim(tmp_path):
    honest = jar({"META-INF/maven/org.example/liar/pom.properties": b"\0" * (64 * MiB)})
    # Rewrite the claimed size (local header and central directory) to 100 bytes.
    info = zipfile.ZipFile(io.BytesIO(honest)).infolist()[0]
    lying = bytearray(honest)
    real = (64 * MiB).to_bytes(4, "little")
    for at in (22, honest.rindex(b"PK\x01\x02") + 24):
        assert lying[at : at + 4] == real
        lying[at : at + 4] = (100).to_bytes(4, "little")
    result = scan_layers(tmp_path, [tar_of(regular("app/liar.jar", bytes(lying)))])
    assert result["warnings"] == [f"/app/liar.jar: Java archive skipped: Bad CRC-32 for file '{info.filename}'"]
    assert result["packages"] == []


def test_jars_nested_deeper_than_the_limit_are_skipped(tmp_path):
    inner = jar({**pom("inner"), "lib/innermost.jar": jar(pom("innermost"))})
    middle = jar({**pom("middle"), "lib/inner.jar": inner})
    outer = jar({**pom("outer"), "WEB-INF/lib/middle.jar": middle})
    result = scan_layers(tmp_path, [tar_of(regular("app/outer.war", outer))], max_archive_depth=3)
    assert result["warnings"] == [
        "/app/outer.war:WEB-INF/lib/middle.jar:lib/inner.jar [lib/innermost.jar]: nested Java archive skipped: "
        "deeper than the limit max_archive_depth (VIGIL_SCAN_MAX_ARCHIVE_DEPTH=3)"
    ]
    assert result["incomplete"] is True
    assert result["packages"] == [
        "org.example:inner@1.0 /app/outer.war:WEB-INF/lib/middle.jar:lib/inner.jar",
        "org.example:middle@1.0 /app/outer.war:WEB-INF/lib/middle.jar",
        "org.example:outer@1.0 /app/outer.war",
    ]


def test_a_jar_of_more_entries_than_the_limit_is_skipped_before_its_directory_is_parsed(tmp_path):
    many = jar({**pom("many"), **{f"a/{i:05d}.class": b"" for i in range(3000)}}, compression=zipfile.ZIP_STORED)
    few = jar(pom("few"))
    result = scan_layers(
        tmp_path, [tar_of(regular("app/many.jar", many), regular("app/few.jar", few))], max_archive_entries=1000
    )
    assert result["warnings"] == [
        "/app/many.jar: Java archive skipped: more entries than the limit max_archive_entries "
        "(VIGIL_SCAN_MAX_ARCHIVE_ENTRIES=1000)"
    ]
    assert result["incomplete"] is True
    assert result["packages"] == ["org.example:few@1.0 /app/few.jar"]


# -- (e) rpm databases that loop or swell ----------------------------------------------------------

RPMDB = "var/lib/rpm/rpmdb.sqlite"


def rpmdb(path: Path, *statements: str) -> bytes:
    conn = sqlite3.connect(path)
    for statement in statements:
        conn.execute(statement)
    conn.commit()
    conn.close()
    return path.read_bytes()


def test_an_rpm_database_whose_packages_is_a_view_that_never_ends(tmp_path):
    db = rpmdb(
        tmp_path / "loop.sqlite",
        "CREATE VIEW Packages AS WITH RECURSIVE n(hnum) AS (SELECT 1 UNION ALL SELECT hnum + 1 FROM n) "
        "SELECT hnum, zeroblob(1000) AS blob FROM n",
    )
    result = scan_layers(tmp_path, [tar_of(regular(RPMDB, db))])
    assert result["warnings"] == [f"/{RPMDB}: rpm database not readable, skipped: Packages is not a table"]
    assert result["incomplete"] is True
    assert result["seconds"] < 10


def test_an_rpm_database_whose_rows_swell_to_gigabytes(tmp_path):
    db = rpmdb(
        tmp_path / "swell.sqlite",
        "CREATE TABLE Packages (hnum INTEGER PRIMARY KEY, raw BLOB, blob BLOB AS (zeroblob(900000000)))",
        "INSERT INTO Packages (hnum, raw) VALUES (1, x'00'), (2, x'00')",
    )
    result = scan_layers(tmp_path, [tar_of(regular(RPMDB, db))])
    assert result["warnings"] == [
        f"/{RPMDB}: rpm database not read to its end: limit max_archive_entry_bytes "
        "(VIGIL_SCAN_MAX_ARCHIVE_ENTRY_BYTES=268435456) reached: a Packages row larger than that"
    ]
    assert result["incomplete"] is True


def test_an_rpm_database_that_computes_forever_stops_at_the_deadline(tmp_path):
    rows = ",".join(f"({i})" for i in range(1, 5001))
    # ORDER BY a generated hnum computes every row's (4 ms each) before the first is returned: one
    # query step of 21 s on a quiet machine here, far past the deadline on any faster one. Added after
    # the rows, so inserting them computes nothing.
    db = rpmdb(
        tmp_path / "slow.sqlite",
        "CREATE TABLE Packages (id INTEGER PRIMARY KEY, blob BLOB DEFAULT x'00')",
        f"INSERT INTO Packages (id) VALUES {rows}",
        "ALTER TABLE Packages ADD COLUMN hnum INTEGER AS (id + length(hex(zeroblob(2000000 + id)))) VIRTUAL",
    )
    result = scan_layers(tmp_path, [tar_of(regular(RPMDB, db))], deadline_seconds=2.0)
    limit = "limit deadline_seconds (VIGIL_SCAN_DEADLINE_SECONDS=2) reached: N s spent"
    # the catalogers after rpm do not start: each says its packages may be missing
    assert [re.sub(r"\d+\.\d s spent", "N s spent", w) for w in result["warnings"]] == [
        f"/{RPMDB}: rpm database not read to its end: {limit}",
        *(
            f"cataloger {name}: {limit}; its packages may be missing"
            for name in (
                "python",
                "npm",
                "go-binary",
                "java-archive",
                "ruby-gemspec",
                "php-composer",
                "dotnet-deps",
                "rust-cargo-auditable",
            )
        ),
    ]
    assert result["incomplete"] is True
    assert result["seconds"] < 6


# -- (f) a huge manifest from a hostile registry ---------------------------------------------------

_PULL = """
import json, sys, time
"PEAK_RSS"
from vigil.model.image import parse_image_ref
from vigil.registry import RegistryClient, RegistryConfig, RegistryError, RetryPolicy
from vigil.scanner.pull import pull_contents
spec = json.loads(sys.argv[1])
ref = parse_image_ref(spec["image"])
config = RegistryConfig.from_mapping({ref.registry: {"plain_http": True}})
started = time.monotonic()
with RegistryClient(config, retry=RetryPolicy(max_attempts=1), max_manifest_bytes=spec["cap"]) as client:
    try:
        pull_contents(client, ref, ref.pull_reference)
        error = None
    except RegistryError as exc:
        error = str(exc)
print(json.dumps({
    "error": error,
    "seconds": time.monotonic() - started,
    "peak_rss": peak_rss(),
}))
"""


@pytest.fixture
def hostile_registry():
    """Answers every manifest GET with 1.5 GB of JSON-looking bytes, made as they are sent."""
    sent = {"bytes": 0}

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_GET(self):
            if self.path == "/v2/":
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            total = 1536 * 1000 * 1000
            self.send_response(200)
            self.send_header("Content-Type", mt.OCI_MANIFEST)
            self.send_header("Content-Length", str(total))
            self.end_headers()
            chunk = b'{"layers": [' + b" " * (MiB - 12)
            try:
                while sent["bytes"] < total:
                    self.wfile.write(chunk)
                    sent["bytes"] += len(chunk)
            except (BrokenPipeError, ConnectionResetError):
                pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}", sent
    server.shutdown()
    server.server_close()


def test_a_huge_manifest_is_read_no_further_than_the_limit(hostile_registry):
    host, sent = hostile_registry
    result = run_child(_PULL, {"image": f"{host}/hostile/app:1.0", "cap": 4 * MiB})
    assert result["error"] == (
        f"registry {host}, repository hostile/app, reference 1.0: manifest larger than the limit max_manifest_bytes "
        "(VIGIL_SCAN_MAX_MANIFEST_BYTES=4194304); not read further"
    )
    assert sent["bytes"] < 1536 * 1000 * 1000
    assert result["seconds"] < 10


# -- (g) whiteouts of the root, directories 3,000 deep ---------------------------------------------


def test_root_whiteouts_and_directories_3000_deep(tmp_path):
    deep = "/".join(["d"] * 3000)
    lower = tar_of(directory("etc"), regular("etc/passwd", b"root:x:0:0\n"), regular(f"{deep}/leaf", b"x"))
    root_whiteout = tar_of(regular(".wh.", b""), regular("app/run", b"#!/bin/sh\n"))
    opaque_root = tar_of(regular(".wh..wh..opq", b""), regular(f"{deep}/new", b"n"), regular("app/run", b"2"))
    deep_whiteout = tar_of(regular(f"{deep}/.wh.new", b""), regular(f"{deep}/.wh..wh..opq", b""))
    result = scan_layers(tmp_path, [lower, root_whiteout, opaque_root, deep_whiteout])
    assert result["warnings"] == [f"layer 1 ({mt.OCI_LAYER}) [.wh.]: whiteout skipped: it names no entry of /"]
    assert result["incomplete"] is False
    assert result["files"] == ["/app/run"]


def test_warnings_about_one_file_stop_at_a_thousand(tmp_path):
    blob = tar_of(*(regular(f"../escape{i}", b"") for i in range(1500)), regular("etc/ok", b"1"))
    result = scan_layers(tmp_path, [blob])
    assert len(result["warnings"]) == 1001
    assert result["warnings"][999] == f"{LAYER0} [../escape999]: tar member skipped: a '..' component in its path"
    assert result["warnings"][1000] == f"{LAYER0}: more than 1000 warnings; the rest are not listed"
    assert result["files"] == ["/etc/ok"]


# -- the limits as the commands and the service read them ------------------------------------------


def three_files_layout(tmp_path: Path) -> Path:
    blob = tar_of(regular("a", b"1"), regular("b", b"2"), regular("c", b"3"))
    layer = Layer(Blob(mt.OCI_LAYER, blob), "sha256:" + hashlib.sha256(blob).hexdigest(), ())
    return write_oci_layout(tmp_path / "layout", build_image([layer]))


def test_vigil_scan_reads_the_limits_from_the_environment(tmp_path):
    layout = three_files_layout(tmp_path)
    db = tmp_path / "intel.db"
    import_advisories(db)
    runner = CliRunner()
    result = runner.invoke(
        app, ["scan", str(layout), "--db", str(db), "--output", "json"], env={"VIGIL_SCAN_MAX_FILES": "2"}
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["warnings"] == [
        f"{LAYER0}: limit max_files (VIGIL_SCAN_MAX_FILES=2) reached: at c; the rest of the layer was not read"
    ]
    bad = runner.invoke(app, ["sbom", str(layout)], env={"VIGIL_SCAN_MAX_FILES": "two"})
    assert bad.exit_code == 2
    assert "error: VIGIL_SCAN_MAX_FILES='two': must be a whole number above 0" in bad.output


def test_the_service_scanner_reads_the_limits_when_it_starts(tmp_path, monkeypatch):
    settings = Settings(data_dir=tmp_path)
    engine = create_store_engine(settings.store_url)
    monkeypatch.setenv("VIGIL_SCAN_MAX_FILES", "7")
    monkeypatch.setenv("VIGIL_SCAN_MAX_MANIFEST_BYTES", "65536")
    scanner = make_contents(settings, engine).scanner
    assert scanner is not None
    assert scanner.limits == ScanLimits(max_files=7, max_manifest_bytes=65536)
    assert scanner.client.max_manifest_bytes == 65536
    # each image in a child process with its own memory limit, reading the same registry settings
    assert scanner.isolated == isolated.ClientSource(None, max_manifest_bytes=65536)
    monkeypatch.setenv("VIGIL_SCAN_DEADLINE_SECONDS", "forever")
    with pytest.raises(
        ValueError, match=r"^VIGIL_SCAN_DEADLINE_SECONDS='forever': must be a number of seconds above 0$"
    ):
        make_contents(settings, engine)


# -- the service's scans in a child process with its own memory limit ------------------------------


def push_layers(registry_host: str, tmp_path: Path, name: str, blobs: list[bytes]) -> tuple[ImageRef, str]:
    layers = [Layer(Blob(mt.OCI_LAYER, b), "sha256:" + hashlib.sha256(b).hexdigest(), ()) for b in blobs]
    layout = write_oci_layout(tmp_path / name, build_image(layers))
    with client_for(registry_host) as client:
        digest = push_layout(client, f"{registry_host}/hostile/{name}:1", layout)
    return ImageRef(registry_host, f"hostile/{name}", None, digest), digest


def own_peak_rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def plain_http_source(tmp_path: Path, host: str, **options) -> isolated.ClientSource:
    """Where the child reads its registry settings: a file naming the test registry plain HTTP."""
    path = tmp_path / "registries.yaml"
    path.write_text(json.dumps({host: {"plain_http": True}}))
    return isolated.ClientSource(path, **options)


def test_an_isolated_scan_returns_what_an_in_process_one_does(registry, tmp_path):
    ref, digest = push_layers(registry.host, tmp_path, "plain", [tar_of(regular("etc/hostname", b"box\n"))])
    source = plain_http_source(tmp_path, registry.host)
    pulled = pull_isolated(source, ref, digest, DEFAULT_PLATFORM, ScanLimits(max_memory_bytes=1 * GiB))
    with client_for(registry.host) as client:
        direct = pull_contents(client, ref, digest, DEFAULT_PLATFORM)
    assert pulled.manifest_digest == digest
    assert pulled.contents.to_dict() == direct.contents.to_dict()


def test_memory_a_hostile_image_takes_is_the_childs_not_the_services(registry, tmp_path):
    db = rpmdb(
        tmp_path / "swell.sqlite",
        "CREATE TABLE Packages (hnum INTEGER PRIMARY KEY, raw BLOB, blob BLOB AS (zeroblob(900000000)))",
        "INSERT INTO Packages (hnum, raw) VALUES (1, x'00')",
    )
    ref, digest = push_layers(registry.host, tmp_path, "swell", [tar_of(regular(RPMDB, db))])
    # The row limit raised past the row: only the child's address space stands in the way.
    limits = ScanLimits(max_archive_entry_bytes=1_000_000_000, max_memory_bytes=768 * MiB)
    before = own_peak_rss()
    pulled = pull_isolated(plain_http_source(tmp_path, registry.host), ref, digest, DEFAULT_PLATFORM, limits)
    assert [str(w) for w in pulled.contents.warnings] == [
        "cataloger rpmdb: failed, its packages are missing: MemoryError()"
    ]
    assert own_peak_rss() - before < 50 * MiB


def test_an_isolated_scan_past_its_deadline_is_stopped_and_names_the_limit(monkeypatch, tmp_path):
    monkeypatch.setattr(isolated, "_GRACE_SECONDS", 1.0)
    with socket.socket() as silent:  # a registry that takes the connection and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        host = f"127.0.0.1:{silent.getsockname()[1]}"
        ref = ImageRef(host, "hostile/app", None, "sha256:" + "b" * 64)
        source = plain_http_source(tmp_path, host, timeout=120.0)
        started = time.monotonic()
        with pytest.raises(isolated.IsolatedScanError) as caught:
            pull_isolated(source, ref, ref.digest or "", DEFAULT_PLATFORM, ScanLimits(deadline_seconds=1.0))
        took = time.monotonic() - started
    assert str(caught.value) == (
        "the scan did not finish within deadline_seconds (VIGIL_SCAN_DEADLINE_SECONDS=1) and 1 s more; "
        "its process was stopped"
    )
    assert took < 10


def test_the_service_scans_a_hostile_image_in_its_child_and_shows_the_limit(registry, tmp_path, monkeypatch):
    host_setting = registry.host.upper().replace(".", "_").replace(":", "_")
    monkeypatch.setenv(f"VIGIL_REGISTRY_{host_setting}_PLAIN_HTTP", "true")
    monkeypatch.setenv("VIGIL_SCAN_MAX_FILES", "2")
    monkeypatch.setenv("VIGIL_SCAN_MAX_MEMORY_BYTES", str(1 * GiB))
    blob = tar_of(regular("a", b"1"), regular("b", b"2"), regular("c", b"3"))
    ref, digest = push_layers(registry.host, tmp_path, "three", [blob])
    svc = LiveService(tmp_path / "data").start()
    try:
        scanner = svc.app.state.workers.contents.scanner
        assert scanner.isolated is not None and scanner.limits.max_files == 2
        svc.trust_registry(registry.host)
        cid, cred = svc.register("prod")
        post(svc, cred, snapshot(cid, [("shop", "web", f"{registry.host}/hostile/three:1", digest)]))
        report = run_scans(svc)
        assert [(s["digest"], s["status"]) for s in report["scanned"]] == [(digest, "done")], report
        scan = svc.get(f"/api/v1/images/{image_pk(svc, cid, 'web')}/scan").json()
        assert scan["status"] == "done" and scan["incomplete"] is True
        assert [w if isinstance(w, str) else f"{w['file']}: {w['message']}" for w in scan["warnings"]] == [
            f"{LAYER0}: limit max_files (VIGIL_SCAN_MAX_FILES=2) reached: at c; the rest of the layer was not read"
        ]
    finally:
        svc.stop()
