"""Cataloger versions: a scan records the version of every cataloger it ran; when a cataloger
that found packages in a stored image changes version, that image is pulled and catalogued
again, and images it found nothing in are not pulled. Pulls are counted in the real test
registry's access log."""

from __future__ import annotations

import re
import time
from pathlib import Path

from sqlalchemy import select

from vigil.catalog import CATALOGERS, CatalogerRun, catalog_rootfs, cataloger_versions
from vigil.devtools.oci import build_image, push, tar_layer
from vigil.model.scan import CatalogerRecord, is_stale
from vigil.service.store.schema import image_scans

from .helpers import client_for, post, snapshot, use_registry

PY_METADATA = b"Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n"
NPM_PACKAGE = b'{"name": "left-pad", "version": "1.3.0"}'


def record(version: int, packages: int, failed: bool = False) -> CatalogerRecord:
    return CatalogerRecord(version=version, packages=packages, failed=failed)


# -- the rule -------------------------------------------------------------------------------------


def test_stale_only_when_a_cataloger_that_took_part_changed_or_one_is_new():
    current = {"dpkg": 1, "python": 2}
    assert is_stale({"dpkg": record(1, 90), "python": record(2, 3)}, current) is False
    assert is_stale({"dpkg": record(1, 90), "python": record(1, 3)}, current) is True  # found packages, changed
    assert is_stale({"dpkg": record(1, 90), "python": record(1, 0)}, current) is False  # found nothing there
    assert is_stale({"dpkg": record(1, 90), "python": record(1, 0, failed=True)}, current) is True  # failed
    assert is_stale({"dpkg": record(1, 90)}, current) is True  # python is new since the scan
    assert is_stale({"dpkg": record(1, 90), "python": record(2, 0), "go-binary": record(1, 4)}, current) is True
    assert is_stale({"dpkg": record(1, 90), "python": record(2, 0), "go-binary": record(1, 0)}, current) is False
    assert is_stale(None, current) is True  # scanned before scans recorded their catalogers
    assert is_stale({}, current) is True


def test_a_catalog_records_every_cataloger_it_ran(tmp_path: Path):
    site = tmp_path / "usr/lib/python3/dist-packages/demo-1.0.dist-info"
    site.mkdir(parents=True)
    (site / "METADATA").write_bytes(PY_METADATA)
    contents = catalog_rootfs(tmp_path)
    assert (
        set(cataloger_versions())
        == set(CATALOGERS)
        == {
            "dpkg",
            "apk",
            "rpmdb",
            "python",
            "npm",
            "go-binary",
            "java-archive",
            "ruby-gemspec",
            "php-composer",
            "dotnet-deps",
            "rust-cargo-auditable",
        }
    )
    assert contents.catalogers == {
        name: CatalogerRun(c.version, 1 if name == "python" else 0) for name, c in CATALOGERS.items()
    }


# -- against a real registry ------------------------------------------------------------------------

_PULL = re.compile(r'"GET /v2/(?P<repo>[^ "]+)/(?P<what>manifests|blobs)/(?P<ref>[^ "?]+)[^"]*" (?P<status>\d{3})')


def pulls_since(registry, offset: int) -> set[tuple[str, str, str]]:
    """(repository, manifests|blobs, reference) of every successful GET in the registry's access log
    after byte ``offset``."""
    time.sleep(0.2)  # the access log line is written as the response ends
    with open(registry.log_path, "rb") as f:
        f.seek(offset)
        text = f.read().decode(errors="replace")
    return {(m["repo"], m["what"], m["ref"]) for m in _PULL.finditer(text) if m["status"].startswith("2")}


def log_size(registry) -> int:
    time.sleep(0.2)
    return registry.log_path.stat().st_size


def stored_catalogers(svc) -> dict[str, tuple]:
    with svc.engine.connect() as conn:
        rows = conn.execute(select(image_scans.c.digest, image_scans.c.catalogers, image_scans.c.finished_at))
        return {d: (c, finished) for d, c, finished in rows}


class NewCataloger:
    """A cataloger added to the table after the images were scanned; it finds nothing."""

    name = "new-ecosystem"
    version = 1

    def keeps(self, path: str, mode: int, head: bytes) -> bool:
        return False

    def catalog(self, view, ctx) -> list:
        return []


def test_changed_cataloger_recatalogues_only_the_images_it_found_packages_in(service_on, registry, monkeypatch):
    svc = service_on
    worker = use_registry(svc, registry.host)
    images = {
        "python": build_image([tar_layer({"usr/lib/python3/dist-packages/demo-1.0.dist-info/METADATA": PY_METADATA})]),
        "npm": build_image([tar_layer({"app/node_modules/left-pad/package.json": NPM_PACKAGE})]),
        "plain": build_image([tar_layer({"app/readme.txt": b"nothing to catalog"})]),
    }
    repos = {key: f"recat/{key}" for key in images}
    with client_for(registry.host) as pusher:
        for key, img in images.items():
            push(pusher, f"{registry.host}/{repos[key]}:1", img)
    cid, cred = svc.register("recat")
    post(
        svc,
        cred,
        snapshot(cid, [("team", key, f"{registry.host}/{repos[key]}:1", img.digest) for key, img in images.items()]),
    )
    contents = svc.app.state.workers.contents

    def scan_pass() -> list[str]:
        report = contents.run_pass(scan=True)
        assert {o.status for o in report.scanned} <= {"done"}, report.scanned
        return sorted(o.digest for o in report.scanned)

    def pulled(offset: int) -> set[tuple[str, str, str]]:
        return pulls_since(registry, offset)

    def expected_pull(key: str) -> set[tuple[str, str, str]]:
        img = images[key]
        return {(repos[key], "manifests", img.digest)} | layers_of(key)

    def layers_of(key: str) -> set[tuple[str, str, str]]:
        return {(repos[key], "blobs", layer.blob.digest) for layer in images[key].layers}

    def pulled_again(offset: int) -> set[tuple[str, str, str]]:
        # The scanner's client keeps manifests by digest (content-addressed), so a second pull of
        # an image asks the registry for its layers only.
        seen = pulled(offset)
        assert {what for _, what, _ in seen} <= {"blobs"}, seen
        return seen

    offset = log_size(registry)
    assert scan_pass() == sorted(img.digest for img in images.values())
    assert pulled(offset) == expected_pull("python") | expected_pull("npm") | expected_pull("plain")
    first = stored_catalogers(svc)
    py = CATALOGERS["python"].version
    assert first[images["python"].digest][0]["python"] == {"version": py, "packages": 1, "failed": False}
    assert first[images["npm"].digest][0]["npm"] == {
        "version": CATALOGERS["npm"].version,
        "packages": 1,
        "failed": False,
    }
    assert first[images["plain"].digest][0] == {
        name: {"version": c.version, "packages": 0, "failed": False} for name, c in CATALOGERS.items()
    }

    # Nothing changed: nothing is queued, nothing pulled.
    offset = log_size(registry)
    assert scan_pass() == []
    assert pulled(offset) == set()

    # The Python cataloger changes: only the image it found a package in is pulled again.
    monkeypatch.setattr(CATALOGERS["python"], "version", py + 1)
    offset = log_size(registry)
    assert worker.enqueue_running() == {"queued": 0, "retried": 0, "requeued": 0, "untrusted": 0, "recatalogued": 1}
    assert scan_pass() == [images["python"].digest]
    assert pulled_again(offset) == layers_of("python")
    second = stored_catalogers(svc)
    assert second[images["python"].digest][0]["python"] == {"version": py + 1, "packages": 1, "failed": False}
    assert second[images["python"].digest][1] > first[images["python"].digest][1]
    for key in ("npm", "plain"):
        assert second[images[key].digest] == first[images[key].digest]  # not touched

    offset = log_size(registry)
    assert scan_pass() == []
    assert pulled(offset) == set()

    # The npm cataloger changes: only the npm image.
    monkeypatch.setattr(CATALOGERS["npm"], "version", CATALOGERS["npm"].version + 6)
    offset = log_size(registry)
    assert scan_pass() == [images["npm"].digest]
    assert pulled_again(offset) == layers_of("npm")

    # A new cataloger may find packages anywhere: every image is catalogued again, once.
    monkeypatch.setitem(CATALOGERS, NewCataloger.name, NewCataloger())
    offset = log_size(registry)
    assert scan_pass() == sorted(img.digest for img in images.values())
    assert pulled_again(offset) == layers_of("python") | layers_of("npm") | layers_of("plain")
    assert stored_catalogers(svc)[images["plain"].digest][0][NewCataloger.name] == {
        "version": 1,
        "packages": 0,
        "failed": False,
    }
    offset = log_size(registry)
    assert scan_pass() == []
    assert pulled(offset) == set()
