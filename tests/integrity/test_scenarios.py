"""The acceptance scenarios of issue 4, end to end: a real docker-registry, images pushed by the tests,
inventory posted to a real service, evaluation through POST /api/v1/integrity/evaluate, verdicts read
back through GET /api/v1/findings and GET /api/v1/images/{id}/integrity."""

from __future__ import annotations

import logging
import time
from datetime import datetime

import pytest

from vigil.devtools.oci import delete_manifest, push
from vigil.service.logs import JsonFormatter

from .integrity_helpers import (
    LABELS,
    USERS,
    WRONG_PASSWORD,
    client_for,
    evaluate,
    evaluator_for,
    findings,
    image,
    image_pk,
    integrity_of,
    open_findings,
    post,
    put_policy,
    registry_config,
    snapshot,
    two_platform,
)


@pytest.fixture
def anon(registry, service):
    """(service, registry host, a pushing client); the registry is trusted globally."""
    config = registry_config(registry.host)
    evaluator_for(service, config)
    assert put_policy(service, {"trusted": [registry.host]}).status_code == 200
    with client_for(config) as pusher:
        yield service, registry.host, pusher


def _rule(host: str) -> str:
    return f"trusted {host} (global)"


def test_1_running_digest_equals_tag_digest_no_finding_and_provenance(anon, request):
    svc, host, pusher = anon
    repo = f"{host}/s1/{request.node.name[-6:]}"
    img = image("s1", labels=LABELS)
    push(pusher, f"{repo}:1.0", img)
    cid, cred = svc.register("c1")
    post(svc, cred, snapshot(cid, [("web", f"{repo}:1.0", img.digest)]))

    report = evaluate(svc)
    assert report["statuses"] == {"verified": 1}
    assert findings(svc) == []
    integrity = integrity_of(svc, image_pk(svc, cid, "web"))
    assert integrity["status"] == "verified"
    assert integrity["findings"] == []
    assert integrity["evidence"]["runtime_digest"] == img.digest
    assert integrity["evidence"]["registry_digest"] == img.digest
    assert integrity["evidence"]["rule"] == _rule(host)
    assert integrity["checked_at"] is not None
    assert integrity["provenance"] == {
        "source": "https://git.example.com/team/app",
        "revision": "3f2a9c1d",
        "created": "2024-05-01T12:00:00Z",
        "authors": "Team App <app@example.com>",
        "version": "1.4.2",
        "labels": LABELS,
    }


def test_2_tag_moved_then_pushed_back_resolves(anon):
    svc, host, pusher = anon
    repo = f"{host}/s2/app"
    old, new = image("s2-old"), image("s2-new")
    push(pusher, f"{repo}:1.0", old)
    cid, cred = svc.register("c2")
    post(svc, cred, snapshot(cid, [("web", f"{repo}:1.0", old.digest), ("api", f"{repo}:1.0", old.digest)]))
    assert evaluate(svc)["statuses"] == {"verified": 1}  # one image, two workloads

    push(pusher, f"{repo}:1.0", new)  # the mutable tag is overwritten; old still runs
    evaluate(svc)
    found = sorted(open_findings(svc), key=lambda f: f["workload"]["name"])
    assert [(f["type"], f["severity"], f["workload"]["name"], f["namespace"], f["cluster_id"]) for f in found] == [
        ("tag_moved", "medium", "api", "shop", cid),
        ("tag_moved", "medium", "web", "shop", cid),
    ]
    ev = found[0]["evidence"]
    assert ev["runtime_digest"] == old.digest
    assert ev["registry_digest"] == new.digest
    assert ev["repository"] == repo
    assert ev["tag"] == "1.0"
    assert ev["rule"] == _rule(host)
    assert ev["since"] and ev["since"] >= found[0]["first_seen_at"][:19]
    pk = image_pk(svc, cid, "web")
    assert found[0]["image_pk"] == pk
    assert integrity_of(svc, pk)["status"] == "violation"
    assert integrity_of(svc, pk)["findings"] == ["tag_moved"]
    since = ev["since"]
    evaluate(svc)  # still moved: same findings, same "since"
    again = open_findings(svc)
    assert {f["id"] for f in again} == {f["id"] for f in found}
    assert {f["evidence"]["since"] for f in again} == {since}

    push(pusher, f"{repo}:1.0", old)  # pushed back: the condition ends
    evaluate(svc)
    assert open_findings(svc) == []
    resolved = findings(svc, status="resolved")
    assert len(resolved) == 2
    detail = svc.get(f"/api/v1/findings/{resolved[0]['id']}").json()
    assert [(h["from_status"], h["to_status"], h["reason"]) for h in detail["history"]] == [
        (None, "open", "observed"),
        ("open", "resolved", "condition ended: the registry confirms the running image"),
    ]
    assert integrity_of(svc, pk)["status"] == "verified"


def test_3_digest_never_pushed_is_digest_mismatch(anon):
    svc, host, pusher = anon
    repo = f"{host}/s3/app"
    pushed, rogue = image("s3"), image("s3-rogue")
    push(pusher, f"{repo}:2.1", pushed)
    cid, cred = svc.register("c3")
    post(svc, cred, snapshot(cid, [("web", f"{repo}:2.1", rogue.digest)]))
    evaluate(svc)
    [f] = open_findings(svc)
    assert (f["type"], f["severity"]) == ("digest_mismatch", "critical")
    assert f["workload"] == {"kind": "Deployment", "name": "web"}
    ev = f["evidence"]
    assert (ev["runtime_digest"], ev["registry_digest"], ev["repository"]) == (rogue.digest, pushed.digest, repo)
    assert ev["registry_answer"].startswith(
        f"registry {host}, repository s3/app, reference {rogue.digest}: manifest_unknown"
    )
    assert f["subject"] == f"shop/Deployment/web runs {repo}:2.1@{rogue.digest}"


def test_4_manifest_deleted_is_artifact_missing(anon):
    svc, host, pusher = anon
    repo = f"{host}/s4/app"
    img = image("s4")
    push(pusher, f"{repo}:3.0", img)
    cid, cred = svc.register("c4")
    post(svc, cred, snapshot(cid, [("web", f"{repo}:3.0", img.digest)]))
    assert evaluate(svc)["statuses"] == {"verified": 1}

    delete_manifest(pusher, repo, img.digest)
    evaluate(svc)
    [f] = open_findings(svc)
    assert (f["type"], f["severity"]) == ("artifact_missing", "high")
    ev = f["evidence"]
    assert ev["missing"] == "tag"
    assert ev["runtime_digest"] == img.digest
    assert ev["runtime_digest_present"] is False
    assert ev["registry_answer"].startswith(
        f"registry {host}, repository s4/app, reference 3.0: tag_unknown: registry answered 404"
    )

    # the image stops running: the finding resolves, with history
    post(svc, cred, snapshot(cid, []))
    evaluate(svc)
    assert open_findings(svc) == []
    detail = svc.get(f"/api/v1/findings/{f['id']}").json()
    assert detail["status"] == "resolved"
    assert detail["history"][-1]["reason"] == "the workload no longer runs this image"


def test_5_untrusted_registry(anon, registry):
    svc, host, pusher = anon
    assert put_policy(svc, {"trusted": [f"{host}/team"]}).status_code == 200
    miner = image("s5-miner")
    push(pusher, f"{host}/evil/miner:1.0", miner)
    cid, cred = svc.register("c5")
    post(
        svc,
        cred,
        snapshot(
            cid,
            [
                ("web", "quay.io/evil/miner:1.0", miner.digest),
                ("job", f"{host}/evil/miner:1.0", miner.digest),
                ("ok", f"{host}/team/pending:1", None),
            ],
        ),
    )
    report = evaluate(svc)
    assert report["statuses"] == {"untrusted": 2, "pending": 1}
    assert report["requests"] == 0  # an untrusted registry is never asked, a digest-less image waits
    found = {f["workload"]["name"]: f for f in open_findings(svc)}
    assert sorted((f["type"], f["severity"], name) for name, f in found.items()) == [
        ("untrusted_registry", "high", "job"),
        ("untrusted_registry", "high", "web"),
    ]
    assert found["web"]["evidence"] == {
        "image": f"quay.io/evil/miner:1.0@{miner.digest}",
        "registry": "quay.io",
        "checked_against": "quay.io/evil/miner",
        "rule": "no trusted pattern matches quay.io/evil/miner",
        "trusted_patterns": [f"trusted {host}/team (global)"],
        "mirror": None,
    }
    assert found["job"]["evidence"]["rule"] == f"no trusted pattern matches {host}/evil/miner"

    # trusting the path for this cluster ends that condition (the other registry stays untrusted)
    doc = {"trusted": [f"{host}/team"], "clusters": {"c5": {"trusted": [f"{host}/evil"]}}}
    assert put_policy(svc, doc).status_code == 200
    report = evaluate(svc, all=False)  # the policy revision changed: due without forcing
    assert report["evaluated"] == 3
    assert report["statuses"] == {"untrusted": 1, "verified": 1, "pending": 1}
    assert [f["workload"]["name"] for f in open_findings(svc)] == ["web"]
    [resolved] = findings(svc, status="resolved")
    assert resolved["workload"]["name"] == "job"
    assert resolved["status_reason"] == "condition ended: the registry confirms the running image"
    ev = integrity_of(svc, image_pk(svc, cid, "job"))["evidence"]
    assert ev["rule"] == f"trusted {host}/evil (cluster c5)"


def test_6_registry_stopped_is_unknown_then_right_verdict(anon, registry, caplog):
    svc, host, pusher = anon
    repo = f"{host}/s6/app"
    moved_from, now_at, rogue = image("s6-a"), image("s6-b"), image("s6-rogue")
    push(pusher, f"{repo}:1.0", moved_from)
    push(pusher, f"{repo}:1.0", now_at)
    cid, cred = svc.register("c6")
    post(svc, cred, snapshot(cid, [("moved", f"{repo}:1.0", moved_from.digest)]))
    evaluate(svc)
    [moved] = open_findings(svc)
    assert moved["type"] == "tag_moved"

    evaluator_for(svc, registry_config(host), retry_base=0.5)
    registry.stop()
    try:
        post(
            svc,
            cred,
            snapshot(cid, [("moved", f"{repo}:1.0", moved_from.digest), ("rogue", f"{repo}:1.0", rogue.digest)]),
        )
        with caplog.at_level(logging.WARNING):
            report = evaluate(svc)
        assert report["statuses"] == {"unknown": 2}
        # never a violation: nothing new opens, and what was open stays open (we do not know it ended)
        assert [(f["id"], f["type"]) for f in open_findings(svc)] == [(moved["id"], "tag_moved")]
        integrity = integrity_of(svc, image_pk(svc, cid, "rogue"))
        assert integrity["status"] == "unknown"
        assert integrity["evidence"]["error_kind"] == "unreachable"
        assert integrity["evidence"]["registry_answer"].startswith(
            f"registry {host}, repository s6/app, reference 1.0: "
            # a GET: the rogue digest's provenance is not stored, so its manifest is wanted next
            f"GET http://{host}/v2/s6/app/manifests/1.0 connection failed"
        )
        # retried with backoff, sooner than the reverify interval
        [state] = integrity["clusters"]
        gap = datetime.fromisoformat(state["next_check_at"]) - datetime.fromisoformat(state["checked_at"])
        assert gap.total_seconds() == pytest.approx(0.5)
        assert "registry could not answer; integrity unknown" in caplog.text
    finally:
        registry.start()
    time.sleep(0.6)
    report = evaluate(svc, all=False)  # the unknown ones are due again (retry), without forcing
    assert report["statuses"] == {"violation": 2}
    assert sorted((f["type"], f["workload"]["name"]) for f in open_findings(svc)) == [
        ("digest_mismatch", "rogue"),
        ("tag_moved", "moved"),
    ]


def test_7_platform_manifest_of_multi_platform_tag_is_verified(anon):
    svc, host, pusher = anon
    repo = f"{host}/s7/multi"
    index = two_platform("s7")
    push(pusher, f"{repo}:1.0", index)
    arm = index.images[1].digest
    cid, cred = svc.register("c7")
    post(
        svc,
        cred,
        snapshot(
            cid,
            [
                ("arm", f"{repo}:1.0", arm),
                ("amd", f"{repo}:1.0", index.images[0].digest),
                ("idx", f"{repo}:1.0", index.digest),
            ],
        ),
    )
    assert evaluate(svc)["statuses"] == {"verified": 3}
    assert findings(svc) == []
    ev = integrity_of(svc, image_pk(svc, cid, "arm"))["evidence"]
    assert (ev["runtime_digest"], ev["registry_digest"]) == (arm, index.digest)
    assert ev["same_artifact"] == "the running digest is a platform manifest of the tag's index"


def test_8_mirror_rule_checks_docker_hub_names_through_the_local_registry(anon):
    svc, host, pusher = anon
    hub = image("s8-nginx")
    push(pusher, f"{host}/hub/library/nginx:1.25", hub)
    assert (
        put_policy(
            svc, {"trusted": [f"{host}/hub"], "mirrors": [{"source": "docker.io", "mirror": f"{host}/hub"}]}
        ).status_code
        == 200
    )
    cid, cred = svc.register("c8")
    rogue = image("s8-rogue")
    post(
        svc,
        cred,
        snapshot(cid, [("web", "nginx:1.25", hub.digest), ("bad", "docker.io/library/nginx:1.25", rogue.digest)]),
    )
    report = evaluate(svc)
    assert report["statuses"] == {"verified": 1, "violation": 1}
    ev = integrity_of(svc, image_pk(svc, cid, "web"))["evidence"]
    assert ev["image"] == f"docker.io/library/nginx:1.25@{hub.digest}"
    assert ev["checked_against"] == f"{host}/hub/library/nginx"
    assert ev["mirror"] == f"mirror docker.io -> {host}/hub (global)"
    assert ev["rule"] == f"trusted {host}/hub (global)"
    [f] = open_findings(svc)
    assert (f["type"], f["workload"]["name"]) == ("digest_mismatch", "bad")
    assert f["evidence"]["repository"] == f"{host}/hub/library/nginx"
    assert f["evidence"]["registry_digest"] == hub.digest


def test_9_wrong_credentials_unknown_with_auth_error_and_no_secret_in_logs(auth_registry, service, caplog, capfd):
    svc, host = service, auth_registry.host
    good = registry_config(host, username="alice", password=USERS["alice"])
    img = image("s9")
    with client_for(good) as pusher:
        push(pusher, f"{host}/s9/app:1.0", img)
    assert put_policy(svc, {"trusted": [host]}).status_code == 200
    cid, cred = svc.register("c9")
    post(svc, cred, snapshot(cid, [("web", f"{host}/s9/app:1.0", img.digest)]))

    evaluator_for(svc, registry_config(host, username="alice", password=WRONG_PASSWORD))
    with caplog.at_level(logging.DEBUG):
        report = evaluate(svc)
    assert report["statuses"] == {"unknown": 1}
    assert findings(svc) == []
    integrity = integrity_of(svc, image_pk(svc, cid, "web"))
    assert integrity["status"] == "unknown"
    assert integrity["evidence"]["error_kind"] == "auth"
    assert integrity["evidence"]["registry_answer"] == (
        f"registry {host}, repository s9/app, reference 1.0: credentials for user 'alice' were refused (401)"
    )
    out, errs = capfd.readouterr()
    # the service's log lines as it writes them (JSON with every extra key), plus anything printed
    lines = "\n".join(JsonFormatter().format(r) for r in caplog.records)
    everything = lines + out + errs + str(integrity)
    assert "credentials for user 'alice' were refused (401)" in lines
    assert WRONG_PASSWORD not in everything
    assert USERS["alice"] not in everything

    # with the right credentials the same image verifies (htpasswd basic auth end to end)
    evaluator_for(svc, good)
    assert evaluate(svc)["statuses"] == {"verified": 1}


def test_request_budget_per_reverify_interval(anon):
    svc, host, pusher = anon
    imgs = [image(f"budget-{i}") for i in range(3)]
    for i, img in enumerate(imgs):
        push(pusher, f"{host}/budget/app:{i}", img)
    cid, cred = svc.register("budget")
    post(svc, cred, snapshot(cid, [(f"w{i}", f"{host}/budget/app:{i}", img.digest) for i, img in enumerate(imgs)]))
    evaluator = svc.app.state.workers.integrity
    cold = evaluator.run_pass()
    # a GET of each tag (its manifest is read next for provenance), the verdicts committed ...
    assert (cold.evaluated, cold.requests, cold.provenance_due) == (3, 3, 3)
    assert evaluator.client.stats.snapshot()["by_kind"] == {"manifest_get": 3}
    # ... then each config blob, by the provenance recorder after the pass
    assert evaluator.provenance.wait(30)
    assert (evaluator.provenance.stats.requests, evaluator.provenance.stats.recorded) == (3, 3)
    assert evaluator.client.stats.snapshot()["by_kind"] == {"manifest_get": 3, "blob": 3}
    warm = evaluator.run_pass(force=True)
    assert (warm.evaluated, warm.requests) == (3, 0)  # tag answers cached within the interval
    idle = evaluator.run_pass()
    assert (idle.due, idle.requests) == (0, 0)  # nothing due before the interval ends
    reverify = evaluator.run_pass(force=True, refresh=True)
    assert (reverify.evaluated, reverify.requests) == (3, 3)  # one HEAD per image per interval
