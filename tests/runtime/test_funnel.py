"""The vulnerability funnel (all -> with a fix -> running) per image and per workload, through the API of the real
service on SQLite: two images built from busybox with PyPI distributions (dist-info with METADATA and RECORD),
pushed to a loopback docker-registry, scanned by the real scanner, matched against OSV advisories the test
writes; runtime batches posted as a sensor does (package loads and execs) and judged by the runtime analyzer.
Counts are distinct vulnerabilities (advisory x package), exact. The runtime labels of the package findings
say running for the loaded packages and not observed running, after the watch period, for a package of the
same image that was never loaded."""

from __future__ import annotations

import html as html_lib
import re
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from runtime_e2e import (
    analysis_idle,
    find_registry_binary,
    import_advisories,
    inventory_snapshot,
    new_container_ids,
    post_inventory,
    push_image,
    runtime_service,
    scan_and_match,
    wait_for,
    web_pod,
)

pytestmark = pytest.mark.skipif(find_registry_binary() is None, reason="docker-registry binary missing")
NODE = "node-funnel"
DP = "/usr/lib/python3/dist-packages"
SP = "/usr/local/lib/python3.11/site-packages"
CRITICAL = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"  # 9.8
HIGH = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H"  # 7.5
MEDIUM = "CVSS:3.1/AV:N/AC:H/PR:L/UI:N/S:U/C:L/I:L/A:N"  # 4.2
LOW = "CVSS:3.1/AV:N/AC:H/PR:H/UI:R/S:U/C:L/I:N/A:N"  # 2.0


def dist(base: str, name: str, version: str, top: str) -> dict[str, bytes]:
    info = f"{base}/{name}-{version}.dist-info"
    record = f"{top}/__init__.py,,\n{name}-{version}.dist-info/METADATA,,\n{name}-{version}.dist-info/RECORD,,\n"
    return {
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{info}/RECORD": record.encode(),
        f"{base}/{top}/__init__.py": f"# {name} {version}\n".encode(),
    }


def osv(id_: str, package: str, vector: str, fixed: str | None) -> dict:
    events: list[dict] = [{"introduced": "0"}] + ([{"fixed": fixed}] if fixed else [])
    return {
        "schema_version": "1.6.0",
        "id": id_,
        "modified": "2026-01-01T00:00:00Z",
        "published": "2026-01-01T00:00:00Z",
        "aliases": [],
        "summary": f"test advisory for {package}",
        "severity": [{"type": "CVSS_V3", "score": vector}],
        "affected": [
            {"package": {"ecosystem": "PyPI", "name": package}, "ranges": [{"type": "ECOSYSTEM", "events": events}]}
        ],
    }


ADVISORIES = [
    osv("PYSEC-FUNNEL-1", "jinja2", HIGH, "2.10.1"),
    osv("PYSEC-FUNNEL-2", "pyyaml", MEDIUM, "5.4"),
    osv("PYSEC-FUNNEL-3", "pyyaml", LOW, None),
    osv("PYSEC-FUNNEL-4", "six", CRITICAL, None),
]


def stage(count: int, critical: int = 0, high: int = 0, medium: int = 0, low: int = 0) -> dict:
    return {
        "count": count,
        "severities": {"critical": critical, "high": high, "medium": medium, "low": low, "unknown": 0},
    }


def container(cid: str, image, name: str = "app") -> dict:
    return {
        "name": name,
        "image": image.ref,
        "image_id": f"{image.ref.rsplit(':', 1)[0]}@{image.digest}",
        "image_digest": image.digest,
        "container_id": f"containerd://{cid}",
        "state": "running",
    }


def runtime_batch(cluster_id: str, pod: str, cid: str, image, loads: list[str]) -> dict:
    now = datetime.now(UTC).isoformat()
    sample = {"time": now, "pid": 40, "ppid": 1, "uid": 0, "comm": "python3", "exe": "/usr/bin/python3"}
    return {
        "batch_id": f"rt-{uuid.uuid4().hex[:16]}",
        "cluster_id": cluster_id,
        "node_name": NODE,
        "sensor_id": "s1",
        "seq": 0,
        "window_start": now,
        "window_end": now,
        "records": [
            {
                "container_id": f"containerd://{cid}",
                "pod_uid": pod,
                "kind": "executable",
                "path": "/bin/busybox",
                "sha256": image.sha256("/bin/busybox"),
                "first_seen": now,
                "last_seen": now,
                "count": 1,
                "samples": [
                    {"time": now, "pid": 30, "ppid": 1, "uid": 0, "gid": 0, "filename": "/bin/sleep", "argv": ["sleep"]}
                ],
            }
        ],
        "activities": [
            {
                "container_id": f"containerd://{cid}",
                "pod_uid": pod,
                "kind": "package_load",
                "target": target,
                "first_seen": now,
                "last_seen": now,
                "count": 1,
                "samples": [{**sample, "argv": ["python3", "-c", "import x"]}],
            }
            for target in loads
        ],
    }


def post_runtime(svc, credential: str, batch: dict) -> None:
    r = httpx.post(
        f"{svc.url}/api/v1/ingest/runtime", json=batch, headers={"Authorization": f"Bearer {credential}"}, timeout=30
    )
    assert r.status_code == 200, r.text


@pytest.fixture(scope="module")
def world(registry, tmp_path_factory):
    """Image A: Jinja2 2.10 (twice, at two paths), PyYAML 5.3, six 1.0; image B: Jinja2 2.10. Deployment web
    runs A and B in one pod and loads Jinja2 and six from A; Deployment api runs A and loads nothing."""
    base = tmp_path_factory.mktemp("funnel")
    a = push_image(
        registry,
        tag="funnel-a",
        extra={
            **dist(DP, "Jinja2", "2.10", "jinja2"),
            **dist(SP, "Jinja2", "2.10", "jinja2"),
            **dist(DP, "PyYAML", "5.3", "yaml"),
            **dist(DP, "six", "1.0", "six"),
        },
    )
    b = push_image(registry, tag="funnel-b", extra=dist(DP, "Jinja2", "2.10", "jinja2"))
    svc = runtime_service(base / "data", registry, watch_period=1.0)
    try:
        import_advisories(svc, ADVISORIES, base / "osv")
        cluster_id, credential = svc.register("funnel")
        web_uid, web_a = new_container_ids()
        web_b = uuid.uuid4().hex * 2
        api_uid, api_a = new_container_ids()
        snap = inventory_snapshot(cluster_id, NODE, pods=[web_pod(web_uid, NODE, web_a, a)])
        snap["pods"][0]["containers"].append(container(web_b, b, "sidecar"))
        snap["workloads"].append({"namespace": "shop", "kind": "Deployment", "name": "api", "owner_chain": []})
        api = web_pod(api_uid, NODE, api_a, a, name="api-5f6d7c-k2j4m")
        api["workload"] = {"kind": "Deployment", "name": "api"}
        snap["pods"].append(api)
        post_inventory(svc, credential, snap)
        scan_and_match(svc)
        post_runtime(
            svc,
            credential,
            runtime_batch(cluster_id, web_uid, web_a, a, [f"{DP}/jinja2/__init__.py", f"{DP}/six/__init__.py"]),
        )
        post_runtime(svc, credential, runtime_batch(cluster_id, web_uid, web_b, b, []))
        post_runtime(svc, credential, runtime_batch(cluster_id, api_uid, api_a, a, []))
        wait_for("the analysis to settle", lambda: analysis_idle(svc), 30)
        images = {i["repository"] + ":" + i["tag"]: i["id"] for i in svc.list_all("/api/v1/images", cluster=cluster_id)}
        yield svc, cluster_id, images["vigil/busybox:funnel-a"], images["vigil/busybox:funnel-b"]
    finally:
        svc.stop()


def test_running_vulnerabilities_are_the_loaded_packages(world) -> None:
    svc, cluster_id, _, _ = world
    running = svc.list_all("/api/v1/findings", cluster=cluster_id, type="running_vulnerability")
    assert sorted(f["subject"] for f in running) == [
        "Jinja2 2.10 (PYSEC-FUNNEL-1) running",
        "six 1.0 (PYSEC-FUNNEL-4) running",
    ]


def test_image_funnel_counts_distinct_vulnerabilities_exactly(world) -> None:
    svc, _, a, b = world
    got = svc.get(f"/api/v1/images/{a}/funnel")
    assert got.status_code == 200, got.text
    body = got.json()
    assert (body["image_id"], body["scan_status"]) == (a, "done")
    # Jinja2 2.10 at two paths is one vulnerability; PyYAML has two advisories, one of them without a fix.
    assert body["funnel"] == {
        "all": stage(4, critical=1, high=1, medium=1, low=1),
        "with_fix": stage(2, high=1, medium=1),
        "running": stage(1, high=1),
        "running_without_fix": stage(1, critical=1),
    }
    # B's Jinja2 never ran in B (web loaded A's): the same advisory of the same package, not running here.
    assert svc.get(f"/api/v1/images/{b}/funnel").json()["funnel"] == {
        "all": stage(1, high=1),
        "with_fix": stage(1, high=1),
        "running": stage(0),
        "running_without_fix": stage(0),
    }


def test_workload_funnel_over_its_images_and_its_own_loads(world) -> None:
    svc, cluster_id, a, b = world
    got = svc.get(f"/api/v1/workloads/{cluster_id}/shop/Deployment/web/funnel")
    assert got.status_code == 200, got.text
    web = got.json()
    # Jinja2's advisory is in both images: one vulnerability of the workload.
    assert web["funnel"] == {
        "all": stage(4, critical=1, high=1, medium=1, low=1),
        "with_fix": stage(2, high=1, medium=1),
        "running": stage(1, high=1),
        "running_without_fix": stage(1, critical=1),
    }
    assert [(i["image_id"], i["funnel"]["all"]["count"], i["funnel"]["running"]["count"]) for i in web["images"]] == [
        (a, 4, 1),
        (b, 1, 0),
    ]
    # Addressed by cluster name as well as id; api runs image A and loaded nothing.
    api = svc.get("/api/v1/workloads/funnel/shop/Deployment/api/funnel").json()
    assert (api["cluster_id"], [i["image_id"] for i in api["images"]]) == (cluster_id, [a])
    assert api["funnel"] == {
        "all": stage(4, critical=1, high=1, medium=1, low=1),
        "with_fix": stage(2, high=1, medium=1),
        "running": stage(0),
        "running_without_fix": stage(0),
    }


def test_not_observed_running_after_the_watch_period_beside_a_loaded_package(world) -> None:
    svc, cluster_id, _, _ = world

    def labels() -> list[tuple[str, str, str, str]] | None:
        found = svc.list_all("/api/v1/findings", cluster=cluster_id, type="vulnerable_package")
        got = sorted(
            (
                f["workload"]["name"],
                f["evidence"]["package"]["name"] + " " + f["evidence"]["vulnerability"],
                "site-packages" if "/site-packages/" in f["evidence"]["package"]["found_in"] else "dist-packages",
                f["runtime"]["state"],
            )
            for f in found
        )
        # Settled when every label is final: a finding labelled before its container's first record was
        # stored is "unwatched" for a moment, then watching, then not observed running.
        return got if got and all(g[3] in ("running", "not_observed_running") for g in got) else None

    got = wait_for("the watch period to pass", labels, timeout=20)
    assert [g[1:] for g in got if g[0] == "web"] == [
        ("Jinja2 PYSEC-FUNNEL-1", "dist-packages", "not_observed_running"),  # image B's: B never loaded it
        ("Jinja2 PYSEC-FUNNEL-1", "dist-packages", "running"),
        ("Jinja2 PYSEC-FUNNEL-1", "site-packages", "running"),  # the other copy: same package and advisory
        ("PyYAML PYSEC-FUNNEL-2", "dist-packages", "not_observed_running"),
        ("PyYAML PYSEC-FUNNEL-3", "dist-packages", "not_observed_running"),
        ("six PYSEC-FUNNEL-4", "dist-packages", "running"),
    ]
    assert [g[1:] for g in got if g[0] == "api"] == [
        ("Jinja2 PYSEC-FUNNEL-1", "dist-packages", "not_observed_running"),
        ("Jinja2 PYSEC-FUNNEL-1", "site-packages", "not_observed_running"),
        ("PyYAML PYSEC-FUNNEL-2", "dist-packages", "not_observed_running"),
        ("PyYAML PYSEC-FUNNEL-3", "dist-packages", "not_observed_running"),
        ("six PYSEC-FUNNEL-4", "dist-packages", "not_observed_running"),
    ]


def test_funnel_errors_and_access(world) -> None:
    svc, cluster_id, a, _ = world
    assert svc.get("/api/v1/images/999999/funnel").status_code == 404
    missing = svc.get(f"/api/v1/workloads/{cluster_id}/shop/Deployment/nope/funnel")
    assert (missing.status_code, missing.json()["detail"]) == (
        404,
        f"workload Deployment/nope in namespace shop of cluster {cluster_id} does not exist",
    )
    assert svc.get("/api/v1/workloads/no-such-cluster/shop/Deployment/web/funnel").status_code == 404
    viewer = svc.token("viewer", "funnel-viewer")
    r = httpx.get(f"{svc.url}/api/v1/images/{a}/funnel", headers={"Authorization": f"Bearer {viewer}"})
    assert r.status_code == 200 and r.json()["funnel"]["all"]["count"] == 4
    assert httpx.get(f"{svc.url}/api/v1/images/{a}/funnel").status_code == 401
    doc = svc.get("/api/openapi.json").json()
    ok = doc["paths"]["/api/v1/images/{image_id}/funnel"]["get"]["responses"]["200"]
    assert ok["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ImageFunnel"}
    wl = doc["paths"]["/api/v1/workloads/{cluster_id}/{namespace}/{kind}/{name}/funnel"]["get"]["responses"]["200"]
    assert wl["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/WorkloadFunnel"}


# -- the console ---------------------------------------------------------------------------------


def signed_in(svc, token: str) -> httpx.Client:
    client = httpx.Client(base_url=svc.url, follow_redirects=False, timeout=60)
    login = client.get("/login")
    match = re.search(r'name="csrf" value="([^"]+)"', login.text)
    assert match, "no CSRF field on the login page"
    resp = client.post("/login", data={"token": token, "csrf": match.group(1), "next": "/"})
    assert resp.status_code == 303, resp.text
    return client


def funnel_rows(page: str, table: str) -> dict[str, tuple[str, str, str | None]]:
    """stage -> (count, severities as shown, the count's link) of the funnel table ``table``."""
    body = re.search(rf'<table id="{table}" class="funnel">(.*?)</table>', page, re.S)
    assert body, f"no table {table} on the page"
    out = {}
    for stage, count, levels in re.findall(
        r'<tr data-stage="(\w+)"><td[^>]*>.*?</td><td class="num">(.*?)</td><td>(.*?)</td></tr>', body.group(1)
    ):
        link = re.search(r'href="([^"]+)"', count)
        text = lambda s: html_lib.unescape(re.sub(r"<[^>]+>", "", s)).split()  # noqa: E731
        out[stage] = (" ".join(text(count)), " ".join(text(levels)), html_lib.unescape(link.group(1)) if link else None)
    return out


def listed_findings(client: httpx.Client, href: str) -> list[str]:
    page = client.get(href)
    assert page.status_code == 200, page.text
    subjects = re.findall(r'<td class="subject"><a href="/findings/\d+">(.*?)</a></td>', page.text)
    return sorted(html_lib.unescape(s) for s in subjects)


def test_console_image_and_workload_pages_show_the_funnel_and_running_links_to_the_findings(world) -> None:
    svc, cluster_id, a, b = world
    client = signed_in(svc, svc.token("viewer", "funnel-console"))
    image = client.get(f"/images/{a}")
    assert image.status_code == 200, image.text
    rows = funnel_rows(image.text, "image-funnel")
    running_href = f"/findings?type=running_vulnerability&image={a}"
    assert rows == {
        "all": ("4", "1C 1H 1M 1L", None),
        "with_fix": ("2", "1H 1M", None),
        "running": ("1", "1H", running_href),
        "running_without_fix": ("1", "1C", running_href),
    }
    assert listed_findings(client, running_href) == [
        "Jinja2 2.10 (PYSEC-FUNNEL-1) running",
        "six 1.0 (PYSEC-FUNNEL-4) running",
    ]
    assert funnel_rows(client.get(f"/images/{b}").text, "image-funnel")["running"] == ("0", "—", None)

    web = client.get(f"/workloads/{cluster_id}/shop/Deployment/web")
    assert web.status_code == 200, web.text
    in_web = f"/findings?type=running_vulnerability&cluster={cluster_id}&namespace=shop&workload=Deployment%2Fweb"
    assert funnel_rows(web.text, "workload-funnel") == {
        "all": ("4", "1C 1H 1M 1L", None),
        "with_fix": ("2", "1H 1M", None),
        "running": ("1", "1H", in_web),
        "running_without_fix": ("1", "1C", in_web),
    }
    per_image = re.findall(
        r'<tr data-image-id="(\d+)">.*?<td class="num">(\d+)</td><td class="num">(\d+)</td>'
        r'<td class="num">(.*?)</td><td class="num">(.*?)</td></tr>',
        web.text,
    )
    assert [
        (int(i), known, fixed, re.sub(r"<[^>]+>", "", r), re.sub(r"<[^>]+>", "", n))
        for i, known, fixed, r, n in per_image
    ] == [
        (a, "4", "2", "1", "1"),
        (b, "1", "1", "0", "0"),
    ]
    assert listed_findings(client, in_web) == [
        "Jinja2 2.10 (PYSEC-FUNNEL-1) running",
        "six 1.0 (PYSEC-FUNNEL-4) running",
    ]
    # The workload filter narrows to that workload: api ran nothing, so its page links nowhere and its filter lists
    # nothing.
    api = client.get(f"/workloads/{cluster_id}/shop/Deployment/api")
    assert funnel_rows(api.text, "workload-funnel")["running"] == ("0", "—", None)
    in_api = in_web.replace("Deployment%2Fweb", "Deployment%2Fapi")
    assert listed_findings(client, in_api) == []
    bad = client.get("/findings?type=running_vulnerability&workload=Deployment%2Fweb")
    assert (
        bad.status_code == 400
        and "workload: &#39;Deployment/web&#39; must be &lt;kind&gt;/&lt;name&gt;, with cluster and namespace given"
        in bad.text
    )
