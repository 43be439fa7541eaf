"""A scan matched against no advisories for an ecosystem its packages need is incomplete, never clean: the
API's scan and image listing carry the coverage per ecosystem, and the console's images list, image page
and overview show "incomplete" apart from "clean" (the real match over the seeded app0, whose Debian
packages have no advisories loaded and whose npm package has one)."""

from __future__ import annotations

import re

import httpx
import pytest

from vigil.intel import AdvisoryStore
from vigil.intel.osv import parse_record

APP0 = "registry.example.com/team0/app0:1.0"
ADVISORY = {
    "id": "MAL-2018-1",
    "modified": "2024-01-02T03:04:05Z",
    "summary": "event-stream 3.3.6 carries flatmap-stream, which steals wallets",
    "affected": [{"package": {"ecosystem": "npm", "name": "event-stream"}, "versions": ["3.3.6"]}],
    "database_specific": {"malicious-packages-origins": [{"source": "seed"}]},
}
DEBIAN = {"ecosystem": "Debian:12", "packages": 52, "loaded": False, "records": 0, "as_of": None}
NPM = {"ecosystem": "npm", "packages": 1, "loaded": True, "records": 1, "as_of": "2024-01-02T03:04:05+00:00"}


def _api(svc, path: str):
    r = httpx.get(f"{svc.url}{path}", headers={"Authorization": f"Bearer {svc.admin_token}"}, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


@pytest.fixture(scope="module")
def matched(console):
    """The seeded contents matched by the service's own pass against an advisory database holding one
    npm record and nothing for Debian."""
    svc, w = console
    with AdvisoryStore(svc.settings.intel_db) as db:
        db.upsert([parse_record(ADVISORY)[0]])
    report = svc.app.state.workers.contents.run_pass()
    assert report.matched >= 1
    return svc, w


def test_the_api_states_each_ecosystems_coverage(matched):
    svc, w = matched
    pk = w.image_pk[APP0]
    scan = _api(svc, f"/api/v1/images/{pk}/scan")
    assert scan["coverage"] == {"status": "incomplete", "ecosystems": [DEBIAN, NPM]}
    listing = {i["id"]: i for i in _api(svc, "/api/v1/images?limit=100")["items"]}
    assert listing[pk]["coverage"] == {"status": "incomplete", "ecosystems": [DEBIAN, NPM]}
    # Not scanned: nothing was matched, so there is no coverage to state.
    assert listing[w.image_pk["registry.example.com/team1/app1:1.1"]]["coverage"] is None


def test_an_image_with_no_advisories_for_its_os_is_incomplete_in_the_console(matched, admin_page):
    svc, w = matched
    pk = w.image_pk[APP0]
    page = admin_page
    page.goto(f"{svc.url}/images")
    cell = page.locator(f'tr[data-image-id="{pk}"] td.vulns')
    assert cell.get_attribute("data-verdict") == "vulnerable"  # the malicious npm package, found
    assert cell.locator(".coverage-incomplete").inner_text() == "incomplete"
    assert cell.locator(".coverage-incomplete").get_attribute("title") == (
        "no advisories loaded for Debian:12: their packages were not checked"
    )
    page.goto(f"{svc.url}/images/{pk}")
    assert page.locator("#coverage-incomplete").inner_text() == "incomplete"
    rows = {
        r.get_attribute("data-ecosystem"): [c.strip() for c in r.inner_text().split("\t")]
        for r in page.locator("#advisory-coverage tbody tr").all()
    }
    assert rows == {
        "Debian:12": ["Debian:12", "52", "none loaded: not checked", "0", "—"],
        "npm": ["npm", "1", "loaded", "1", "2024-01-02 03:04:05 UTC"],
    }


def test_zero_vulnerabilities_with_incomplete_coverage_is_never_clean(matched, admin_page, output_dir):
    svc, w = matched
    pk = w.image_pk[APP0]
    # With the npm record withdrawn, nothing is found: 0 vulnerabilities, and still incomplete, not clean.
    withdrawn = dict(ADVISORY, modified="2024-02-01T00:00:00Z", withdrawn="2024-02-01T00:00:00Z")
    with AdvisoryStore(svc.settings.intel_db) as db:
        db.upsert([parse_record(withdrawn)[0]])
    assert svc.app.state.workers.contents.run_pass().matched >= 1
    scan = _api(svc, f"/api/v1/images/{pk}/scan")
    assert sum(scan["vulnerabilities"].values()) == 0
    assert scan["coverage"]["status"] == "incomplete"
    page = admin_page
    page.goto(f"{svc.url}/images")
    cell = page.locator(f'tr[data-image-id="{pk}"] td.vulns')
    assert cell.get_attribute("data-verdict") == "incomplete"
    assert " ".join(cell.inner_text().split()) == "incomplete"
    page.goto(f"{svc.url}/images/{pk}")
    assert page.locator("#image-vulnerabilities").inner_text().startswith("none found where checked incomplete")
    assert page.locator("#no-image-vulns").inner_text() == (
        "No vulnerability found, but the check is incomplete: no advisories loaded for Debian:12, npm: "
        "their packages were not checked."
    )
    page.screenshot(path=str(output_dir / "image-incomplete.png"), full_page=True)
    page.goto(f"{svc.url}/")
    counts = {s.get_attribute("data-scan"): s.inner_text() for s in page.locator("#image-scans [data-scan]").all()}
    assert re.fullmatch(r"1 incomplete .*", counts["incomplete"]) and counts["clean"] == "0 clean"
    riskiest = page.locator(f'tr[data-image-id="{pk}"] td.vulns')
    assert (riskiest.get_attribute("data-verdict"), riskiest.inner_text().strip()) == ("incomplete", "incomplete")
    page.screenshot(path=str(output_dir / "overview-incomplete.png"), full_page=True)
