"""What the console's pages say is what the stores hold: integrity verdicts, sensor reach, process
state, cluster names, and a 404 page (with navigation) for every path that names nothing
(HTTP against a seeded service; no script is involved)."""

from __future__ import annotations

import html as html_lib
import re
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from vigil.service.store.integrity import upsert_states
from vigil.service.store.runtime import apply_runtime_batch
from vigil.wire.runtime import RuntimeBatch

COOKIE = "vigil_session"
APP0 = "registry.example.com/team0/app0:1.0"
APP3 = "registry.example.com/team3/app3:1.3"


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, "no CSRF field on the page"
    return match.group(1)


@pytest.fixture(scope="module")
def client(console):
    svc, _ = console
    with httpx.Client(base_url=svc.url, follow_redirects=False, timeout=60) as c:
        login = c.get("/login")
        resp = c.post("/login", data={"token": svc.admin_token, "csrf": _csrf(login.text), "next": "/"})
        assert resp.status_code == 303 and resp.headers["location"] == "/"
        yield c


def _text(html: str, element_id: str) -> str:
    """The text of the element with this id (tags stripped, whitespace folded)."""
    match = re.search(rf'id="{element_id}"[^>]*>(.*?)</(dd|p|td|div)>', html, re.S)
    assert match, f"no #{element_id} on the page"
    return " ".join(html_lib.unescape(re.sub(r"<[^>]+>", " ", match.group(1))).split())


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/images/999", "image 999 does not exist"),
        ("/images/doesnotexist", "There is no page at /images/doesnotexist."),
        ("/images/-1", "There is no page at /images/-1."),
        ("/findings/999999", "finding 999999 does not exist"),
        ("/findings/abc", "There is no page at /findings/abc."),
        ("/clusters/nosuch", "cluster 'nosuch' does not exist"),
        ("/workloads/nosuch/ns/Deployment/x", "workload Deployment/x in namespace ns of cluster nosuch does not exist"),
    ],
)
def test_a_path_naming_nothing_is_the_404_page_with_navigation(client, path, message):
    resp = client.get(path)
    assert resp.status_code == 404
    assert resp.headers["content-type"].startswith("text/html")
    assert "<title>Not found · Vigil</title>" in resp.text and "<h1>Not found</h1>" in resp.text
    assert _text(resp.text, "error-message") == message
    assert '<header class="top">' in resp.text and 'href="/images"' in resp.text


def test_a_posted_form_to_a_non_numeric_id_is_the_404_page(client):
    for path in ("/findings/abc/status", "/settings/alerts/abc/remove"):
        resp = client.post(path, data={"csrf": "x"})
        assert resp.status_code == 404 and "<h1>Not found</h1>" in resp.text, path


def test_the_api_still_answers_json_for_a_bad_path_id(console):
    svc, _ = console
    resp = httpx.get(
        f"{svc.url}/api/v1/images/doesnotexist/scan", headers={"Authorization": f"Bearer {svc.admin_token}"}, timeout=60
    )
    assert resp.status_code == 422 and resp.json()["error"] == "invalid_request"


def test_an_image_the_registry_check_has_not_reported_on_says_not_yet_checked(client, console):
    _, w = console
    html = client.get(f"/images/{w.image_pk[APP3]}").text
    assert _text(html, "integrity-status") == "not yet checked"
    assert _text(html, "no-integrity-findings") == (
        "No trust or integrity finding for this image; the registry check has not reported on it yet."
    )


def test_a_verified_image_names_its_cluster_and_does_not_say_unreported(client, console):
    svc, w = console
    now = datetime.now(UTC)
    with svc.engine.begin() as conn:
        upsert_states(
            conn,
            [
                dict(
                    image_pk=w.image_pk[APP3],
                    cluster_id=w.prod,
                    status="verified",
                    verdict="",
                    evidence={},
                    registry_digest=w.digest[APP3],
                    registry_digest_since=now,
                    policy_revision="seed",
                    checked_at=now - timedelta(minutes=2),
                    next_check_at=now + timedelta(hours=1),
                    failures=0,
                )
            ],
        )
    html = client.get(f"/images/{w.image_pk[APP3]}").text
    assert _text(html, "integrity-status") == "verified prod: verified, checked 2m ago"
    assert w.prod not in _text(html, "integrity-status")
    assert _text(html, "no-integrity-findings") == "No trust or integrity finding for this image."
    listing = client.get("/images").text
    row = re.search(rf'data-image-id="{w.image_pk[APP3]}".*?</tr>', listing, re.S)
    assert row and ">verified</span>" in row.group(0) and "not yet checked" not in row.group(0)


def test_a_workload_without_processes_says_which_nodes_have_a_sensor(client, console):
    _, w = console
    # statefulset-1 runs on node-0000 (a sensor beats), node-0001 (its sensor failed) and node-0002 (none).
    html = client.get(f"/workloads/{w.prod}/ns-1/StatefulSet/statefulset-1").text
    assert _text(html, "no-processes") == (
        "No process recorded: the sensor on node-0000, node-0001 has reported no exec from these containers "
        "yet; none has reported from node-0002."
    )
    staging = client.get(f"/workloads/{w.staging}/ns-0/Deployment/deployment-0").text
    assert _text(staging, "no-processes") == (
        "No process recorded (Runtime Impact needs the sensor on the node: none has reported from node-0000)."
    )


def test_a_process_of_a_stopped_container_has_exited_and_none_is_claimed_running(client, console):
    svc, w = console
    pod = next(p for p in w.snapshot.pods if p.name == "deployment-0-0")
    stopped = next(c for c in pod.containers if c.state == "terminated")
    now = datetime.now(UTC)
    ran = (now - timedelta(minutes=3)).isoformat()
    with svc.engine.begin() as conn:
        apply_runtime_batch(
            conn,
            RuntimeBatch.model_validate(
                {
                    "batch_id": "rt-ls",
                    "cluster_id": w.prod,
                    "node_name": "node-0000",
                    "sensor_id": "s1",
                    "seq": 1,
                    "window_start": (now - timedelta(minutes=4)).isoformat(),
                    "window_end": now.isoformat(),
                    "records": [
                        {
                            "container_id": stopped.container_id,
                            "pod_uid": pod.uid,
                            "kind": "executable",
                            "path": "/bin/ls",
                            "sha256": "f6" * 32,
                            "first_seen": ran,
                            "last_seen": ran,
                            "count": 1,
                        }
                    ],
                }
            ),
        )
    for path in ("/processes", f"/images/{w.image_pk[APP0]}", f"/workloads/{w.prod}/ns-0/Deployment/deployment-0"):
        html = client.get(path).text
        states = dict(re.findall(r'<tr data-path="([^"]+)">.*?data-state="([^"]+)"', html, re.S))
        assert states == {
            "/usr/bin/curl": "last_seen",
            "/bin/ls": "exited",
            **({"/usr/sbin/sshd": "last_seen"} if path == "/processes" else {}),
        }, path
        assert re.search(r'data-state="exited"><span class="tag status-stopped"[^>]*>exited</span>', html), path
        assert re.search(r'data-state="last_seen"><span class="muted"[^>]*>last seen \d+m ago</span>', html), path
        rows = re.findall(r'<tr data-path="[^"]+">.*?</tr>', html, re.S)
        assert len(rows) == len(states) and not any("running" in r for r in rows), path
