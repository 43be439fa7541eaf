"""What a scan could not read is shown, never a silent empty list: an image whose rpm database is in
a Berkeley DB variant Vigil does not read (btree) and which holds a pacman database, catalogued for
real and stored through the scan queue, has its "not read" warnings and unread files in the API's
scan and its warnings on the console's image page."""

from __future__ import annotations

import struct
from pathlib import Path

import httpx
from sqlalchemy import update

from vigil.catalog import catalog_rootfs
from vigil.model.scan import ScanJob
from vigil.scanner.worker import scan_result
from vigil.service.store import contents
from vigil.service.store.schema import image_scans

SHARED_BDB = (
    Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "pkgdb" / "rpm" / "el8-libuuid-bdb" / "Packages"
)
APP1 = "registry.example.com/team1/app1:1.1"
NOT_READ = [
    "/var/lib/pacman/local: pacman database (Arch Linux) not read: Vigil has no cataloger for it; "
    "its packages are not listed",
    "/var/lib/rpm/Packages: rpm database in Berkeley DB format not read: a Berkeley DB btree database, not a hash one",
]


def scanned_rootfs(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "var/lib/rpm").mkdir(parents=True)
    data = bytearray(SHARED_BDB.read_bytes())
    struct.pack_into("<I", data, 12, 0x053162)  # the btree magic
    (root / "var/lib/rpm/Packages").write_bytes(bytes(data))
    (root / "var/lib/pacman/local/bash-5.2.015-1").mkdir(parents=True)
    (root / "var/lib/pacman/local/bash-5.2.015-1/desc").write_text("%NAME%\nbash\n")
    (root / "etc").mkdir()
    (root / "etc/os-release").write_text('ID="rhel"\nVERSION_ID="8.8"\n')
    return root


def test_not_read_databases_are_in_the_api_and_on_the_image_page(console, admin_page, tmp_path):
    svc, w = console
    digest = w.digest[APP1]
    result = catalog_rootfs(scanned_rootfs(tmp_path))
    assert sorted(str(x) for x in result.warnings) == NOT_READ
    with svc.engine.begin() as conn:
        # app1's scan, taken as the worker that catalogued it would hold it (the seeded world has no
        # registry to pull it from), then stored through the queue's own record_result.
        conn.execute(
            update(image_scans).where(image_scans.c.digest == digest).values(status="scanning", worker="test-worker")
        )
        job = ScanJob(digest, "linux/amd64", 1, "test-worker", ())
        stored = scan_result(result, digest, "registry.example.com/team1/app1", "linux/amd64")
        assert stored.unread_files == ["/var/lib/pacman/local", "/var/lib/rpm/Packages"]
        assert contents.record_result(conn, job, stored)
    pk = w.image_pk[APP1]
    r = httpx.get(f"{svc.url}/api/v1/images/{pk}/scan", headers={"Authorization": f"Bearer {svc.admin_token}"})
    assert r.status_code == 200, r.text
    scan = r.json()
    assert (scan["status"], scan["packages"], scan["incomplete"]) == ("done", 0, True)
    assert sorted(scan["warnings"]) == NOT_READ
    assert scan["unread_files"] == ["/var/lib/pacman/local", "/var/lib/rpm/Packages"]
    page = admin_page
    page.goto(f"{svc.url}/images/{pk}")
    assert page.locator("#scan-incomplete").inner_text() == "incomplete"
    warnings = page.locator("#scan-warnings")
    assert warnings.get_attribute("open") is not None
    assert warnings.locator("summary").inner_text() == "2 scan warnings: what was not read or was skipped"
    assert sorted(li.inner_text() for li in warnings.locator("li").all()) == NOT_READ
