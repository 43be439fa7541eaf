"""The console over the stores that landed after it: trust policy, alert outputs, image contents and
provenance, runtime labels of package findings, and risk scores (browser against a seeded service)."""

from __future__ import annotations

import httpx

from .seed import WEBHOOK_SECRET, WEBHOOK_URL_TOKEN

APP0 = "registry.example.com/team0/app0:1.0"
PATTERN_RULE = "must be host[:port][/path-prefix], e.g. registry.example.com:5000/team (no scheme, tag or digest)"


def cells(page, selector: str) -> list[list[str]]:
    return [[c.strip() for c in r.split("\t")] for r in page.locator(selector).all_inner_texts()]


def api(svc, path: str) -> dict:
    r = httpx.get(f"{svc.url}{path}", headers={"Authorization": f"Bearer {svc.admin_token}"}, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


def submit(page, selector: str) -> None:
    """Click a form's button and wait until the page it leads to has loaded (a redirect back to
    the same page included), so the next step never acts on the page being replaced."""
    with page.expect_navigation():
        page.click(selector)


def trust_rows(page) -> list[list[str]]:
    # scope, kind, pattern, mirror, added by (the time and the button left out)
    return [r[:5] for r in cells(page, "#trust-rules tbody tr")]


SEEDED_RULES = [
    ["global", "trusted", "registry.example.com/team0", "", "seed"],
    ["global", "mirror", "docker.io", "artifactory.example.com/docker-remote", "seed"],
    ["cluster staging", "trusted", "harbor.internal", "", "seed"],
]
SEEDED_DOC = {
    "trusted": ["registry.example.com/team0"],
    "mirrors": [{"source": "docker.io", "mirror": "artifactory.example.com/docker-remote"}],
    "signatures": [],
    "clusters": {"staging": {"trusted": ["harbor.internal"], "mirrors": [], "signatures": []}},
}


def test_image_detail_shows_distinct_vulnerabilities_contents_provenance_and_runtime_states(
    admin_page, console, output_dir
):
    svc, w = console
    page = admin_page
    app0 = w.image_pk[APP0]
    page.goto(f"{svc.url}/images/{app0}")
    # Two vulnerable_package findings (one per workload) for CVE-2022-3602 are one vulnerability of
    # the digest; the digest also has CVE-2023-0286 and the malicious event-stream.
    assert page.locator("#image-vulnerabilities").inner_text() == "1C 1H 1M 1 malicious 1 running"
    assert {
        k: page.locator(f"#provenance-fields [data-field={k}]").inner_text() for k in ("source", "revision", "version")
    } == {
        "source": "https://git.example.com/team0/app0",
        "revision": "9f1c2e7",
        "version": "1.0",
    }
    assert cells(page, "#provenance-labels tr") == [
        ["org.opencontainers.image.revision", "9f1c2e7"],
        ["org.opencontainers.image.source", "https://git.example.com/team0/app0"],
    ]
    # Each package finding shows its own runtime label; the running one links its evidence.
    runtime = {
        int(r.get_attribute("data-finding-id")): r.get_attribute("data-runtime")
        for r in page.locator("#vulnerability-findings tbody tr").all()
    }
    assert runtime == {
        w.findings["vuln_d0"]: "running",
        w.findings["vuln_s1"]: "unwatched",
        w.findings["malicious"]: "not_observed_running",
        w.findings["running_vuln"]: "running",
    }
    d0 = page.locator(f"#vulnerability-findings tr[data-finding-id='{w.findings['vuln_d0']}'] td.runtime")
    assert d0.inner_text() == f"running #{w.findings['running_vuln']}"
    assert page.locator("#scan-status .tag").inner_text() == "done"
    assert "53 packages, 1 files" in page.locator("#scan-status").inner_text()
    # The digest's vulnerabilities, each with its findings' runtime states across workloads.
    assert cells(page, "#image-vulns tbody tr") == [
        ["CVE-2022-3602", "high", "openssl deb", "3.0.2", "3.0.7", "running×1 unwatched×1"],
        ["CVE-2023-0286", "medium", "openssl deb", "3.0.2", "3.0.8", "no open finding"],
        ["MAL-2018-1 malicious", "critical", "event-stream npm", "3.3.6", "—", "not_observed_running×1"],
    ]
    assert [r.get_attribute("data-runtime") for r in page.locator("#image-vulns tbody tr").all()] == [
        "running",
        "",
        "not_observed_running",
    ]
    # Packages, 50 a page, each with its vulnerabilities.
    names = [r.get_attribute("data-package") for r in page.locator("#image-packages tbody tr").all()]
    assert names == ["openssl", "zlib1g", "event-stream"] + [f"libfill{i:02d}" for i in range(47)]
    assert cells(page, "#image-packages tr[data-package=openssl]")[0][4] == "CVE-2022-3602 CVE-2023-0286"
    page.screenshot(path=str(output_dir / "image-contents.png"), full_page=True)
    page.click("#packages-next")
    page.wait_for_url(lambda url: "pkg_after=" in url)
    assert [r.get_attribute("data-package") for r in page.locator("#image-packages tbody tr").all()] == [
        "libfill47",
        "libfill48",
        "libfill49",
    ]
    assert page.locator("#packages-next").count() == 0
    # "N running" leads to the running vulnerabilities of this image.
    page.goto(f"{svc.url}/images/{app0}")
    page.click("#image-vulnerabilities a")
    page.wait_for_url(lambda url: "type=running_vulnerability" in url)
    assert {
        int(x)
        for x in page.locator("#findings-table tbody tr").evaluate_all("rows => rows.map(r => r.dataset.findingId)")
    } == {w.findings["running_vuln"]}


def test_scan_status_of_images_not_scanned(admin_page, console):
    svc, w = console
    page = admin_page
    page.goto(f"{svc.url}/images/{w.image_pk['registry.example.com/team2/app2:1.2']}")
    assert page.locator("#scan-status .tag").inner_text() == "failed"
    assert page.locator("#scan-error").inner_text() == "registry.example.com: connection refused"
    assert page.locator("#image-vulnerabilities").inner_text() == "scan failed"
    page.goto(f"{svc.url}/images/{w.image_pk['registry.example.com/team1/app1:1.1']}")
    assert page.locator("#scan-status .tag").inner_text() == "pending"
    assert page.locator("#scan-status").inner_text().startswith("scan pending queued 20")
    page.goto(f"{svc.url}/images/{w.image_pk['registry.example.com/team3/app3:1.3']}")
    assert page.locator("#scan-status").inner_text() == "scan pending queued on the next scanner pass"
    page.goto(f"{svc.url}/images/{w.image_pk[APP0]}?pkg_after=not-a-cursor")
    assert (
        page.locator("#error-message").inner_text() == "pkg_after: cursor 'not-a-cursor' is not one this service issued"
    )


def test_images_list_counts_distinct_vulnerabilities_not_findings(admin_page, console):
    svc, w = console
    page = admin_page
    page.goto(f"{svc.url}/images")
    vulns = {
        int(r.get_attribute("data-image-id")): r.locator("td.vulns").inner_text()
        for r in page.locator("#images-table tbody tr").all()
    }
    assert vulns == {
        w.image_pk[APP0]: "1C 1H 1M 1 malicious",
        w.image_pk["registry.example.com/team1/app1:1.1"]: "scan pending",
        w.image_pk["registry.example.com/team2/app2:1.2"]: "scan failed",
        w.image_pk["registry.example.com/team3/app3:1.3"]: "scan pending",
    }


def test_findings_list_shows_the_risk_and_runtime_state_the_api_serves(admin_page, console):
    svc, w = console
    page = admin_page
    page.goto(f"{svc.url}/findings?type=vulnerable_package,malicious_package,running_vulnerability")
    shown = {
        int(r.get_attribute("data-finding-id")): r.locator("td").nth(3).inner_text()
        for r in page.locator("#findings-table tbody tr").all()
    }
    assert shown == {
        w.findings["vuln_d0"]: "89 running",
        w.findings["vuln_s1"]: "44 unwatched",
        w.findings["malicious"]: "64 not_observed_running",
        w.findings["running_vuln"]: "89",
        w.findings["staging_vuln"]: "10 unwatched",
    }
    served = {
        f["id"]: (f["risk"]["score"], f.get("runtime", {}).get("state"))
        for f in api(svc, "/api/v1/findings?limit=100")["items"]
    }
    for fid, text in shown.items():
        score, state = served[fid]
        assert text == " ".join(x for x in (str(score), state) if x)
    # The Running vulnerabilities quick filter still selects the runtime evidence.
    page.goto(f"{svc.url}/findings")
    page.click("#quick-filters a:text-is('Running vulnerabilities')")
    page.wait_for_url(lambda url: "type=running_vulnerability" in url)
    assert [int(r.get_attribute("data-finding-id")) for r in page.locator("#findings-table tbody tr").all()] == [
        w.findings["running_vuln"]
    ]


def test_workload_page_shows_risk_with_its_parts_riskiest_first(admin_page, console, output_dir):
    svc, w = console
    page = admin_page
    page.goto(f"{svc.url}/workloads/{w.prod}/ns-0/Deployment/deployment-0")
    assert page.locator("#workload-risk-score").inner_text() == "100.0"
    assert (
        page.locator("#workload-risk").inner_text()
        == f"100.0 = top finding #{w.findings['running_vuln']} (89) + 0.1 × the other 4 open (29.1)"
    )
    order = [int(r.get_attribute("data-finding-id")) for r in page.locator("#workload-findings tbody tr").all()]
    assert order == [
        w.findings[k] for k in ("running_vuln", "vuln_d0", "digest_mismatch", "untrusted", "malicious", "resolved")
    ]
    row = cells(page, f"#workload-findings tr[data-finding-id='{w.findings['vuln_d0']}']")[0]
    assert row[:2] == ["89", "severity 30 runtime +25 exposure +25 blast radius +9"] and row[5] == "running"
    served = next(x for x in api(svc, f"/api/v1/workloads?cluster={w.prod}")["items"] if x["name"] == "deployment-0")
    assert served["risk"]["score"] == 100.0
    page.screenshot(path=str(output_dir / "workload-risk.png"), full_page=True)


def test_admin_changes_the_trust_policy_with_field_named_errors(admin_page, console, output_dir):
    svc, _ = console
    page = admin_page
    page.goto(f"{svc.url}/settings")
    assert trust_rows(page) == SEEDED_RULES
    revision = page.locator("#trust-revision").inner_text()
    assert revision == api(svc, "/api/v1/policy/trust")["revision"]
    form = "#add-trust-rule"

    page.fill(f"{form} input[name=pattern]", "https://harbor.internal")
    submit(page, f"{form} button[type=submit]")
    assert (
        page.locator("#settings-error").inner_text()
        == f"pattern: pattern 'https://harbor.internal': has a scheme; it {PATTERN_RULE}"
    )
    assert page.locator(f"{form} input[name=pattern]").input_value() == "https://harbor.internal"

    page.select_option(f"{form} select[name=kind]", "mirror")
    page.fill(f"{form} input[name=pattern]", "quay.io")
    page.fill(f"{form} input[name=mirror]", "mirror.example.com/Quay")
    submit(page, f"{form} button[type=submit]")
    assert page.locator("#settings-error").inner_text() == (
        "mirror: pattern 'mirror.example.com/Quay': "
        "path component 'Quay' must be lowercase letters and digits separated by '.', '_', '__' or '-'"
    )
    page.screenshot(path=str(output_dir / "settings-trust-error.png"), full_page=True)
    assert trust_rows(page) == SEEDED_RULES

    page.select_option(f"{form} select[name=kind]", "trusted")
    page.fill(f"{form} input[name=pattern]", "registry.example.com/team1")
    page.fill(f"{form} input[name=mirror]", "")
    page.select_option(f"{form} select[name=cluster]", "prod")
    submit(page, f"{form} button[type=submit]")
    assert page.url == f"{svc.url}/settings#trust"
    assert ["cluster prod", "trusted", "registry.example.com/team1", "", "console:test-admin"] in trust_rows(page)
    doc = api(svc, "/api/v1/policy/trust")
    assert doc["clusters"]["prod"] == {"trusted": ["registry.example.com/team1"], "mirrors": [], "signatures": []}
    assert page.locator("#trust-revision").inner_text() == doc["revision"] != revision

    page.select_option(f"{form} select[name=cluster]", "prod")
    page.fill(f"{form} input[name=pattern]", "registry.example.com/team1")
    submit(page, f"{form} button[type=submit]")
    assert (
        page.locator("#settings-notice").inner_text()
        == "already in the policy: trusted registry.example.com/team1 (cluster prod)"
    )

    page.select_option(f"{form} select[name=kind]", "mirror")
    page.fill(f"{form} input[name=pattern]", "quay.io")
    page.fill(f"{form} input[name=mirror]", "mirror.example.com/quay")
    page.select_option(f"{form} select[name=cluster]", "")
    submit(page, f"{form} button[type=submit]")
    assert page.url == f"{svc.url}/settings#trust"
    assert api(svc, "/api/v1/policy/trust")["mirrors"] == SEEDED_DOC["mirrors"] + [
        {"source": "quay.io", "mirror": "mirror.example.com/quay"}
    ]
    page.screenshot(path=str(output_dir / "settings-policy.png"), full_page=True)

    # Each row's button removes its own rule: a mirror and a trusted pattern.
    for pattern in ("quay.io", "registry.example.com/team1"):
        submit(page, f"#trust-rules tr[data-pattern='{pattern}'] button")
        assert page.url == f"{svc.url}/settings#trust", page.locator("#settings-error").all_inner_texts()
    assert trust_rows(page) == SEEDED_RULES
    assert {k: v for k, v in api(svc, "/api/v1/policy/trust").items() if k != "revision"} == SEEDED_DOC


def test_alert_outputs_are_masked_and_an_admin_removes_one(admin_page, console):
    svc, _ = console
    page = admin_page
    page.goto(f"{svc.url}/settings")
    rows = cells(page, "#alert-outputs tbody tr")
    assert [r[:4] for r in rows] == [
        ["soc-webhook", "webhook", "high", "opened, reopened, escalated, resolved"],
        ["siem", "syslog", "medium", "opened, reopened, escalated, resolved"],
    ]
    assert page.locator("#alert-outputs tr[data-name=soc-webhook] td.settings").inner_text().split("\n") == [
        "allow_insecure_http False",
        "secret ***",
        "url https://hooks.example.com/vigil?***",
    ]
    html = page.content()
    assert WEBHOOK_SECRET not in html and WEBHOOK_URL_TOKEN not in html
    submit(page, "#alert-outputs tr[data-name=siem] button")
    assert page.url == f"{svc.url}/settings#alerts"
    assert [r[0] for r in cells(page, "#alert-outputs tbody tr")] == ["soc-webhook"]
    assert [o["name"] for o in api(svc, "/api/v1/alerts/outputs")["items"]] == ["soc-webhook"]


def test_viewer_sees_the_trust_policy_but_cannot_change_it(viewer_page, console):
    svc, w = console
    page = viewer_page
    page.goto(f"{svc.url}/settings")
    assert trust_rows(page) == SEEDED_RULES
    assert page.locator("#add-trust-rule").count() == 0 and page.locator("#trust-rules button").count() == 0
    assert page.locator("#alert-outputs").count() == 0
    assert (
        page.locator("#alerts")
        .inner_text()
        .endswith("Alert outputs are shown to admins: they hold delivery settings, as in the admin-only alerts API.")
    )
    csrf = page.locator("header form input[name=csrf]").get_attribute("value")
    for path, form in (
        (
            "/settings/trust",
            {"csrf": csrf, "kind": "trusted", "pattern": "evil.example.com", "mirror": "", "cluster": ""},
        ),
        (
            "/settings/trust/remove",
            {"csrf": csrf, "kind": "trusted", "pattern": "registry.example.com/team0", "mirror": "", "cluster": ""},
        ),
        (f"/settings/alerts/{w.alert_outputs['soc-webhook']}/remove", {"csrf": csrf}),
    ):
        resp = page.request.post(f"{svc.url}{path}", form=form, max_redirects=0)
        assert resp.status == 403, path
        assert "this needs an admin token" in resp.text()
    # A forged post without this session's CSRF token is refused before anything is read.
    resp = page.request.post(
        f"{svc.url}/settings/trust", form={"kind": "trusted", "pattern": "evil.example.com"}, max_redirects=0
    )
    assert resp.status == 403 and "CSRF" in resp.text()
    assert {k: v for k, v in api(svc, "/api/v1/policy/trust").items() if k != "revision"} == SEEDED_DOC
    assert "soc-webhook" in [o["name"] for o in api(svc, "/api/v1/alerts/outputs")["items"]]
