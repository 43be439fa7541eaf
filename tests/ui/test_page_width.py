"""Every console page fits a 1,280 px window: no horizontal scrolling of the page, and no table or panel
that hides columns behind its own scroll bar (a cut-off STATUS column is as unreadable as a wide page).

The pages come from the console's own routers, so a new page is measured without editing this file;
a page whose path takes a parameter needs seeded values in ``PATH_VALUES``.
"""

from __future__ import annotations

import re
from urllib.parse import quote

import httpx
import orjson
import pytest
from fastapi.routing import APIRoute
from sqlalchemy import select

from vigil.devtools.inventory import synthetic_snapshot
from vigil.service.store.findings import Observation, observe
from vigil.service.store.schema import images
from vigil.service.ui.pages import ROUTERS

from .conftest import sign_in
from .seed import World

WIDTH = 1280
# Routes that answer GET but are not pages a person looks at.
NOT_PAGES = {"/ui/events"}  # the live-update event stream
# Files for download (CSV exports) answer GET too; a path ending in a file name is not a page.
DOWNLOAD = re.compile(r"\.[a-z]+$")
# Pages whose content comes from their query: measured with queries that find the long names too.
QUERIES = {"/search": ["q=opentelemetry", "q=sha256:9f86", "q=CVE-2024-0727"]}
# Pages for people not signed in; opening the sign-in page starts a new session, so it is measured apart.
SIGNED_OUT_PAGES = {"/login"}

# Names as long as real ones: a registry with a deep path, a repository named after its chart, pinned by digest.
LONG_REF = (
    "harbor.platform-engineering.internal.example.com/observability-platform/"
    "opentelemetry-collector-contrib-distribution:0.96.0-debian-12-r3"
)
LONG_DIGEST = "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
LONG_WORKLOAD = "opentelemetry-collector-contrib-distribution-gateway"


def _long_names_cluster(svc) -> str:
    """A cluster whose images, workloads and findings carry production-length names and digests."""
    cluster_id, credential = svc.register("platform-observability-eu-west-1-production")
    body = orjson.dumps(
        synthetic_snapshot(cluster_id, nodes=1, pods=5, images=1, seed=3, batch_id="snap-long").model_dump(mode="json")
    ).decode()
    # One image, one workload: rename them everywhere they occur (refs, image ids, owner names, pod names).
    body = body.replace("registry.example.com/team0/app0:1.0", LONG_REF).replace(
        "registry.example.com/team0/app0", LONG_REF.rsplit(":", 1)[0]
    )
    body = body.replace("deployment-0", LONG_WORKLOAD)
    r = httpx.post(
        f"{svc.url}/api/v1/ingest/inventory",
        content=body,
        headers={"Authorization": f"Bearer {credential}", "Content-Type": "application/json"},
        timeout=60,
    )
    assert r.status_code == 200, r.text
    return cluster_id


@pytest.fixture(scope="module")
def wide_world(console):
    svc, w = console
    long_cluster = _long_names_cluster(svc)
    with svc.engine.begin() as conn:
        image_pk = next(pk for ref, pk in _pks(conn).items() if ref.startswith(LONG_REF.rsplit(":", 1)[0]))
        wl = dict(cluster_id=long_cluster, namespace="ns-0", workload_kind="Deployment", workload_name=LONG_WORKLOAD)
        long_ids = {}
        for label, kw in {
            "long_mismatch": dict(
                type="digest_mismatch",
                severity="critical",
                subject=f"{LONG_REF}@{LONG_DIGEST}",
                evidence={
                    "runtime_digest": LONG_DIGEST,
                    "registry_digest": "sha256:" + "0c" * 32,
                    "repository": LONG_REF.split("/", 1)[1].rsplit(":", 1)[0],
                    "image_id": f"{LONG_REF.rsplit(':', 1)[0]}@{LONG_DIGEST}",
                },
            ),
            "long_vuln": dict(
                type="vulnerable_package",
                severity="high",
                subject=f"ns-0/Deployment/{LONG_WORKLOAD}: libcrypto3-openssl-fips-provider 3.0.13-r0 (CVE-2024-0727)",
                evidence={
                    "package": {"type": "apk", "name": "libcrypto3-openssl-fips-provider", "version": "3.0.13-r0"},
                    "installed_version": "3.0.13-r0",
                    "vulnerability": "CVE-2024-0727",
                    "fixed_versions": ["3.0.13-r1"],
                    "path": "/usr/lib/ossl-modules/" + "fips-provider-" * 8 + "module.so",
                },
            ),
        }.items():
            long_ids[label], _ = observe(conn, Observation(dedup_key=label, image_pk=image_pk, **wl, **kw))
    return svc, w, long_cluster, image_pk, long_ids


def _pks(conn) -> dict[str, int]:
    return {f"{r.registry}/{r.repository}:{r.tag}": r.id for r in conn.execute(select(images))}


def path_values(w: World, long_cluster: str, long_image: int, long_findings: dict[str, int]) -> dict:
    """Seeded values for each parameterised path: every row of each kind the seed made, long names included."""
    workloads = [
        (w.prod, "ns-0", "Deployment", "deployment-0"),
        (w.prod, "ns-1", "StatefulSet", "statefulset-1"),
        (w.staging, "ns-0", "Deployment", "deployment-0"),
        (long_cluster, "ns-0", "Deployment", LONG_WORKLOAD),
    ]
    return {
        "/clusters/{cluster_id}": [{"cluster_id": c} for c in (w.prod, w.staging, long_cluster)],
        "/images/{image_id}": [{"image_id": pk} for pk in sorted({*w.image_pk.values(), long_image})],
        "/findings/{finding_id}": [{"finding_id": i} for i in sorted({*w.findings.values(), *long_findings.values()})],
        "/workloads/{cluster_id}/{namespace}/{kind}/{name}": [
            dict(zip(("cluster_id", "namespace", "kind", "name"), k, strict=True)) for k in workloads
        ],
    }


def console_pages() -> list[str]:
    """The path of every page the console serves to a browser (GET routes)."""
    out = []
    for router in ROUTERS:
        for route in router.routes:
            if not isinstance(route, APIRoute) or "GET" not in route.methods:
                continue
            if route.path not in NOT_PAGES and not DOWNLOAD.search(route.path):
                out.append(route.path)
    return out


def urls(values: dict) -> list[str]:
    out = []
    for path in console_pages():
        if "{" not in path:
            out.append(path)
            out.extend(f"{path}?{query}" for query in QUERIES.get(path, ()))
            continue
        assert path in values, f"console page {path} takes a parameter: give it seeded values in path_values()"
        for v in values[path]:
            out.append(re.sub(r"\{(\w+)\}", lambda m, v=v: quote(str(v[m.group(1)]), safe=""), path))
    return out


# Elements whose content is wider than their box and that scroll it sideways: the page's own width
# stays in bounds while the reader still has to scroll to find a column.
HIDDEN_OVERFLOW = """() => {
  const out = [];
  for (const el of document.querySelectorAll('body *')) {
    const s = getComputedStyle(el);
    if (!['auto', 'scroll', 'hidden', 'clip'].includes(s.overflowX)) continue;
    if (el.scrollWidth > el.clientWidth + 1) {
      const name = el.tagName.toLowerCase() + (el.id ? '#' + el.id : '')
        + [...el.classList].map(c => '.' + c).join('');
      out.push(name + ' ' + el.scrollWidth + '>' + el.clientWidth);
    }
  }
  return out;
}"""


def measure(page, url: str) -> tuple[int, list[str]]:
    response = page.goto(url)
    assert response is not None and response.status == 200, f"{url}: HTTP {response and response.status}"
    assert page.url == url, f"{url} redirected to {page.url}"
    return page.evaluate("document.documentElement.scrollWidth"), page.evaluate(HIDDEN_OVERFLOW)


def test_every_console_page_fits_1280_px(browser, wide_world):
    svc, w, long_cluster, long_image, long_findings = wide_world
    visited = urls(path_values(w, long_cluster, long_image, long_findings))
    signed_out = browser.new_context(viewport={"width": WIDTH, "height": 800})
    ctx, page = sign_in(browser, svc.url, svc.admin_token)
    page.set_viewport_size({"width": WIDTH, "height": 800})
    wide, hidden = {}, {}
    for url in visited:
        width, scrolling = measure(signed_out.new_page() if url in SIGNED_OUT_PAGES else page, svc.url + url)
        if width > WIDTH:
            wide[url] = width
        if scrolling:
            hidden[url] = scrolling
    signed_out.close()
    ctx.close()
    assert len(visited) > 20  # every list page and every seeded detail page
    assert wide == {}, f"pages wider than {WIDTH} px (page: scroll width): {wide}"
    assert hidden == {}, f"content scrolled sideways inside an element (page: elements): {hidden}"


def test_top_bar_spans_the_window_and_workload_findings_show_status(browser, wide_world):
    svc, _w, long_cluster, _image, _findings = wide_world
    ctx, page = sign_in(browser, svc.url, svc.admin_token)
    page.set_viewport_size({"width": WIDTH, "height": 800})
    workload = f"/workloads/{long_cluster}/ns-0/Deployment/{LONG_WORKLOAD}"
    for url in ("/findings", "/processes", "/images", workload):
        page.goto(svc.url + url)
        bar = page.locator("header.top").bounding_box()
        assert bar is not None and (bar["x"], bar["width"]) == (0, WIDTH), f"{url}: top bar {bar}"
    # The workload's findings show their STATUS column inside the panel, not behind its scroll bar.
    panel = page.locator("section.panel", has=page.locator("#workload-findings")).bounding_box()
    status = page.locator("#workload-findings th", has_text=re.compile(r"^status$", re.I)).bounding_box()
    assert panel is not None and status is not None
    assert status["x"] + status["width"] <= panel["x"] + panel["width"]
    ctx.close()


def test_digests_wrap_inside_their_column(browser, wide_world):
    svc, _w, _cluster, _image, long_findings = wide_world
    ctx, page = sign_in(browser, svc.url, svc.admin_token)
    page.set_viewport_size({"width": WIDTH, "height": 800})
    page.goto(f"{svc.url}/findings")
    cell = page.locator(f"#findings-table tr[data-finding-id='{long_findings['long_mismatch']}'] td.subject")
    assert LONG_DIGEST in cell.inner_text()
    box = cell.bounding_box()
    assert box is not None and box["height"] > 40  # the subject broke over lines rather than widening the table
    assert page.evaluate("document.documentElement.scrollWidth") <= WIDTH
    ctx.close()
