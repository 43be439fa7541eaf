"""The web console in a real browser (Debian chromium via Playwright) against a live, seeded service."""

from __future__ import annotations

import re

import httpx
import pytest

from vigil.service.store.findings import Observation, observe
from vigil.service.store.tokens import revoke_token

from .conftest import sign_in
from .seed import REGISTRY_DIGEST, RUNTIME_DIGEST


def ids_in(page, selector: str = "#findings-table tbody tr") -> set[int]:
    return {int(x) for x in page.locator(selector).evaluate_all("rows => rows.map(r => r.dataset.findingId)")}


def texts(page, selector: str) -> list[str]:
    return [t.strip() for t in page.locator(selector).all_inner_texts()]


def test_sign_in_rejects_a_wrong_token_and_admits_a_right_one(browser, console, output_dir):
    svc, _ = console
    ctx = browser.new_context()
    page = ctx.new_page()
    page.goto(f"{svc.url}/findings")
    assert page.url.startswith(f"{svc.url}/login?next=%2Ffindings")
    page.fill("#token", "vgl_u_not-a-real-token")
    page.click("button[type=submit]")
    assert page.locator("#login-error").inner_text() == "Sign-in refused: token is not known."
    page.screenshot(path=str(output_dir / "login-refused.png"))
    page.fill("#token", svc.admin_token)
    page.click("button[type=submit]")
    page.wait_for_url(f"{svc.url}/findings")
    assert page.locator("#whoami").inner_text().startswith("test-admin")
    cookie = next(c for c in ctx.cookies() if c["name"] == "vigil_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and svc.admin_token not in cookie["value"]
    ctx.close()


def test_cluster_and_registration_tokens_cannot_sign_in(browser, console):
    svc, _ = console
    page = browser.new_page()
    page.goto(f"{svc.url}/login")
    page.fill("#token", svc.registration_token())
    page.click("button[type=submit]")
    assert page.locator("#login-error").inner_text() == (
        "Sign-in refused: a registration token cannot sign in to the console; use an admin or viewer token."
    )
    page.close()


def test_overview_shows_counts_chart_risky_and_clusters(admin_page, console, output_dir):
    svc, w = console
    page = admin_page
    assert page.locator("#open-total").inner_text() == "9"
    sev = {
        s: page.locator(f"#severity-cards [data-severity={s}]").inner_text()
        for s in ("critical", "high", "medium", "low")
    }
    assert sev == {"critical": "2", "high": "4", "medium": "2", "low": "1"}
    assert texts(page, "#findings-matrix tbody tr td:first-child") == [
        "untrusted_registry",
        "digest_mismatch",
        "tag_moved",
        "vulnerable_package",
        "malicious_package",
        "running_vulnerability",
        "suspicious_exec",
    ]
    # The chart's last point is today's open count, from the findings' history.
    assert page.locator("#open-chart circle").last.get_attribute("data-count") == "9"
    assert page.locator("#open-chart circle").count() == 14
    # Ranked by rolled-up risk (docs/risk.md), not by severity counts: staging's deployment-0 has
    # one medium finding, seen at runtime in an exposed pod (20 + 25 + 25 = 70), statefulset-1 one
    # high package finding not seen running (30 + 0 + 5 + 9 = 44).
    rows = [[c.strip() for c in r.split("\t")] for r in page.locator("#risky-workloads tbody tr").all_inner_texts()]
    assert [r[:3] for r in rows] == [
        ["ns-0/Deployment/deployment-0", "prod", "100.0"],
        ["ns-0/Deployment/deployment-0", "staging", "70.0"],
        ["ns-1/StatefulSet/statefulset-1", "prod", "44.0"],
    ]
    assert rows[0][3] == "2C 3H (5)" and rows[1][3] == "1M (1)" and rows[2][3] == "1H (1)"
    images = [[c.strip() for c in r.split("\t")] for r in page.locator("#risky-images tbody tr").all_inner_texts()]
    assert images == [
        ["registry.example.com/team0/app0:1.0", "3", "100.0", "1C 1H 1M", "5"],
        ["registry.example.com/team1/app1:1.1", "3", "64.0", "scan pending", "1"],
        ["registry.example.com/team2/app2:1.2", "1", "25.0", "scan failed", "1"],
    ]
    assert texts(page, "#overview-clusters tbody tr td:first-child") == ["prod", "staging"]
    prod = page.locator("#overview-clusters tr[data-cluster=prod]").inner_text()
    assert "monitored: 1" in prod and "monitored_with_sensor: 1" in prod and "sensor_failed: 1" in prod
    page.screenshot(path=str(output_dir / "overview.png"), full_page=True)


def test_clusters_and_nodes_with_sensor_status(admin_page, console):
    svc, w = console
    page = admin_page
    page.goto(f"{svc.url}/clusters")
    assert texts(page, "#clusters-table tbody tr td:first-child a") == ["prod", "staging"]
    row = page.locator("#clusters-table tr[data-cluster=prod]").inner_text()
    assert "never_seen" in row  # no controller heartbeat was sent, only inventory
    page.click("#clusters-table tr[data-cluster=prod] a >> nth=0")
    status = {
        r.get_attribute("data-node"): r.locator("td").nth(1).inner_text().split("\n")[0]
        for r in page.locator("#nodes-table tbody tr").all()
    }
    assert status == {"node-0000": "monitored_with_sensor", "node-0001": "sensor_failed", "node-0002": "monitored"}
    page.select_option("select[name=sensor]", "sensor_failed")
    page.wait_for_url(re.compile(r"sensor=sensor_failed"))
    assert [r.get_attribute("data-node") for r in page.locator("#nodes-table tbody tr").all()] == ["node-0001"]
    assert "BPF load failed" in page.locator("#nodes-table").inner_text()


def test_images_list_filters_and_sorts(admin_page, console, output_dir):
    svc, w = console
    page = admin_page
    page.goto(f"{svc.url}/images")
    shown = {
        int(x) for x in page.locator("#images-table tbody tr").evaluate_all("rows => rows.map(r => r.dataset.imageId)")
    }
    assert shown == set(w.image_pk.values())
    assert page.locator(".pager .total").inner_text() == f"{len(w.image_pk)} images"
    page.screenshot(path=str(output_dir / "images.png"), full_page=True)
    app0 = w.image_pk["registry.example.com/team0/app0:1.0"]
    row = page.locator(f"#images-table tr[data-image-id='{app0}']").inner_text()
    assert "digest_mismatch" in row
    page.goto(f"{svc.url}/images?finding=untrusted_registry")
    assert [
        int(x) for x in page.locator("#images-table tbody tr").evaluate_all("rows => rows.map(r => r.dataset.imageId)")
    ] == [w.image_pk["registry.example.com/team1/app1:1.1"]]
    page.goto(f"{svc.url}/images?cluster={w.staging}")
    staging_refs = {c.image for p in w.staging_snapshot.pods for c in p.containers}
    shown = {
        int(x) for x in page.locator("#images-table tbody tr").evaluate_all("rows => rows.map(r => r.dataset.imageId)")
    }
    assert shown == {w.image_pk[r] for r in staging_refs}


def test_workloads_list_and_detail(admin_page, console):
    svc, w = console
    page = admin_page
    page.goto(f"{svc.url}/workloads?cluster={w.prod}")
    expected = sorted(f"{x.namespace}/{x.kind}/{x.name}" for x in w.snapshot.workloads)
    assert sorted(r.get_attribute("data-workload") for r in page.locator("#workloads-table tbody tr").all()) == expected
    page.goto(f"{svc.url}/workloads?kind=StatefulSet")
    kinds = texts(page, "#workloads-table tbody tr td:nth-child(4)")
    assert kinds and set(kinds) == {"StatefulSet"}
    page.goto(f"{svc.url}/workloads/{w.prod}/ns-0/Deployment/deployment-0")
    pods = {p.name for p in w.snapshot.pods if p.workload.name == "deployment-0"}
    assert {r.get_attribute("data-pod") for r in page.locator("#workload-pods tbody tr").all()} == pods
    assert ids_in(page, "#workload-findings tbody tr") == {
        w.findings[k] for k in ("digest_mismatch", "untrusted", "malicious", "running_vuln", "vuln_d0", "resolved")
    }
    assert "/usr/bin/curl" in page.locator(".processes").inner_text()


def test_processes_grouped_by_executable(admin_page, console):
    svc, w = console
    page = admin_page
    page.goto(f"{svc.url}/processes")
    # Newest first: curl was last seen a minute ago, sshd two.
    assert [r.get_attribute("data-path") for r in page.locator("#processes-table tbody tr").all()] == [
        "/usr/bin/curl",
        "/usr/sbin/sshd",
    ]
    rows = {r.get_attribute("data-path"): r.inner_text() for r in page.locator("#processes-table tbody tr").all()}
    assert set(rows) == {"/usr/bin/curl", "/usr/sbin/sshd"}
    assert (
        "curl -s http://example.com" in rows["/usr/bin/curl"]
        and "ns-0/Deployment/deployment-0" in rows["/usr/bin/curl"]
    )
    # Sensors report execs, not exits: curl ran a minute ago, and nothing says it still runs.
    assert re.search(r"last seen \d+m ago", rows["/usr/bin/curl"]) and "running" not in rows["/usr/bin/curl"]
    assert "prod host" in rows["/usr/sbin/sshd"]
    page.goto(f"{svc.url}/processes?q=curl")
    assert [r.get_attribute("data-path") for r in page.locator("#processes-table tbody tr").all()] == ["/usr/bin/curl"]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (
            "",
            {
                "digest_mismatch",
                "untrusted",
                "tag_moved",
                "malicious",
                "running_vuln",
                "vuln_d0",
                "vuln_s1",
                "staging_vuln",
                "staging_exec",
            },
        ),
        ("severity=critical", {"digest_mismatch", "malicious"}),
        ("status=resolved", {"resolved"}),
        ("status=any&type=runtime_drift", {"resolved"}),
        ("namespace=ns-0&severity=low", {"staging_vuln"}),
        ("q=openssl", {"running_vuln", "vuln_d0", "vuln_s1"}),
    ],
)
def test_findings_filters_narrow_the_list(admin_page, console, query, expected):
    svc, w = console
    admin_page.goto(f"{svc.url}/findings?{query}")
    assert ids_in(admin_page) == {w.findings[k] for k in expected}


def test_running_only_keeps_findings_whose_image_runs_now(admin_page, console):
    svc, w = console
    running_refs = {c.image for p in w.snapshot.pods for c in p.containers if c.state == "running"}
    running_pks = {w.image_pk[r] for r in running_refs}
    image_of = {
        "digest_mismatch": "registry.example.com/team0/app0:1.0",
        "untrusted": "registry.example.com/team1/app1:1.1",
        "tag_moved": "registry.example.com/team2/app2:1.2",
    }
    expected = {"running_vuln", "malicious", "vuln_d0", "vuln_s1", "staging_exec"} | {
        k for k, ref in image_of.items() if w.image_pk[ref] in running_pks
    }
    admin_page.goto(f"{svc.url}/findings?running=1")
    assert ids_in(admin_page) == {w.findings[k] for k in expected}
    # Terminated init containers do not count as running.
    assert w.container.state == "running"


def test_quick_filters_and_cluster_filter(admin_page, console, output_dir):
    svc, w = console
    page = admin_page
    page.goto(f"{svc.url}/findings")
    page.screenshot(path=str(output_dir / "findings.png"), full_page=True)
    for label, expected in (
        ("Untrusted registry", {"untrusted"}),
        ("Integrity violation", {"digest_mismatch", "tag_moved"}),
        ("Running vulnerabilities", {"running_vuln"}),
        ("Malicious", {"malicious"}),
    ):
        page.click(f"#quick-filters a:text-is('{label}')")
        page.wait_for_load_state()
        assert ids_in(page) == {w.findings[k] for k in expected}, label
        assert page.locator("#quick-filters a.active").inner_text() == label
    page.goto(f"{svc.url}/findings")
    page.select_option("#findings-filters select[name=cluster]", w.staging)
    page.wait_for_url(re.compile(f"cluster={w.staging}"))
    assert ids_in(page) == {w.findings["staging_vuln"], w.findings["staging_exec"]}


def test_integrity_violation_detail_shows_both_digests(admin_page, console, output_dir):
    svc, w = console
    page = admin_page
    fid = w.findings["digest_mismatch"]
    page.goto(f"{svc.url}/findings/{fid}")
    assert page.locator(f"#runtime-digest-{fid}").inner_text() == RUNTIME_DIGEST
    assert page.locator(f"#registry-digest-{fid}").inner_text() == REGISTRY_DIGEST
    assert page.locator(f"#evidence button[data-copy='{RUNTIME_DIGEST}']").count() == 1
    assert "team0/app0" in page.locator("#evidence").inner_text()
    page.screenshot(path=str(output_dir / "finding-digest-mismatch.png"), full_page=True)
    page.goto(f"{svc.url}/images/{w.image_pk['registry.example.com/team0/app0:1.0']}")
    assert page.locator(f"#integrity #runtime-digest-{fid}").inner_text() == RUNTIME_DIGEST
    assert page.locator(f"#integrity #registry-digest-{fid}").inner_text() == REGISTRY_DIGEST
    page.screenshot(path=str(output_dir / "image-detail.png"), full_page=True)


def test_new_finding_appears_live(admin_page, console):
    svc, w = console
    page = admin_page
    page.goto(f"{svc.url}/findings?type=suspicious_exec&q=kubectl")
    page.wait_for_selector("[data-live-status][data-state=open]")
    assert page.locator("#no-findings").is_visible()
    with svc.engine.begin() as conn:
        fid, change = observe(
            conn,
            Observation(
                dedup_key="live-1",
                type="suspicious_exec",
                severity="high",
                subject="sh attached via kubectl exec",
                evidence={"argv": ["sh"]},
                cluster_id=w.prod,
            ),
        )
    assert change == "opened"
    page.wait_for_selector(f"#findings-table tr[data-finding-id='{fid}']", timeout=10_000)
    assert (
        page.locator(f"#findings-table tr[data-finding-id='{fid}'] td.subject").inner_text()
        == "sh attached via kubectl exec"
    )
    assert page.url.endswith("/findings?type=suspicious_exec&q=kubectl")


def test_admin_suppresses_with_reason_and_history_records_it(admin_page, console):
    svc, w = console
    page = admin_page
    fid = w.findings["tag_moved"]
    page.goto(f"{svc.url}/findings/{fid}")
    page.select_option("#change-status select[name=status]", "suppressed")
    page.fill("#change-status textarea[name=reason]", "accepted: <b>rollout</b> in progress")
    page.click("#change-status button[type=submit]")
    page.wait_for_url(f"{svc.url}/findings/{fid}")
    assert page.locator("#finding-status").inner_text() == "suppressed — accepted: <b>rollout</b> in progress"
    last = page.locator("#history-table tbody tr").last.inner_text().split("\t")
    assert last[1:] == ["open", "suppressed", "medium", "accepted: <b>rollout</b> in progress", "console:test-admin"]
    page.goto(f"{svc.url}/findings")
    assert fid not in ids_in(page)


def test_viewer_has_no_status_form_and_a_forged_post_is_refused(viewer_page, console):
    svc, w = console
    page = viewer_page
    fid = w.findings["untrusted"]
    page.goto(f"{svc.url}/findings/{fid}")
    assert page.locator("#change-status").count() == 0
    csrf = page.locator("header form input[name=csrf]").get_attribute("value")
    resp = page.request.post(
        f"{svc.url}/findings/{fid}/status", form={"csrf": csrf, "status": "suppressed", "reason": "x"}, max_redirects=0
    )
    assert resp.status == 403
    assert "this needs an admin token" in resp.text()
    page.goto(f"{svc.url}/findings/{fid}")
    assert page.locator("#finding-status").inner_text() == "open"
    page.goto(f"{svc.url}/settings")
    assert page.locator("#create-token").count() == 0 and page.locator("#tokens-table").count() == 0


def test_forged_post_without_csrf_token_is_refused(admin_page, console):
    svc, w = console
    page = admin_page
    fid = w.findings["staging_vuln"]
    resp = page.request.post(
        f"{svc.url}/findings/{fid}/status", form={"status": "resolved", "reason": "forged"}, max_redirects=0
    )
    assert resp.status == 403 and "CSRF" in resp.text()
    resp = page.request.post(
        f"{svc.url}/findings/{fid}/status",
        form={"csrf": "guess", "status": "resolved", "reason": "forged"},
        max_redirects=0,
    )
    assert resp.status == 403
    resp = page.request.post(f"{svc.url}/settings/tokens", form={"name": "evil", "role": "admin"}, max_redirects=0)
    assert resp.status == 403
    page.goto(f"{svc.url}/findings/{fid}")
    assert page.locator("#finding-status").inner_text() == "open"


def test_admin_creates_a_viewer_token_that_signs_in_and_revocation_ends_its_session(
    browser, admin_page, console, output_dir
):
    svc, _ = console
    page = admin_page
    page.goto(f"{svc.url}/settings")
    page.fill("#create-token input[name=name]", "auditor")
    page.select_option("#create-token select[name=role]", "viewer")
    page.click("#create-token button[type=submit]")
    secret = page.locator("#issued-secret").inner_text()
    assert secret.startswith("vgl_u_")
    page.screenshot(path=str(output_dir / "settings.png"), full_page=True)
    ctx, vpage = sign_in(browser, svc.url, secret)
    assert vpage.locator("#whoami").inner_text().startswith("auditor")
    token_id = next(
        r.get_attribute("data-token-id")
        for r in page.locator("#tokens-table tbody tr").all()
        if "auditor" in r.inner_text()
    )
    with svc.engine.begin() as conn:
        assert revoke_token(conn, token_id)
    vpage.goto(f"{svc.url}/findings")
    assert vpage.url.startswith(f"{svc.url}/login")
    ctx.close()


def test_security_headers_and_escaping(console):
    svc, _ = console
    r = httpx.get(f"{svc.url}/login")
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "same-origin"
    assert (
        "script-src 'self'" in r.headers["content-security-policy"]
        and "unsafe-inline" not in r.headers["content-security-policy"]
    )
    assert "<script>" not in r.text and 'src="/static/htmx.min.js"' in r.text
    assert httpx.get(f"{svc.url}/static/htmx.min.js").text.startswith("/*! htmx 2.0.11")
    # API responses keep their own headers.
    assert "content-security-policy" not in httpx.get(f"{svc.url}/healthz").headers
    assert httpx.get(f"{svc.url}/ui/events").status_code == 401
