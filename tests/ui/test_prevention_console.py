"""Runtime prevention in the console: each node's enforcement state (a sensor that stops beating marks its node
"enforcement off", loudly, while containers are in scope), the deny list on the settings page, what a
workload's containers have enforced, and a runtime rule flipped in the console's policy editor reaching a
waiting sensor within 2 s (HTTP against a live service)."""

from __future__ import annotations

import threading
import time

import httpx
import pytest
from tests.service.helpers import post_batch
from tests.service.test_runtime_prevention import (
    DB,
    POLICY,
    WEB,
    enrol_sensor,
    prevention_record,
    runtime_batch,
    snapshot,
)

from vigil.devtools.service import LiveService
from vigil.model.findings import FindingType
from vigil.policy.enforcement import parse_enforcement
from vigil.policy.enforcement_text import enforcement_yaml
from vigil.service.ui import evidence
from vigil.wire.prevention import RUNTIME_POLICY_PATH

from .conftest import sign_in
from .test_admission_console import cells, csrf, signed_in, text_of

DIGEST = "ab" * 32


@pytest.fixture
def world(tmp_path):
    svc = LiveService(tmp_path / "data").start()
    cid, cred = svc.register("prod-eu")
    assert post_batch(svc, cred, snapshot(cid)).status_code == 200
    put = httpx.put(
        f"{svc.url}/api/v1/policy/enforcement", json=POLICY, headers={"Authorization": f"Bearer {svc.admin_token}"}
    )
    assert put.status_code == 200
    sensor = enrol_sensor(svc, cid, "node-1")
    admin = signed_in(svc, svc.admin_token)
    viewer = signed_in(svc, svc.token("viewer", "test-viewer"))
    yield svc, cid, sensor, admin, viewer
    admin.close()
    viewer.close()
    svc.stop()


def _revision(svc, sensor: str) -> str:
    resp = httpx.get(
        f"{svc.url}{RUNTIME_POLICY_PATH}", params={"node": "node-1"}, headers={"Authorization": f"Bearer {sensor}"}
    )
    return resp.json()["revision"]


def _beat(svc, sensor: str, cid: str, revision: str) -> None:
    body = {"cluster_id": cid, "node_name": "node-1", "interval_seconds": 1, "policy_revision": revision}
    resp = httpx.post(
        f"{svc.url}/api/v1/ingest/sensor-heartbeat", json=body, headers={"Authorization": f"Bearer {sensor}"}
    )
    assert resp.status_code == 200


def _prevention_column(html: str) -> dict[str, str]:
    return {row[0]: row[-1] for row in cells(html, "nodes-table")}


def test_a_sensor_that_stops_beating_marks_its_node_enforcement_off(world):
    svc, cid, sensor, _, viewer = world
    revision = _revision(svc, sensor)
    _beat(svc, sensor, cid, revision)
    page = viewer.get(f"/clusters/{cid}").text
    assert _prevention_column(page) == {
        "node-1": f"enforcing {revision} | 2 in scope",
        "node-2": "enforcement off | 1 in scope",  # no sensor ever reported there
    }
    assert text_of(page, "prevention-off") == (
        "Runtime prevention is not in force on 1 node with containers in its scope, so it fails open there: "
        "node-2 enforcement off (no sensor has reported from this node; 1 container in scope)."
    )
    time.sleep(3.5)  # three missed beats of one second
    page = viewer.get(f"/clusters/{cid}").text
    assert _prevention_column(page)["node-1"] == "enforcement off | 2 in scope"
    assert text_of(page, "prevention-off") == (
        "Runtime prevention is not in force on 2 nodes with containers in its scope, so it fails open there: "
        "node-1 enforcement off (the sensor stopped beating or failed; 2 containers in scope); "
        "node-2 enforcement off (no sensor has reported from this node; 1 container in scope)."
    )
    assert text_of(viewer.get("/").text, "prevention-off") == (
        "Runtime prevention is not in force on 2 nodes with containers in its scope, so it fails open there: "
        "node-1 (off), node-2 (off). Nodes"
    )
    settings = viewer.get("/settings").text
    assert cells(settings, "prevention-nodes") == [
        # The revision its last heartbeat named stays shown.
        ["prod-eu", "node-1", "enforcement off | the sensor stopped beating or failed", revision, revision, "2"],
        ["prod-eu", "node-2", "enforcement off | no sensor has reported from this node", "—", revision_of_node2(svc),
         "1"],
    ]  # fmt: skip


def revision_of_node2(svc) -> str:
    items = svc.get("/api/v1/policy/runtime/nodes").json()["items"]
    return next(n["current_revision"] for n in items if n["node_name"] == "node-2")


def test_a_lagging_sensor_is_shown_with_both_revisions(world):
    svc, cid, sensor, _, viewer = world
    revision = _revision(svc, sensor)
    _beat(svc, sensor, cid, "0123456789abcdef")
    assert _prevention_column(viewer.get(f"/clusters/{cid}").text)["node-1"] == (
        f"lagging 0123456789abcdef → {revision} | 2 in scope"
    )


def test_the_deny_list_on_the_settings_page(world):
    svc, _, _, admin, viewer = world
    page = admin.get("/settings").text
    assert text_of(page, "no-deny-list") == "The deny list is empty."
    token = csrf(page)
    bad = admin.post("/settings/deny-list", data={"csrf": token, "sha256": "12ab", "reason": "miner"})
    assert bad.status_code == 400
    assert text_of(bad.text, "deny-error") == "sha256: '12ab' is not a file sha256 (64 hex digits)"
    no_reason = admin.post("/settings/deny-list", data={"csrf": token, "sha256": DIGEST, "reason": " "})
    assert text_of(no_reason.text, "deny-error") == "reason: must say why the file is denied, in 1-1024 characters"
    added = admin.post("/settings/deny-list", data={"csrf": token, "sha256": f"sha256:{DIGEST}", "reason": "miner"})
    assert (added.status_code, added.headers["location"]) == (303, "/settings#deny-list")
    twice = admin.post("/settings/deny-list", data={"csrf": token, "sha256": DIGEST, "reason": "again"})
    assert (twice.status_code, text_of(twice.text, "deny-error")) == (
        409,
        f"sha256 {DIGEST} is already on the deny list",
    )
    shown = viewer.get("/settings").text
    assert [row[:3] for row in cells(shown, "deny-list-table")] == [[DIGEST, "miner", "console:test-admin"]]
    assert 'action="/settings/deny-list"' not in shown  # viewers read it only
    assert svc.get("/api/v1/policy/deny-list").json()["items"][0]["sha256"] == DIGEST
    by_viewer = viewer.post("/settings/deny-list", data={"csrf": csrf(shown), "sha256": "0" * 64, "reason": "x"})
    assert by_viewer.status_code == 403
    removed = admin.post("/settings/deny-list/remove", data={"csrf": token, "sha256": DIGEST})
    assert removed.status_code == 303
    after = admin.get("/settings").text
    assert text_of(after, "no-deny-list") == "The deny list is empty."
    assert [row[:4] for row in cells(after, "deny-history")] == [
        [DIGEST, "removed", "—", "console:test-admin"],
        [DIGEST, "added", "miner", "console:test-admin"],
    ]


def test_a_workload_page_shows_what_each_container_has_enforced(world):
    svc, cid, _, _, viewer = world
    web = cells(viewer.get(f"/workloads/{cid}/payments/Deployment/web").text, "workload-prevention")
    rules = (
        "deny_listed: enforce (web-kill) drift: enforce (web-kill) escape: audit (everywhere) "
        "memfd_exec: audit (web-kill) tmp_exec: audit (everywhere)"
    )
    assert web == [["web-1", "main", "node-1", rules], ["web-2", "main", "node-2", rules]]
    db = cells(viewer.get(f"/workloads/{cid}/payments/StatefulSet/db").text, "workload-prevention")
    assert db == [["db-0", "main", "node-1", "escape: audit (everywhere) tmp_exec: audit (everywhere)"]]
    dns = cells(viewer.get(f"/workloads/{cid}/kube-system/Deployment/dns").text, "workload-prevention")
    assert dns == [["dns-1", "main", "node-1", "none: no policy's runtime rules reach this container"]]


def test_a_runtime_rule_flipped_in_the_console_reaches_a_waiting_sensor_within_2_s(world):
    svc, _, sensor, admin, _ = world
    held = _revision(svc, sensor)
    answers: list = []

    def wait() -> None:
        resp = httpx.get(
            f"{svc.url}{RUNTIME_POLICY_PATH}",
            params={"node": "node-1", "revision": held, "wait": 20},
            headers={"Authorization": f"Bearer {sensor}"},
            timeout=30,
        )
        answers.append((time.monotonic(), resp.json()))

    thread = threading.Thread(target=wait)
    thread.start()
    time.sleep(0.5)
    assert not answers
    flipped = parse_enforcement(
        {"policies": [POLICY["policies"][0], {**POLICY["policies"][1], "mode": "enforce"}]}, "test"
    )
    page = admin.get("/settings").text
    changed_at = time.monotonic()
    done = admin.post("/settings/enforcement", data={"csrf": csrf(page), "policy": enforcement_yaml(flipped)})
    assert done.status_code == 303
    thread.join(10)
    answered_at, body = answers[0]
    assert answered_at - changed_at < 2.0, answered_at - changed_at
    assert {c["container_id"]: c["rules"]["tmp_exec"] for c in body["containers"]} == {WEB: "enforce", DB: "enforce"}


def test_the_runtime_rules_form_sets_one_policy_rules_and_reaches_a_waiting_sensor(world):
    svc, _, sensor, admin, viewer = world
    assert cells(viewer.get("/settings").text, "runtime-rules-table") == [
        ["web-kill", "enforce", "enforce", "audit", "off", "off", "enforce", "off"],
        ["everywhere", "audit", "off", "off", "off", "enforce", "off", "audit"],
    ]
    page = admin.get("/settings").text
    token = csrf(page)
    web_kill = {"drift": "enforce", "memfd_exec": "audit", "deny_listed": "enforce", "tmp_exec": "enforce"}
    bad = admin.post("/settings/enforcement/runtime", data={"csrf": token, "policy": "web-kill", "drift": "kill"})
    assert (bad.status_code, text_of(bad.text, "enforcement-error")) == (
        400,
        "runtime rules of policy 'web-kill': drift: 'kill' is not one of off, audit, enforce",
    )
    missing = admin.post("/settings/enforcement/runtime", data={"csrf": token, "policy": "nope", **web_kill})
    assert (missing.status_code, text_of(missing.text, "enforcement-error")) == (
        404,
        "policy: no policy is named 'nope'",
    )
    by_viewer = viewer.post(
        "/settings/enforcement/runtime", data={"csrf": csrf(viewer.get("/settings").text), "policy": "web-kill"}
    )
    assert by_viewer.status_code == 403

    held = _revision(svc, sensor)
    answers: list = []

    def wait() -> None:
        resp = httpx.get(
            f"{svc.url}{RUNTIME_POLICY_PATH}",
            params={"node": "node-1", "revision": held, "wait": 20},
            headers={"Authorization": f"Bearer {sensor}"},
            timeout=30,
        )
        answers.append((time.monotonic(), resp.json()))

    thread = threading.Thread(target=wait)
    thread.start()
    time.sleep(0.5)
    changed_at = time.monotonic()
    done = admin.post("/settings/enforcement/runtime", data={"csrf": token, "policy": "web-kill", **web_kill})
    assert (done.status_code, done.headers["location"]) == (303, "/settings#runtime-rules")
    thread.join(10)
    answered_at, body = answers[0]
    assert answered_at - changed_at < 2.0, answered_at - changed_at
    assert {c["container_id"]: c["rules"]["tmp_exec"] for c in body["containers"]} == {WEB: "enforce", DB: "audit"}
    stored = svc.get("/api/v1/policy/enforcement").json()
    assert stored["updated_by"] == "console:test-admin"
    assert stored["policies"][0]["runtime"] == {**dict.fromkeys(["deleted_exec", "escape"], "off"), **web_kill}
    again = admin.post("/settings/enforcement/runtime", data={"csrf": token, "policy": "web-kill", **web_kill})
    notice = text_of(again.text, "enforcement-notice")
    assert notice == f"unchanged: the policy is already revision {stored['revision']}"


def test_a_prevention_finding_page_shows_the_outcome_rule_process_and_policy(world):
    svc, cid, sensor, _, viewer = world
    revision = _revision(svc, sensor)
    batch = runtime_batch(
        cid, "b-1", [prevention_record(cid, "drift", "enforce", "/usr/local/bin/dropper", sha256="9" * 64,
                                       revision=revision)]
    )  # fmt: skip
    resp = httpx.post(f"{svc.url}/api/v1/ingest/runtime", json=batch, headers={"Authorization": f"Bearer {sensor}"})
    assert resp.status_code == 200
    [finding] = svc.list_all("/api/v1/findings", type="prevented_execution")
    page = viewer.get(f"/findings/{finding['id']}").text
    rows = {r.label: [(c.text, c.href) for c in r.cells] for r in evidence.rows(finding)}
    assert rows == {
        "outcome": [("killed", None)],
        "what this means": [(FindingType.PREVENTED_EXECUTION.explanation, None)],
        "rule": [("drift", None)],
        "mode": [("enforce", None)],
        "operation": [("exec", None)],
        "path": [("/usr/local/bin/dropper", None)],
        "sha256": [("9" * 64, None)],
        "on the upper layer": [("yes", None)],
        "times seen": [("2", None)],
        "process": [("dropper", None)],
        "command line": [("/usr/local/bin/dropper --mark", None)],
        "pid / uid": [("4242 / 0", None)],
        "parent chain": [("sh", None), ("containerd-shim", None)],
        "pod": [("web-1", f"/workloads/{cid}/payments/Deployment/web")],
        "container": [("main", f"/processes/container?cluster={cid}&id=containerd%3A%2F%2F{'a' * 64}")],
        "node": [("node-1", None)],
        "image": [("registry.example.com/web:1", None)],
        "policy": [("web-kill", None)],
        "policy revision": [(revision, None)],
    }
    assert "killed: exec of /usr/local/bin/dropper (rule drift)" in page
    assert '<dd data-label="outcome">killed</dd>' in page
    assert '<dd data-label="policy"><code>web-kill</code></dd>' in page
    assert '<dd data-label="parent chain"><code>sh</code> ← <code>containerd-shim</code></dd>' in page


def test_in_chromium_the_cluster_page_shows_the_node_where_prevention_fails_open(world, browser):
    svc, cid, sensor, _, _ = world
    _beat(svc, sensor, cid, _revision(svc, sensor))
    ctx, page = sign_in(browser, svc.url, svc.token("viewer", "browser-viewer"))
    try:
        page.goto(f"{svc.url}/clusters/{cid}")
        banner = page.locator("#prevention-off")
        assert banner.is_visible()
        assert banner.inner_text() == (
            "Runtime prevention is not in force on 1 node with containers in its scope, so it fails open there: "
            "node-2 enforcement off (no sensor has reported from this node; 1 container in scope)."
        )
        cells_of = {
            r.get_attribute("data-node"): r.locator("td.prevention").inner_text().split("\n")[0]
            for r in page.locator("#nodes-table tbody tr").all()
        }
        assert cells_of == {"node-1": f"enforcing {_revision(svc, sensor)}", "node-2": "enforcement off"}
    finally:
        ctx.close()


def test_runtime_rules_scoped_by_namespace_labels_are_shown_to_reach_no_container(world):
    svc, _, _, _, viewer = world
    labelled = {
        "policies": [
            {
                "name": "labelled",
                "scope": {"namespace_selector": {"matchLabels": {"env": "prod"}}},
                "runtime": {"drift": "enforce"},
            }
        ]
    }
    put = httpx.put(
        f"{svc.url}/api/v1/policy/enforcement", json=labelled, headers={"Authorization": f"Bearer {svc.admin_token}"}
    )
    assert put.status_code == 200, put.text
    page = viewer.get("/settings").text
    assert text_of(page, "runtime-warning-1") == (
        "policy labelled: its runtime rules (drift) are scoped by namespace_selector, and the inventory carries no "
        "namespace labels, so they apply to no running container; scope them by namespaces or workload_selector "
        "(admission still applies the selector)"
    )
    assert "runtime-warning-2" not in page
