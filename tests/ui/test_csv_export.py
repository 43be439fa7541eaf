"""CSV export of every console list: the list's rows with its filters (all of them, up to the cap),
as a download, with cells a spreadsheet cannot run as formulas."""

from __future__ import annotations

import csv
import html
import io
import re

import httpx
import pytest
from starlette.datastructures import QueryParams

from vigil.devtools.inventory import synthetic_snapshot
from vigil.service.store.findings import Observation, observe
from vigil.service.ui import csv_export
from vigil.service.ui.pages import export

from .seed import post_batch
from .test_sessions import _cookie, _sign_in

HOSTILE_KERNEL = "=cmd|' /C calc'!A0"
HOSTILE_SUBJECT = '=HYPERLINK("http://evil.example","click")'


@pytest.fixture(scope="module")
def client(console):
    svc, _ = console
    with httpx.Client(base_url=svc.url, timeout=60) as c:
        cookie, _ = _sign_in(c, svc.token("viewer", "csv-viewer"))
        c.headers.update(_cookie(cookie))
        yield c


@pytest.fixture(scope="module")
def hostile(console):
    """A cluster whose node reports a kernel that is a spreadsheet formula, and a finding whose subject is one."""
    svc, _ = console
    cid, cred = svc.register("hostile")
    snap = synthetic_snapshot(cid, nodes=1, pods=1, images=1, seed=9, batch_id="snap-h")
    node = snap.nodes[0].model_copy(update={"kernel_version": HOSTILE_KERNEL})
    snap = snap.model_copy(update={"nodes": [node]})
    assert post_batch(svc, cred, snap).status_code == 200
    with svc.engine.begin() as conn:
        fid, _ = observe(
            conn,
            Observation(
                dedup_key="csv:hostile",
                type="suspicious_exec",
                severity="low",
                subject=HOSTILE_SUBJECT,
                evidence={},
                cluster_id=cid,
            ),
        )
    return cid, fid


def _csv(resp: httpx.Response) -> list[list[str]]:
    assert resp.status_code == 200, resp.text[:500]
    assert resp.headers["content-type"] == "text/csv; charset=utf-8"
    return list(csv.reader(io.StringIO(resp.text)))


def _export_href(page: httpx.Response) -> str | None:
    assert page.status_code == 200, page.text[:500]
    m = re.search(r'<a class="export-csv" id="export-csv" href="([^"]+)">Export CSV</a>', page.text)
    return html.unescape(m.group(1)) if m else None


def test_findings_export_is_exactly_the_filtered_rows(console, client):
    svc, world = console
    resp = client.get("/findings.csv", params={"severity": "high", "status": "any", "limit": 25})
    rows = _csv(resp)
    assert rows[0] == [
        "id",
        "severity",
        "type",
        "risk",
        "runtime",
        "subject",
        "cluster",
        "namespace",
        "workload",
        "image",
        "status",
        "status reason",
        "first seen",
        "last seen",
    ]
    high = ("untrusted", "running_vuln", "vuln_d0", "vuln_s1", "resolved")
    # Same severity: by id, as the list sorts them.
    assert [int(r[0]) for r in rows[1:]] == sorted(world.findings[k] for k in high)
    assert {r[1] for r in rows[1:]} == {"high"}
    by_id = {int(r[0]): r for r in rows[1:]}
    resolved = by_id[world.findings["resolved"]]
    assert resolved[2] == "runtime_drift" and resolved[5] == "/tmp/x dropped"
    assert resolved[6:9] == ["prod", "ns-0", "Deployment/deployment-0"]
    assert resolved[10:12] == ["resolved", "rebuilt image"]
    untrusted = by_id[world.findings["untrusted"]]
    assert untrusted[9].startswith("registry.example.com/team1/app1:1.1@sha256:")
    assert resp.headers["x-vigil-export-rows"] == "5" and resp.headers["x-vigil-export-capped"] == "false"
    assert re.fullmatch(r'attachment; filename="vigil-findings-\d{8}T\d{6}Z\.csv"', resp.headers["content-disposition"])
    # The same rows as the page shows for the same filters.
    page = client.get("/findings", params={"severity": "high", "status": "any"})
    shown = [int(i) for i in re.findall(r'<td><a href="/findings/(\d+)">\1</a></td>', page.text)]
    assert shown == [int(r[0]) for r in rows[1:]]


def test_export_is_every_row_not_the_page_and_keeps_the_sort(console, client):
    svc, world = console
    # A later page's cursor and the page size are the page's, not the export's.
    first = client.get("/findings", params={"status": "any", "limit": 25, "sort": "-id"})
    assert first.status_code == 200
    rows = _csv(client.get("/findings.csv", params={"status": "any", "sort": "-id", "limit": 25}))
    ids = [int(r[0]) for r in rows[1:]]
    assert ids == sorted(ids, reverse=True)
    assert set(world.findings.values()) <= set(ids)


def test_export_stops_at_its_cap_and_says_so(console):
    svc, world = console
    with svc.engine.connect() as conn:
        table = export.findings_table(conn, QueryParams("status=any&sort=id"), 3)
        whole = export.findings_table(conn, QueryParams("status=any&sort=id"), export.MAX_EXPORT_ROWS)
    assert table.capped and not whole.capped
    assert [r[0] for r in table.rows] == [r[0] for r in whole.rows[:3]]
    resp = csv_export.response(table)
    assert resp.headers["x-vigil-export-capped"] == "true" and resp.headers["x-vigil-export-rows"] == "3"
    assert re.fullmatch(
        r'attachment; filename="vigil-findings-first-3-\d{8}T\d{6}Z\.csv"', resp.headers["content-disposition"]
    )
    assert export.MAX_EXPORT_ROWS == 100_000


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
def test_a_cell_a_spreadsheet_would_run_is_quoted(start):
    assert csv_export.safe_cell(start + "cmd") == "'" + start + "cmd"
    assert csv_export.safe_cell("a" + start) == "a" + start


def test_formulas_from_clusters_come_out_as_text(console, client, hostile):
    cid, fid = hostile
    nodes = _csv(client.get(f"/clusters/{cid}/nodes.csv"))
    assert nodes[1][0] == "node-0000" and nodes[1][6] == "'" + HOSTILE_KERNEL
    findings = _csv(client.get("/findings.csv", params={"cluster": cid}))
    assert [(r[0], r[5]) for r in findings[1:]] == [(str(fid), "'" + HOSTILE_SUBJECT)]


LIST_PAGES = {
    "/clusters": "/clusters.csv",
    "/images": "/images.csv",
    "/workloads": "/workloads.csv",
    "/processes": "/processes.csv",
    "/findings": "/findings.csv",
}


def test_every_list_page_links_its_export_with_its_filters(console, client):
    svc, world = console
    assert set(export.LISTS) == set(LIST_PAGES)
    pages = {**LIST_PAGES, f"/clusters/{world.prod}": f"/clusters/{world.prod}/nodes.csv"}
    for path, target in pages.items():
        href = _export_href(client.get(path))
        assert href == target, path
        rows = _csv(client.get(href))
        assert len(rows) > 1, path
    # Filters and sort go along; the cursor and page size do not.
    href = _export_href(client.get("/images", params={"q": "app1", "sort": "-ref", "limit": 25}))
    assert href == "/images.csv?q=app1&sort=-ref"
    rows = _csv(client.get(href))
    assert [r[1].split("@")[0] for r in rows[1:]] == ["registry.example.com/team1/app1:1.1"]
    href = _export_href(client.get("/processes", params={"kind": "executable", "sort": "path"}))
    assert href == "/processes.csv?kind=executable&sort=path"
    assert [r[0] for r in _csv(client.get(href))[1:]] == ["/usr/bin/curl", "/usr/sbin/sshd"]
    href = _export_href(client.get("/workloads", params={"q": "statefulset", "cluster": world.prod}))
    assert [r[3] for r in _csv(client.get(href))[1:]] == ["statefulset-1"]
    href = _export_href(client.get(f"/clusters/{world.prod}", params={"sensor": "sensor_failed"}))
    assert [r[:2] for r in _csv(client.get(href))[1:]] == [["node-0001", "sensor_failed"]]


def test_pages_that_list_nothing_have_no_export(console, client):
    svc, world = console
    for path in ("/", "/settings", "/search?q=app", f"/findings/{world.findings['untrusted']}", "/images/1"):
        assert _export_href(client.get(path)) is None, path


def test_export_needs_a_signed_in_user_and_a_known_cluster(console, client):
    svc, _ = console
    r = httpx.get(f"{svc.url}/findings.csv", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login?next=%2Ffindings.csv"
    missing = client.get("/clusters/nope/nodes.csv")
    assert missing.status_code == 404 and "cluster &#39;nope&#39; does not exist" in missing.text
    bad = client.get("/findings.csv", params={"severity": "urgent"})
    assert bad.status_code == 400
    assert "severity: &#39;urgent&#39; is not one of" in bad.text
