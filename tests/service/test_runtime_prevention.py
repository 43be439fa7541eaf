"""Runtime prevention through the real service and a real HTTP client (SQLite and PostgreSQL): the deny list,
each node's runtime policy for its sensor (a long poll a change answers within 2 s), what sensors prevented
as findings, and each node's enforcement state from its sensor's heartbeats."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from vigil.devtools.service import LiveService
from vigil.policy.enforcement import parse_enforcement
from vigil.policy.prevention import revision_of
from vigil.service.store.enforcement import replace_enforcement
from vigil.wire.inventory import InventoryDelta, InventorySnapshot
from vigil.wire.prevention import RUNTIME_POLICY_PATH, ContainerPrevention

from .helpers import post_batch

WEB = "containerd://" + "a" * 64
DB = "containerd://" + "b" * 64
DNS = "containerd://" + "c" * 64
FAR = "containerd://" + "d" * 64
DONE = "containerd://" + "e" * 64
DENIED = "f" * 64
POLICY = {
    "policies": [
        {
            "name": "web-kill",
            "mode": "enforce",
            "scope": {"namespaces": ["payments"], "workload_selector": {"matchLabels": {"tier": "web"}}},
            "runtime": {"drift": "enforce", "memfd_exec": "audit", "deny_listed": "enforce"},
        },
        {"name": "everywhere", "mode": "audit", "runtime": {"tmp_exec": "enforce", "escape": "audit"}},
    ]
}


@pytest.fixture
def svc(tmp_path, database_url):
    service = LiveService(tmp_path / "data", database_url).start()
    yield service
    service.stop()


def _h(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def _pod(uid, ns, name, node, kind, workload, cid, labels, state="running"):
    return {
        "uid": uid,
        "namespace": ns,
        "name": name,
        "node_name": node,
        "phase": "Running",
        "workload": {"kind": kind, "name": workload},
        "labels": labels,
        "containers": [
            {
                "name": "main",
                "image": f"registry.example.com/{workload}:1",
                "image_digest": "sha256:" + "1" * 64,
                "container_id": cid,
                "state": state,
            }
        ],
    }


def snapshot(cid: str) -> InventorySnapshot:
    return InventorySnapshot.model_validate(
        {
            "kind": "snapshot",
            "batch_id": "snap-1",
            "cluster_id": cid,
            "nodes": [{"name": "node-1"}, {"name": "node-2"}],
            "workloads": [
                {"namespace": "payments", "kind": "Deployment", "name": "web", "labels": {"app": "web"}},
                {"namespace": "payments", "kind": "StatefulSet", "name": "db"},
                {"namespace": "payments", "kind": "Job", "name": "migrate"},
                {"namespace": "kube-system", "kind": "Deployment", "name": "dns"},
            ],
            "pods": [
                _pod("u-web", "payments", "web-1", "node-1", "Deployment", "web", WEB, {"tier": "web"}),
                _pod("u-db", "payments", "db-0", "node-1", "StatefulSet", "db", DB, {"tier": "db"}),
                _pod("u-dns", "kube-system", "dns-1", "node-1", "Deployment", "dns", DNS, {}),
                _pod("u-far", "payments", "web-2", "node-2", "Deployment", "web", FAR, {"tier": "web"}),
                _pod("u-job", "payments", "migrate-1", "node-1", "Job", "migrate", DONE, {}, "terminated"),
            ],
        }
    )


def enrol_sensor(svc, cid: str, node: str) -> str:
    enrolment = httpx.post(f"{svc.url}/api/v1/clusters/{cid}/sensor-enrolment", json={}, headers=_h(svc.admin_token))
    assert enrolment.status_code == 200, enrolment.text
    resp = httpx.post(
        f"{svc.url}/api/v1/clusters/{cid}/sensors",
        json={"node": node},
        headers=_h(enrolment.json()["credential"]),
    )
    assert resp.status_code == 200, resp.text
    return resp.json()["credential"]


def _setup(svc) -> tuple[str, str, str]:
    cid, cred = svc.register("prod-eu")
    assert post_batch(svc, cred, snapshot(cid)).status_code == 200
    assert (
        httpx.put(f"{svc.url}/api/v1/policy/enforcement", json=POLICY, headers=_h(svc.admin_token)).status_code == 200
    )
    added = httpx.post(
        f"{svc.url}/api/v1/policy/deny-list",
        json={"sha256": DENIED, "reason": "miner from incident 42"},
        headers=_h(svc.admin_token),
    )
    assert added.status_code == 201, added.text
    return cid, cred, enrol_sensor(svc, cid, "node-1")


def _policy(svc, token: str, **params) -> httpx.Response:
    return httpx.get(f"{svc.url}{RUNTIME_POLICY_PATH}", params=params, headers=_h(token), timeout=40)


def test_a_node_gets_its_running_containers_in_scope_with_rule_modes_and_the_deny_list(svc):
    cid, _, sensor = _setup(svc)
    resp = _policy(svc, sensor, node="node-1")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    web = {
        "container_id": WEB,
        "pod_uid": "u-web",
        "namespace": "payments",
        "pod_name": "web-1",
        "workload": "Deployment/web",
        "rules": {
            "deny_listed": "enforce",
            "drift": "enforce",
            "escape": "audit",
            "memfd_exec": "audit",
            "tmp_exec": "audit",
        },
        "policies": {
            "deny_listed": "web-kill",
            "drift": "web-kill",
            "escape": "everywhere",
            "memfd_exec": "web-kill",
            "tmp_exec": "everywhere",
        },
        "drift_sha256": [],
    }
    db = {
        "container_id": DB,
        "pod_uid": "u-db",
        "namespace": "payments",
        "pod_name": "db-0",
        "workload": "StatefulSet/db",
        "rules": {"escape": "audit", "tmp_exec": "audit"},
        "policies": {"escape": "everywhere", "tmp_exec": "everywhere"},
        "drift_sha256": [],
    }
    # kube-system is exempt, the terminated job and node-2's container are not this node's running ones.
    assert body["containers"] == [web, db]
    assert body["deny_sha256"] == [DENIED]
    assert body["node_name"] == "node-1"
    expected = revision_of("node-1", [ContainerPrevention.model_validate(c) for c in (web, db)], [DENIED])
    assert body["revision"] == expected
    # Held at the current revision with no wait: the same policy at once.
    again = _policy(svc, sensor, node="node-1", revision=expected, wait=0)
    assert again.status_code == 200 and again.json()["revision"] == expected


def test_who_may_read_a_node_runtime_policy(svc):
    cid, cred, sensor = _setup(svc)
    anonymous = httpx.get(f"{svc.url}{RUNTIME_POLICY_PATH}", params={"node": "node-1"})
    assert (anonymous.status_code, anonymous.json()["error"]) == (401, "unauthorized")
    bogus = _policy(svc, "vgl_s_" + "x" * 43, node="node-1")
    assert bogus.status_code == 401
    for role in ("admin", "viewer"):
        denied = _policy(svc, svc.token(role, f"t-{role}"), node="node-1")
        assert (denied.status_code, denied.json()) == (
            403,
            {
                "error": "forbidden",
                "detail": f"a {role} token cannot do this; it needs a token with role sensor or cluster",
            },
        )
    other = _policy(svc, sensor, node="node-2")
    assert (other.status_code, other.json()) == (
        403,
        {
            "error": "forbidden",
            "detail": "this sensor credential is scoped to node node-1; it cannot read node node-2's runtime policy",
        },
    )
    # The cluster's own credential (sensors set up before they had their own) reads any of its nodes.
    assert [c["container_id"] for c in _policy(svc, cred, node="node-2").json()["containers"]] == [FAR]
    bad_node = _policy(svc, cred, node="Bad_Node!")
    assert (bad_node.status_code, bad_node.json()["detail"]) == (
        422,
        "query.node: 'Bad_Node!' is not a node name (DNS subdomain)",
    )
    too_long = _policy(svc, sensor, node="node-1", wait=31)
    assert too_long.status_code == 422
    assert too_long.json()["detail"] == "query.wait: Input should be less than or equal to 30"


def _wait_in_thread(svc, sensor: str, revision: str, results: list) -> threading.Thread:
    def run() -> None:
        resp = _policy(svc, sensor, node="node-1", revision=revision, wait=20)
        results.append((time.monotonic(), resp))

    thread = threading.Thread(target=run)
    thread.start()
    time.sleep(0.5)  # the request is held
    assert not results
    return thread


def test_a_policy_edit_through_the_api_answers_a_waiting_sensor_within_2_s(svc):
    cid, cred, sensor = _setup(svc)
    held = _policy(svc, sensor, node="node-1").json()
    results: list = []
    thread = _wait_in_thread(svc, sensor, held["revision"], results)
    flipped = {"policies": [{**POLICY["policies"][0]}, {**POLICY["policies"][1], "mode": "enforce"}]}
    changed_at = time.monotonic()
    resp = httpx.put(f"{svc.url}/api/v1/policy/enforcement", json=flipped, headers=_h(svc.admin_token))
    assert resp.status_code == 200
    thread.join(10)
    answered_at, answer = results[0]
    assert answered_at - changed_at < 2.0, answered_at - changed_at
    body = answer.json()
    assert body["revision"] != held["revision"]
    assert {c["container_id"]: c["rules"]["tmp_exec"] for c in body["containers"]} == {WEB: "enforce", DB: "enforce"}


def test_a_deny_list_edit_and_a_container_going_wake_a_waiting_sensor(svc):
    cid, cred, sensor = _setup(svc)
    held = _policy(svc, sensor, node="node-1").json()
    results: list = []
    thread = _wait_in_thread(svc, sensor, held["revision"], results)
    changed_at = time.monotonic()
    removed = httpx.delete(f"{svc.url}/api/v1/policy/deny-list/{DENIED}", headers=_h(svc.admin_token))
    assert removed.json() == {"sha256": DENIED, "removed": True}
    thread.join(10)
    assert results[0][0] - changed_at < 2.0
    after_deny = results[0][1].json()
    assert after_deny["deny_sha256"] == []

    results.clear()
    thread = _wait_in_thread(svc, sensor, after_deny["revision"], results)
    gone = InventoryDelta.model_validate(
        {"kind": "delta", "batch_id": "d-1", "cluster_id": cid, "deletes": {"pods": ["u-db"]}}
    )
    changed_at = time.monotonic()
    assert post_batch(svc, cred, gone).status_code == 200
    thread.join(10)
    assert results[0][0] - changed_at < 2.0
    assert [c["container_id"] for c in results[0][1].json()["containers"]] == [WEB]


def test_a_waiting_sensor_gets_the_same_policy_when_nothing_changes(svc):
    cid, cred, sensor = _setup(svc)
    held = _policy(svc, sensor, node="node-1").json()
    started = time.monotonic()
    again = _policy(svc, sensor, node="node-1", revision=held["revision"], wait=1.5)
    assert 1.4 < time.monotonic() - started < 3.0
    assert again.json()["revision"] == held["revision"]


def test_the_deny_list_is_managed_by_admins_read_by_viewers_with_history(svc):
    admin, viewer = _h(svc.admin_token), _h(svc.token("viewer", "v"))
    url = f"{svc.url}/api/v1/policy/deny-list"
    first = httpx.post(url, json={"sha256": DENIED, "reason": "  miner  "}, headers=admin)
    assert first.status_code == 201
    assert {k: first.json()[k] for k in ("sha256", "reason", "added_by")} == {
        "sha256": DENIED,
        "reason": "miner",
        "added_by": "token:test-admin",
    }
    twice = httpx.post(url, json={"sha256": DENIED, "reason": "again"}, headers=admin)
    assert (twice.status_code, twice.json()) == (
        409,
        {"error": "conflict", "detail": f"sha256 {DENIED} is already on the deny list"},
    )
    bad = httpx.post(url, json={"sha256": "sha256:" + "a" * 57, "reason": ""}, headers=admin)
    assert bad.status_code == 422
    assert bad.json()["errors"] == [
        {"field": "body.sha256", "message": "'sha256:" + "a" * 57 + "' is not a file sha256 (64 lowercase hex digits)"},
        {"field": "body.reason", "message": "String should have at least 1 character"},
    ]
    by_viewer = httpx.post(url, json={"sha256": "0" * 64, "reason": "x"}, headers=viewer)
    assert by_viewer.status_code == 403
    listed = httpx.get(url, headers=viewer)
    assert [(e["sha256"], e["reason"]) for e in listed.json()["items"]] == [(DENIED, "miner")]
    assert httpx.delete(f"{url}/{DENIED}", headers=viewer).status_code == 403
    assert httpx.delete(f"{url}/{DENIED}", headers=admin).status_code == 200
    missing = httpx.delete(f"{url}/{DENIED}", headers=admin)
    assert (missing.status_code, missing.json()) == (
        404,
        {"error": "not_found", "detail": f"sha256 {DENIED} is not on the deny list"},
    )
    malformed = httpx.delete(f"{url}/nothex", headers=admin)
    assert (malformed.status_code, malformed.json()["detail"]) == (
        422,
        "path.sha256: 'nothex' is not a file sha256 (64 lowercase hex)",
    )
    history = httpx.get(f"{url}/history", headers=viewer).json()["items"]
    assert [(h["sha256"], h["change"], h["reason"], h["by"]) for h in history] == [
        (DENIED, "removed", "", "token:test-admin"),
        (DENIED, "added", "miner", "token:test-admin"),
    ]
    assert httpx.get(url, headers=viewer).json() == {"items": []}


def prevention_record(cid, rule, mode, path, *, operation="exec", sha256=None, container=WEB, revision="r1"):
    return {
        "container_id": container,
        "pod_uid": None,
        "rule": rule,
        "mode": mode,
        "killed": mode == "enforce",
        "path": path,
        "operation": operation,
        "sha256": sha256,
        "upper_layer": rule == "drift" or None,
        "policy_revision": revision,
        "first_seen": "2026-12-04T01:00:00Z",
        "last_seen": "2026-12-04T01:00:01Z",
        "count": 2,
        "samples": [
            {
                "time": "2026-12-04T01:00:00Z",
                "pid": 4242,
                "ppid": 4200,
                "uid": 0,
                "comm": path.rsplit("/", 1)[-1][:15],
                "argv": [path, "--mark"],
                "parents": ["sh", "containerd-shim"],
            }
        ],
    }


def runtime_batch(cid: str, batch_id: str, preventions: list[dict]) -> dict:
    return {
        "batch_id": batch_id,
        "cluster_id": cid,
        "node_name": "node-1",
        "sensor_id": "s-1",
        "seq": 0,
        "window_start": "2026-12-04T01:00:00Z",
        "window_end": "2026-12-04T01:00:05Z",
        "records": [],
        "preventions": preventions,
    }


def test_preventions_become_findings_saying_killed_or_would_have_been_killed(svc):
    cid, cred, sensor = _setup(svc)
    revision = _policy(svc, sensor, node="node-1").json()["revision"]
    batch = runtime_batch(
        cid,
        "b-1",
        [
            prevention_record(cid, "drift", "enforce", "/usr/local/bin/dropper", sha256="9" * 64, revision=revision),
            prevention_record(cid, "tmp_exec", "audit", "/tmp/x", container=DB, revision=revision),
            prevention_record(
                cid, "escape", "audit", "/proc/sys/kernel/core_pattern", operation="openat", revision=revision
            ),
        ],
    )
    resp = httpx.post(f"{svc.url}/api/v1/ingest/runtime", json=batch, headers=_h(sensor))
    assert resp.status_code == 200, resp.text
    assert {k: resp.json()["counts"][k] for k in ("preventions", "preventions_new", "preventions_merged")} == {
        "preventions": 3,
        "preventions_new": 3,
        "preventions_merged": 0,
    }
    # The same again in another batch is merged, not a new finding.
    again = runtime_batch(cid, "b-2", batch["preventions"][:1])
    merged = httpx.post(f"{svc.url}/api/v1/ingest/runtime", json=again, headers=_h(sensor)).json()["counts"]
    assert (merged["preventions_new"], merged["preventions_merged"]) == (0, 1)

    found = sorted(
        svc.list_all("/api/v1/findings", type="prevented_execution,prevented_escape"), key=lambda f: f["subject"]
    )
    assert [(f["type"], f["severity"], f["subject"], f["namespace"], f["workload"]) for f in found] == [
        (
            "prevented_execution",
            "high",
            "killed: exec of /usr/local/bin/dropper (rule drift)",
            "payments",
            {"kind": "Deployment", "name": "web"},
        ),
        (
            "prevented_execution",
            "high",
            "would have been killed (audit): exec of /tmp/x (rule tmp_exec)",
            "payments",
            {"kind": "StatefulSet", "name": "db"},
        ),
        (
            "prevented_escape",
            "critical",
            "would have been killed (audit): openat /proc/sys/kernel/core_pattern (rule escape)",
            "payments",
            {"kind": "Deployment", "name": "web"},
        ),
    ]
    killed = found[0]["evidence"]
    assert killed == {
        "rule": "drift",
        "mode": "enforce",
        "killed": True,
        "outcome": "killed",
        "path": "/usr/local/bin/dropper",
        "sha256": "9" * 64,
        "operation": "exec",
        "upper_layer": True,
        "process": {"comm": "dropper", "argv": ["/usr/local/bin/dropper", "--mark"], "pid": 4242, "uid": 0},
        "parents": ["sh", "containerd-shim"],
        "count": 4,  # two batches, merged
        "first_seen": "2026-12-04T01:00:00+00:00",
        "last_seen": "2026-12-04T01:00:01+00:00",
        "node": "node-1",
        "container_id": WEB,
        "container": "main",
        "pod": "web-1",
        "namespace": "payments",
        "workload": "Deployment/web",
        "image": "registry.example.com/web:1",
        "policy": "web-kill",
        "policy_revision": revision,
    }
    audit = found[1]["evidence"]
    assert (audit["mode"], audit["killed"], audit["outcome"], audit["policy"], audit["pod"]) == (
        "audit",
        False,
        "would have been killed (audit)",
        "everywhere",
        "db-0",
    )


def _beat(svc, sensor: str, cid: str, **fields) -> None:
    body = {"cluster_id": cid, "node_name": "node-1", "interval_seconds": 1, **fields}
    resp = httpx.post(f"{svc.url}/api/v1/ingest/sensor-heartbeat", json=body, headers=_h(sensor))
    assert resp.status_code == 200, resp.text


def _states(svc) -> dict[str, tuple]:
    items = svc.get("/api/v1/policy/runtime/nodes", token=svc.token("viewer", "v")).json()["items"]
    return {n["node_name"]: (n["state"], n["sensor_revision"], n["containers_in_scope"], n["loud"]) for n in items}


def test_node_enforcement_state_from_heartbeats_and_silence(svc):
    cid, cred, sensor = _setup(svc)
    current = _policy(svc, sensor, node="node-1").json()["revision"]
    assert _states(svc) == {"node-1": ("off", None, 2, True), "node-2": ("off", None, 1, True)}
    _beat(svc, sensor, cid, policy_revision=current)
    assert _states(svc)["node-1"] == ("enforcing", current, 2, False)
    _beat(svc, sensor, cid, policy_revision="old-rev")
    assert _states(svc)["node-1"] == ("lagging", "old-rev", 2, True)
    _beat(svc, sensor, cid, policy_revision=current, enforcement_error="bpf_send_signal is not available")
    node = next(n for n in svc.get("/api/v1/policy/runtime/nodes").json()["items"] if n["node_name"] == "node-1")
    assert (node["state"], node["reason"]) == ("off", "the sensor cannot enforce: bpf_send_signal is not available")
    _beat(svc, sensor, cid, policy_revision=current)
    assert _states(svc)["node-1"][0] == "enforcing"
    time.sleep(3.5)  # three missed beats of one second
    node = next(n for n in svc.get("/api/v1/policy/runtime/nodes").json()["items"] if n["node_name"] == "node-1")
    assert (node["state"], node["reason"], node["loud"]) == ("off", "the sensor stopped beating or failed", True)


def test_a_change_written_by_another_replica_reaches_a_waiting_sensor_within_2_s(svc):
    # Written to the store directly, as another replica or the CLI would: no wake-up in this process, the held
    # request sees the store's marker move.
    cid, cred, sensor = _setup(svc)
    held = _policy(svc, sensor, node="node-1").json()
    results: list = []
    thread = _wait_in_thread(svc, sensor, held["revision"], results)
    flipped = parse_enforcement({"policies": [POLICY["policies"][0]]}, "test")
    changed_at = time.monotonic()
    with svc.engine.begin() as conn:
        replace_enforcement(conn, flipped, "token:other-replica")
    thread.join(10)
    assert results[0][0] - changed_at < 2.0
    assert [c["container_id"] for c in results[0][1].json()["containers"]] == [WEB]


def test_the_nodes_listing_carries_the_sensor_policy_revision_and_enforcement_error(svc):
    cid, cred, sensor = _setup(svc)
    _beat(svc, sensor, cid, policy_revision="abc123", enforcement_error="BPF maps full")
    node = next(n for n in svc.list_all("/api/v1/nodes", cluster=cid) if n["name"] == "node-1")
    assert (node["sensor"]["policy_revision"], node["sensor"]["enforcement_error"]) == ("abc123", "BPF maps full")
    other = next(n for n in svc.list_all("/api/v1/nodes", cluster=cid) if n["name"] == "node-2")
    assert (other["sensor"]["policy_revision"], other["sensor"]["enforcement_error"]) == (None, None)
