"""The service's side of admission control: the admission credential and what it may do, the decisions the
webhooks send back (kept once, listed, raising findings), and the feed they decide from."""

from __future__ import annotations

import contextlib
import queue
import socket
import threading
import time
from datetime import UTC, datetime, timedelta

import httpx
import orjson
import pytest
from sqlalchemy import select

from vigil.clock import utcnow
from vigil.devtools.inventory import synthetic_snapshot
from vigil.devtools.service import LiveService
from vigil.policy.enforcement import EnforcementPolicy, parse_enforcement
from vigil.service.api import admission as admission_api
from vigil.service.api.enforcement import EnforcementDocument
from vigil.service.store import admission as admission_store
from vigil.service.store import findings as finding_store
from vigil.service.store.contents import package_key
from vigil.service.store.schema import image_integrity, image_packages, image_scans, image_vulnerabilities, images
from vigil.wire.admission import FEED_EVENT, FEED_MEDIA_TYPE

from .helpers import post_batch

AT = "2026-12-03T10:00:00Z"


@pytest.fixture
def svc(tmp_path):
    service = LiveService(tmp_path / "data").start()
    yield service
    service.stop()


def _h(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def _post(svc, token: str, path: str, body) -> httpx.Response:
    return httpx.post(f"{svc.url}{path}", json=body, headers=_h(token), timeout=30)


def _credential(svc, cluster_id: str, token: str | None = None, **body) -> httpx.Response:
    return _post(svc, token or svc.admin_token, f"/api/v1/clusters/{cluster_id}/admission-credential", body)


def _violation(policy="prod", mode="enforce", rule="untrusted_registry", image="evil.example/x:1") -> dict:
    return {
        "policy": policy,
        "mode": mode,
        "rule": rule,
        "image": image,
        "message": f'policy "{policy}" rule {rule}: image {image}: registry evil.example is not trusted '
        "(consulted: registry.example.com)",
        "evidence": {"checked_against": image.split(":")[0]},
    }


def _decision(uid: str, outcome: str, *, namespace="shop", name="web", violations=(), **more) -> dict:
    return {
        "uid": uid,
        "at": AT,
        "operation": "CREATE",
        "kind": "Deployment",
        "namespace": namespace,
        "name": name,
        "user": "alice@example.com",
        "outcome": outcome,
        "images": ["evil.example/x:1"],
        "violations": list(violations),
        "enforcement_revision": "abc",
        **more,
    }


def _batch(cluster_id: str, batch_id: str, decisions: list[dict]) -> dict:
    return {"batch_id": batch_id, "cluster_id": cluster_id, "decisions": decisions}


def _decisions_path(cluster_id: str) -> str:
    return f"/api/v1/clusters/{cluster_id}/admission/decisions"


# -- the credential -------------------------------------------------------------------------------


def test_admins_and_the_clusters_own_credential_get_an_admission_credential(svc):
    cid, cluster = svc.register("prod")
    other_id, other = svc.register("dev")
    by_admin = _credential(svc, cid)
    assert by_admin.status_code == 200, by_admin.text
    body = by_admin.json()
    assert set(body) == {"cluster_id", "id", "credential", "previous_valid_until"}
    assert body["cluster_id"] == cid and body["credential"].startswith("vgl_a_")
    by_cluster = _credential(svc, cid, cluster, overlap_seconds=120)
    assert by_cluster.status_code == 200, by_cluster.text
    refused = _credential(svc, cid, other)
    assert refused.status_code == 403
    assert refused.json()["detail"] == (
        f"this credential is scoped to cluster {other_id}; it cannot act for cluster {cid}"
    )
    viewer = _credential(svc, cid, svc.token("viewer"))
    assert viewer.status_code == 403
    assert _credential(svc, "no-such-cluster").status_code == 404
    # The earlier credential keeps working for the overlap, then stops; both are listed as the cluster's.
    first, second = body["credential"], by_cluster.json()["credential"]
    for token in (first, second):
        assert _post(svc, token, _decisions_path(cid), _batch(cid, f"b-{token[-4:]}", [])).status_code == 200
    kinds = [(c["kind"], c["state"]) for c in svc.get(f"/api/v1/clusters/{cid}/credentials").json()["items"]]
    assert kinds == [("cluster", "active"), ("admission", "expiring"), ("admission", "active")]


def test_an_admission_credential_only_feeds_and_records_its_own_cluster(svc):
    cid, _ = svc.register("prod")
    other_id, _ = svc.register("dev")
    token = _credential(svc, cid).json()["credential"]
    scoped = f"this credential is scoped to cluster {cid}; it cannot act for cluster {other_id}"
    feed = svc.get(f"/api/v1/clusters/{other_id}/admission/feed", token)
    assert feed.status_code == 403 and feed.json()["detail"] == scoped
    post = _post(svc, token, _decisions_path(other_id), _batch(other_id, "b1", []))
    assert post.status_code == 403 and post.json()["detail"] == scoped
    for path in (
        "/api/v1/admission/decisions",
        "/api/v1/policy/enforcement",
        "/api/v1/policy/trust",
        "/api/v1/findings",
        "/api/v1/clusters",
    ):
        resp = svc.get(path, token)
        assert resp.status_code == 403, path
        assert resp.json()["detail"].startswith("a admission token cannot do this"), path
    inventory = _post(svc, token, "/api/v1/ingest/heartbeat", {"cluster_id": cid, "version": "x"})
    assert inventory.status_code == 403
    assert _credential(svc, cid, token).status_code == 403  # it cannot mint another
    # Nor do other kinds of credential read the feed or post decisions.
    for other_token in (svc.admin_token, svc.token("viewer")):
        assert svc.get(f"/api/v1/clusters/{cid}/admission/feed", other_token).status_code == 403
        assert _post(svc, other_token, _decisions_path(cid), _batch(cid, "b2", [])).status_code == 403


# -- decisions ------------------------------------------------------------------------------------


def test_decisions_are_kept_once_and_listed_newest_first_with_filters(service_on):
    svc = service_on
    cid, _ = svc.register("prod")
    other_id, _ = svc.register("dev")
    token = _credential(svc, cid).json()["credential"]
    other_token = _credential(svc, other_id).json()["credential"]
    batch = _batch(
        cid,
        "adm-1",
        [
            _decision("u1", "denied", violations=[_violation()]),
            _decision("u2", "warned", namespace="web", violations=[_violation(mode="warn")]),
            _decision("u3", "exempt", namespace="kube-system", images=[]),
        ],
    )
    first = _post(svc, token, _decisions_path(cid), batch)
    assert first.status_code == 200, first.text
    assert first.json() == {"batch_id": "adm-1", "accepted": 3, "duplicate": False}
    again = _post(svc, token, _decisions_path(cid), batch)
    assert again.json() == {"batch_id": "adm-1", "accepted": 0, "duplicate": True}
    # A decision sent again in another batch (a webhook retrying after a lost answer) is kept once.
    retried = _post(svc, token, _decisions_path(cid), _batch(cid, "adm-2", [_decision("u1", "denied")]))
    assert retried.json() == {"batch_id": "adm-2", "accepted": 0, "duplicate": False}
    _post(svc, other_token, _decisions_path(other_id), _batch(other_id, "adm-1", [_decision("u1", "audited")]))

    viewer = svc.token("viewer")
    listed = svc.get("/api/v1/admission/decisions", viewer)
    assert listed.status_code == 200, listed.text
    items = listed.json()["items"]
    assert [(i["cluster_id"], i["uid"], i["outcome"]) for i in items] == [
        (other_id, "u1", "audited"),
        (cid, "u3", "exempt"),
        (cid, "u2", "warned"),
        (cid, "u1", "denied"),
    ]
    denied = items[-1]
    assert denied == {
        **_decision("u1", "denied", violations=[_violation()]),
        "at": "2026-12-03T10:00:00Z",
        "warnings": [],
        "break_glass": None,
        "dry_run": False,
        "id": denied["id"],
        "cluster_id": cid,
        "received_at": denied["received_at"],
    }

    def uids(**params) -> list[str]:
        resp = svc.get("/api/v1/admission/decisions", viewer, **params)
        assert resp.status_code == 200, resp.text
        return [i["uid"] for i in resp.json()["items"]]

    assert uids(cluster="prod") == ["u3", "u2", "u1"]
    assert uids(cluster=cid, namespace="web") == ["u2"]
    assert uids(outcome="denied") == ["u1"]
    assert uids(cluster="prod", outcome="audited") == []
    page = svc.get("/api/v1/admission/decisions", viewer, limit=2).json()
    assert [i["uid"] for i in page["items"]] == ["u1", "u3"] and page["next"]
    rest = svc.get("/api/v1/admission/decisions", viewer, limit=2, after=page["next"]).json()
    assert [i["uid"] for i in rest["items"]] == ["u2", "u1"] and rest["next"] is None
    bad = svc.get("/api/v1/admission/decisions", viewer, outcome="blocked")
    assert bad.status_code == 422
    assert svc.get("/api/v1/admission/decisions", viewer, after="bm90LWEtY3Vyc29y").status_code == 400
    unknown = svc.get("/api/v1/admission/decisions", viewer, cluster="nope")
    assert unknown.status_code == 422 and unknown.json()["detail"].startswith("query.cluster:")


def test_a_batch_for_another_cluster_than_its_path_is_refused(svc):
    cid, _ = svc.register("prod")
    token = _credential(svc, cid).json()["credential"]
    resp = _post(svc, token, _decisions_path(cid), _batch("someone-else", "b1", []))
    assert resp.status_code == 422
    assert resp.json() == {
        "error": "invalid_request",
        "detail": f"body.cluster_id: 'someone-else' is not the path's cluster {cid!r}",
    }
    bad = _post(svc, token, _decisions_path(cid), _batch(cid, "b1", [_decision("u1", "rejected")]))
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "body.decisions[0].outcome"


def test_denials_warnings_audits_and_break_glass_uses_raise_findings(service_on):
    svc = service_on
    cid, _ = svc.register("prod")
    token = _credential(svc, cid).json()["credential"]
    decisions = [
        _decision("d1", "denied", violations=[_violation(), _violation(image="evil.example/y:2")]),
        _decision("w1", "warned", name="api", violations=[_violation(mode="warn", rule="unscanned")]),
        _decision("a1", "audited", name="batch", violations=[_violation(mode="audit")]),
        _decision("b1", "break_glass", name="hotfix", violations=[_violation()], break_glass="INC-42 outage"),
        _decision("x1", "allowed", name="fine", violations=[]),
        _decision("x2", "exempt", namespace="kube-system", name="dns"),
        _decision("dry", "denied", name="dry", violations=[_violation()], dry_run=True),
    ]
    assert _post(svc, token, _decisions_path(cid), _batch(cid, "f1", decisions)).json()["accepted"] == 7
    found = svc.get("/api/v1/findings", cluster=cid, limit=50).json()["items"]
    by_type = {f["type"]: f for f in found}
    assert sorted(by_type) == ["admission_audited", "admission_denied", "admission_warned", "break_glass_used"]
    assert len(found) == 4  # allowed, exempt and dry-run decisions raise none
    assert {t: by_type[t]["severity"] for t in by_type} == {
        "admission_denied": "high",
        "admission_warned": "medium",
        "admission_audited": "low",
        "break_glass_used": "high",
    }
    denied = svc.get(f"/api/v1/findings/{by_type['admission_denied']['id']}").json()
    assert denied["subject"] == f"shop/Deployment/web: {_violation()['message']} (and 1 more)"
    assert denied["evidence"] == {
        **decisions[0],
        "at": "2026-12-03T10:00:00Z",
        "warnings": [],
        "break_glass": None,
        "dry_run": False,
    }
    assert denied["namespace"] == "shop" and denied["status"] == "open"
    # The opening event is what alert outputs tail (finding_events), like any other finding's.
    opened = [("open", "admission", "observed")]
    assert [(e["to_status"], e["actor"], e["reason"]) for e in denied["history"]] == opened
    glass = by_type["break_glass_used"]
    assert glass["subject"] == "shop/Deployment/hotfix: break-glass by alice@example.com: INC-42 outage"
    # The same object refused again for the same reasons is the same finding, not a second one.
    _post(svc, token, _decisions_path(cid), _batch(cid, "f2", [{**decisions[0], "uid": "d2"}]))
    again = svc.get("/api/v1/findings", cluster=cid, type="admission_denied").json()["items"]
    assert [f["id"] for f in again] == [denied["id"]]
    refreshed = svc.get(f"/api/v1/findings/{denied['id']}").json()
    assert refreshed["evidence"]["uid"] == "d2"
    assert [(e["to_status"], e["actor"], e["reason"]) for e in refreshed["history"]] == opened  # alerted once


# -- the feed -------------------------------------------------------------------------------------


class Feed:
    """An open feed, read line by line on a thread so a test waits for an event with a deadline."""

    def __init__(self, svc, cluster_id: str, token: str) -> None:
        self.lines: queue.Queue = queue.Queue()
        self._client = httpx.Client(timeout=httpx.Timeout(30, read=60))
        self._stream = self._client.stream(
            "GET", f"{svc.url}/api/v1/clusters/{cluster_id}/admission/feed", headers=_h(token)
        )
        self.response = self._stream.__enter__()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for line in self.response.iter_lines():
                if line:
                    self.lines.put((time.monotonic(), orjson.loads(line)))
        except httpx.HTTPError:
            pass

    def next(self, kind: str, within: float) -> tuple[float, dict]:
        deadline = time.monotonic() + within
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {kind} event within {within}s")
            try:
                at, event = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            FEED_EVENT.validate_python(event)  # every line is a FeedEvent of the contract
            if event["kind"] == kind:
                return at, event

    def close(self) -> None:
        # Shut the socket under the reading thread: closing the response alone leaves that thread's read
        # (and so the connection, and the server's stream) open until the next line arrives.
        sock = self.response.extensions["network_stream"].get_extra_info("socket")
        with contextlib.suppress(OSError):  # already closed by the service
            sock.shutdown(socket.SHUT_RDWR)
        self._thread.join(timeout=5)
        self._stream.__exit__(None, None, None)
        self._client.close()


@pytest.fixture
def feed_cluster(service_on):
    svc = service_on
    cid, cluster = svc.register("prod")
    token = _credential(svc, cid).json()["credential"]
    feeds: list[Feed] = []

    def open_feed() -> Feed:
        feeds.append(Feed(svc, cid, token))
        return feeds[-1]

    yield cid, cluster, open_feed
    for f in feeds:
        f.close()


def test_the_feed_starts_with_a_snapshot_of_both_policies_and_the_facts(service_on, feed_cluster):
    svc = service_on
    cid, cluster, open_feed = feed_cluster
    svc.trust_registry("registry.example.com/team")
    snapshot = synthetic_snapshot(cid, nodes=1, pods=2, images=2)
    assert post_batch(svc, cluster, snapshot).status_code == 200
    # Digests of running containers (a terminated init container's image is not asked about).
    digests = sorted({c.image_digest for p in snapshot.pods for c in p.containers if c.state == "running"})
    feed = open_feed()
    assert feed.response.status_code == 200
    assert feed.response.headers["content-type"] == FEED_MEDIA_TYPE
    _, first = feed.next("snapshot", 5)
    default = EnforcementPolicy.model_validate({})
    trust = svc.get("/api/v1/policy/trust").json()
    assert first == {
        "kind": "snapshot",
        "cluster_name": "prod",
        "enforcement": default.model_dump(mode="json"),
        "enforcement_revision": default.revision,
        "trust": {k: v for k, v in trust.items() if k != "revision"},
        "trust_revision": trust["revision"],
        "digests": [
            {
                "digest": d,
                "repositories": [],
                "scanned": False,
                "malicious_packages": [],
                "vulnerabilities": [],
                "signatures": None,
            }
            for d in digests
        ],
        "tags": [],
    }
    assert first["trust"]["trusted"] == ["registry.example.com/team"]


def test_a_policy_change_reaches_an_open_feed_within_two_seconds(service_on, feed_cluster):
    svc = service_on
    _, _, open_feed = feed_cluster
    feed = open_feed()
    feed.next("snapshot", 5)
    policy = {"policies": [{"name": "prod", "mode": "warn"}]}
    sent = time.monotonic()
    put = httpx.put(f"{svc.url}/api/v1/policy/enforcement", json=policy, headers=_h(svc.admin_token))
    assert put.status_code == 200, put.text
    at, event = feed.next("enforcement", 2)
    assert at - sent < 2
    expected = parse_enforcement(policy, "test")
    assert event == {
        "kind": "enforcement",
        "enforcement": expected.model_dump(mode="json"),
        "enforcement_revision": expected.revision,
    }
    # A trust change made behind the API's back (another replica, the CLI) arrives by the revision check.
    sent = time.monotonic()
    svc.trust_registry("registry.example.com")
    at, event = feed.next("trust", 3)
    assert at - sent < 2
    assert event["trust"]["trusted"] == ["registry.example.com"]
    assert event["trust_revision"] == svc.get("/api/v1/policy/trust").json()["revision"]


def test_scan_results_arrive_as_facts_and_silence_as_pings(service_on, feed_cluster, monkeypatch):
    svc = service_on
    cid, cluster, open_feed = feed_cluster
    monkeypatch.setattr(admission_api, "PING_SECONDS", 0.5)
    snapshot = synthetic_snapshot(cid, nodes=1, pods=1, images=1)
    post_batch(svc, cluster, snapshot)
    digest = next(c.image_digest for p in snapshot.pods for c in p.containers if c.image_digest)
    feed = open_feed()
    feed.next("snapshot", 5)
    _, ping = feed.next("ping", 3)
    assert datetime.fromisoformat(ping["at"]) > utcnow() - timedelta(seconds=10)
    now = datetime.now(UTC)
    with svc.engine.begin() as conn:
        conn.execute(
            image_scans.insert().values(
                digest=digest, status="done", platform="linux/amd64", attempts=1, enqueued_at=now,
                finished_at=now, warnings=[], match_warnings=[],
            )
        )  # fmt: skip
        pkg = conn.execute(
            image_packages.insert().values(
                digest=digest, type="pypi", name="requests", version="2.0.0", purl="pkg:pypi/requests@2.0.0",
                cataloger="python", found_in="/site-packages", files=[], details={},
            )
        ).inserted_primary_key[0]  # fmt: skip
        evil = conn.execute(
            image_packages.insert().values(
                digest=digest, type="npm", name="evil-pkg", version="1.0.0", purl="pkg:npm/evil-pkg@1.0.0",
                cataloger="javascript", found_in="/app", files=[], details={},
            )
        ).inserted_primary_key[0]  # fmt: skip
        for package_id, vuln, severity, fixed, malicious in (
            (pkg, "CVE-2024-0001", "high", ["2.31.0"], False),
            (pkg, "CVE-2024-0002", "low", [], False),
            (evil, "MAL-2024-1", "critical", [], True),
        ):
            conn.execute(
                image_vulnerabilities.insert().values(
                    digest=digest, package_id=package_id, vuln_id=vuln, key_id=vuln, advisory_ids=[vuln],
                    aliases=[], severity=severity, fixed_versions=fixed, malicious=malicious, summary="", links=[],
                )
            )  # fmt: skip
    sent = time.monotonic()
    at, facts = feed.next("facts", 4)
    assert at - sent < 3
    assert facts == {
        "kind": "facts",
        "digests": [
            {
                "digest": digest,
                "repositories": [],
                "scanned": True,
                "malicious_packages": ["evil-pkg"],
                "vulnerabilities": [
                    {"advisory_id": "CVE-2024-0001", "package": "requests", "severity": "high", "fixable": True},
                    {"advisory_id": "CVE-2024-0002", "package": "requests", "severity": "low", "fixable": False},
                ],
                "signatures": None,
            }
        ],
        "tags": [],
    }
    # A vulnerability whose findings an admin suppressed wherever the digest runs is accepted: not a fact.
    with svc.engine.begin() as conn:
        pk = conn.execute(select(images.c.id).where(images.c.digest == digest)).scalars().first()
        low = f"{package_key('pypi', 'requests', '/site-packages')}:CVE-2024-0002"

        def finding(conn, key: str, workload: str) -> int:
            obs = finding_store.Observation(
                dedup_key=key, type="vulnerable_package", severity="low", subject="requests", cluster_id=cid,
                namespace="shop", workload_kind="Deployment", workload_name=workload, image_pk=pk, subject_key=low,
            )  # fmt: skip
            return finding_store.observe(conn, obs)[0]

        finding_store.set_status(conn, finding(conn, "contents:t:1", "web"), "suppressed", "accepted risk", "token:a")
    with svc.engine.connect() as conn:
        (accepted,) = admission_store.digest_facts(conn, cid)
    assert [v.advisory_id for v in accepted.vulnerabilities] == ["CVE-2024-0001"]
    with svc.engine.begin() as conn:
        finding(conn, "contents:t:2", "api")  # still open in another workload: a fact again
    with svc.engine.connect() as conn:
        (again,) = admission_store.digest_facts(conn, cid)
    assert [v.advisory_id for v in again.vulnerabilities] == ["CVE-2024-0001", "CVE-2024-0002"]
    # Over the bound, a digest keeps its most severe vulnerabilities (and every malicious package).
    monkeypatch.setattr(admission_store, "MAX_FEED_VULNERABILITIES", 1)
    monkeypatch.setattr(admission_store, "MIN_FEED_VULNERABILITIES", 1)
    with svc.engine.connect() as conn:
        (bounded,) = admission_store.digest_facts(conn, cid)
    assert [v.advisory_id for v in bounded.vulnerabilities] == ["CVE-2024-0001"]
    assert bounded.malicious_packages == ["evil-pkg"]


def test_the_feed_and_decisions_are_documented(svc):
    doc = httpx.get(f"{svc.url}/api/openapi.json").json()
    feed = doc["paths"]["/api/v1/clusters/{cluster_id}/admission/feed"]["get"]["responses"]["200"]["content"]
    assert list(feed) == [FEED_MEDIA_TYPE]
    listing = doc["paths"]["/api/v1/admission/decisions"]["get"]
    assert sorted(listing["responses"]) == ["200", "400", "401", "403", "422"]
    # The policy document's answer names every field of the policy, the revision's three and its warnings.
    assert set(EnforcementDocument.model_fields) == set(EnforcementPolicy.model_fields) | {
        "revision",
        "updated_at",
        "updated_by",
        "warnings",
    }


def test_integrity_verdicts_become_repository_and_tag_facts(service_on):
    svc = service_on
    cid, _ = svc.register("prod")
    repo = "registry.example.com/team/app"
    running, moved, forged, pinned, platform = (f"sha256:{c * 64}" for c in "12345")
    tag_digest = f"sha256:{'9' * 64}"
    checked = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)
    # (running digest, tag, status, verdict, evidence beyond the repository, registry digest)
    verdicts = [
        (running, "1.0", "verified", "", {}, running),
        (moved, "1.0", "violation", "tag_moved", {"since": AT}, tag_digest),
        (forged, "2.0", "violation", "digest_mismatch", {"registry_answer": "not found"}, tag_digest),
        (pinned, None, "violation", "artifact_missing", {"missing": "digest"}, None),
        (platform, "3.0", "verified", "", {"same_artifact": "platform manifest"}, tag_digest),
        (f"sha256:{'6' * 64}", "gone", "violation", "artifact_missing", {"missing": "tag"}, None),
    ]
    with svc.engine.begin() as conn:
        for i, (digest, tag, status, verdict, evidence, registry_digest) in enumerate(verdicts):
            pk = conn.execute(
                images.insert().values(
                    registry="registry.example.com", repository="team/app", tag=tag or "", digest=digest,
                    first_seen_at=checked,
                )
            ).inserted_primary_key[0]  # fmt: skip
            conn.execute(
                image_integrity.insert().values(
                    image_pk=pk, cluster_id=cid, status=status, verdict=verdict,
                    evidence={"repository": repo, "tag": tag, "runtime_digest": digest, **evidence},
                    registry_digest=registry_digest, policy_revision="r", checked_at=checked + timedelta(minutes=i),
                    next_check_at=checked, failures=0,
                )
            )  # fmt: skip
    with svc.engine.connect() as conn:
        digests = {d.digest: d.repositories for d in admission_store.digest_facts(conn, cid)}
        tags = [t.model_dump(mode="json") for t in admission_store.tag_facts(conn)]
    # The trusted registry holds what verified and what a moved tag once named; not a forged or missing digest.
    assert digests == {
        running: [repo],
        moved: [repo],
        forged: [],
        pinned: [],
        platform: [repo],
        f"sha256:{'6' * 64}": [],
    }
    assert tags == [
        # Two verdicts asked about tag 1.0: the later answer (the tag moved) is the one kept.
        {"reference": f"{repo}:1.0", "digest": tag_digest, "artifacts": [tag_digest],
         "checked_at": "2026-12-03T10:01:00Z"},
        {"reference": f"{repo}:2.0", "digest": tag_digest, "artifacts": [tag_digest],
         "checked_at": "2026-12-03T10:02:00Z"},
        {"reference": f"{repo}:3.0", "digest": tag_digest, "artifacts": sorted([platform, tag_digest]),
         "checked_at": "2026-12-03T10:04:00Z"},
        {"reference": f"{repo}:gone", "digest": None, "artifacts": [], "checked_at": "2026-12-03T10:05:00Z"},
    ]  # fmt: skip


def test_a_decision_batch_may_be_larger_than_other_bodies(svc):
    # A full batch (500 decisions with their violations) is over the 1 MiB of non-ingest routes.
    cid, _ = svc.register("prod")
    token = _credential(svc, cid).json()["credential"]
    decisions = [
        _decision(
            f"u{i}", "denied", name=f"web-{i}", violations=[_violation(image=f"evil.example/{i}:{j}") for j in range(8)]
        )
        for i in range(500)
    ]
    body = orjson.dumps(_batch(cid, "big", decisions))
    assert len(body) > svc.settings.max_other_body_bytes
    resp = httpx.post(
        f"{svc.url}{_decisions_path(cid)}",
        content=body,
        headers={**_h(token), "content-type": "application/json"},
        timeout=60,
    )
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"batch_id": "big", "accepted": 500, "duplicate": False}


def test_a_feed_ends_once_its_credential_is_revoked(svc, monkeypatch):
    monkeypatch.setattr(admission_api, "REAUTH_SECONDS", 0.5)
    cid, _ = svc.register("prod")
    issued = _credential(svc, cid).json()
    feed = Feed(svc, cid, issued["credential"])
    try:
        feed.next("snapshot", 5)
        revoked = _post(svc, svc.admin_token, f"/api/v1/clusters/{cid}/credentials/{issued['id']}/revoke", {})
        assert revoked.status_code == 200, revoked.text
        feed._thread.join(timeout=5)  # the service closes the stream: the reading thread ends
        assert not feed._thread.is_alive()
        again = svc.get(f"/api/v1/clusters/{cid}/admission/feed", issued["credential"])
        assert again.status_code == 401 and again.json()["detail"] == f"token {issued['id']} was revoked"
    finally:
        feed.close()
