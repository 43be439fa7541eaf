"""The webhook's answers to AdmissionReviews, from the knowledge the service's feed gives it."""

from __future__ import annotations

import base64

import orjson
import pytest
from starlette.testclient import TestClient

from vigil.admission.decide import AnswerKey
from vigil.admission.knowledge import Knowledge
from vigil.admission.server import Webhook, build_app
from vigil.registry.probe import RegistryAnswer
from vigil.wire.admission import AdmissionDecisionRecord, EnforcementEvent, VulnerabilityFact

from .reviews import NEVER_PUSHED, PUSHED, TRUSTED, deployment, knowledge, pod, review, scanned, tag


class Recorder:
    feed_error: str | None = None

    def __init__(self) -> None:
        self.decisions: list[AdmissionDecisionRecord] = []

    def report(self, decision: AdmissionDecisionRecord) -> None:
        self.decisions.append(decision)


class Answers:
    """A registry that answers from a table: for the pure decisions; the real registry is in test_cold."""

    ttl = 0.0  # decisions from its answers are not kept: each review asks again

    def __init__(self, table: dict[AnswerKey, RegistryAnswer]) -> None:
        self.table = table
        self.asked: list[AnswerKey] = []

    async def answers(self, questions, budget):
        self.asked += [q.key for q in questions]
        return {q.key: self.table[q.key] for q in questions if q.key in self.table}


def client(k: Knowledge, resolver=None) -> tuple[TestClient, Recorder]:
    recorder = Recorder()
    return TestClient(build_app(Webhook("prod-eu", k, recorder, resolver))), recorder


def answer(http: TestClient, body: dict, path: str = "/validate") -> dict:
    resp = http.post(path, json=body)
    assert resp.status_code == 200, resp.text
    out = resp.json()
    assert out["apiVersion"] == "admission.k8s.io/v1" and out["kind"] == "AdmissionReview"
    assert out["response"]["uid"] == body["request"]["uid"]
    return out["response"]


APP = f"{TRUSTED}/app:1.0"


def test_an_untrusted_registry_is_denied_naming_the_rule_and_recorded():
    http, recorder = client(knowledge())
    response = answer(http, review(pod("evil.example.net/miner:latest")))
    assert response["allowed"] is False
    assert response["status"] == {
        "code": 403,
        "message": 'policy "prod" rule untrusted_registry: image evil.example.net/miner:latest: registry '
        "evil.example.net is not trusted (consulted: trusted registry.example.com/team (global))",
    }
    (record,) = recorder.decisions
    assert (record.outcome, record.namespace, record.name, record.user, record.images) == (
        "denied",
        "shop",
        "web",
        "alice",
        ["evil.example.net/miner:latest"],
    )
    assert [(v.policy, v.rule, v.mode) for v in record.violations] == [("prod", "untrusted_registry", "enforce")]


def test_a_digest_never_pushed_is_denied_with_both_digests():
    k = knowledge(tags=[tag(APP)], digests=[scanned()])
    registry = Answers(
        {(APP, NEVER_PUSHED): RegistryAnswer(PUSHED, frozenset({PUSHED}), None, False, "manifest unknown")}
    )
    http, _ = client(k, registry)
    response = answer(http, review(pod(f"{APP}@{NEVER_PUSHED}")))
    assert response["allowed"] is False
    assert response["status"]["message"] == (
        f'policy "prod" rule integrity: image {APP}@{NEVER_PUSHED}: digest_mismatch: digest {NEVER_PUSHED} is not in '
        f"the trusted registry {TRUSTED}/app, whose tag 1.0 is {PUSHED}; "
        f'policy "prod" rule unscanned: image {APP}@{NEVER_PUSHED}: not scanned by Vigil yet'
    )
    assert registry.asked == [(APP, NEVER_PUSHED)]


def test_the_pushed_digest_of_a_scanned_image_is_admitted_without_asking_the_registry():
    registry = Answers({})
    http, recorder = client(knowledge(tags=[tag(APP)], digests=[scanned()]), registry)
    assert answer(http, review(pod(APP)))["allowed"] is True
    assert answer(http, review(pod(f"{APP}@{PUSHED}")))["allowed"] is True
    assert registry.asked == [] and recorder.decisions == []


def test_vulnerabilities_at_the_policy_severity_deny():
    vuln = VulnerabilityFact(advisory_id="CVE-2024-0001", package="openssl", severity="critical", fixable=True)
    http, _ = client(knowledge(tags=[tag(APP)], digests=[scanned(vulnerabilities=[vuln])]))
    response = answer(http, review(pod(APP)))
    assert response["status"]["message"] == (
        f'policy "prod" rule vulnerabilities: image {APP}: 1 vulnerabilities at critical or above: '
        "CVE-2024-0001 (openssl, critical)"
    )


def test_an_image_nobody_knows_follows_the_unscanned_rule():
    http, _ = client(knowledge())
    response = answer(http, review(pod(APP)))
    assert response["status"]["message"] == f'policy "prod" rule unscanned: image {APP}: not scanned by Vigil yet'


def test_warn_mode_admits_with_the_warning_kubectl_prints():
    http, recorder = client(knowledge())
    response = answer(http, review(pod("evil.example.net/miner:latest", namespace="staging")))
    assert response["allowed"] is True
    assert response["warnings"] == [
        'policy "staging" rule untrusted_registry: image evil.example.net/miner:latest: registry evil.example.net '
        "is not trusted (consulted: trusted registry.example.com/team (global))"
    ]
    assert [d.outcome for d in recorder.decisions] == ["warned"]


def test_audit_mode_admits_silently_and_records():
    http, recorder = client(knowledge())
    response = answer(http, review(pod("evil.example.net/miner:latest", namespace="lab")))
    assert response == {"uid": response["uid"], "allowed": True}
    assert [(d.outcome, d.violations[0].mode) for d in recorder.decisions] == [("audited", "audit")]


def test_system_namespaces_are_exempt_and_not_recorded():
    http, recorder = client(knowledge())
    assert answer(http, review(pod("evil.example.net/miner:latest", namespace="kube-system")))["allowed"] is True
    assert recorder.decisions == []


def test_break_glass_admits_warns_and_records_who_used_it():
    http, recorder = client(knowledge())
    obj = pod("evil.example.net/miner:latest", annotations={"vigil.dev/break-glass": "INC-42 hotfix"})
    response = answer(http, review(obj, user="oncall@example.com"))
    assert response["allowed"] is True
    assert response["warnings"][0].startswith(
        "admitted by break-glass (vigil.dev/break-glass: INC-42 hotfix); this use is recorded"
    )
    (record,) = recorder.decisions
    assert (record.outcome, record.break_glass, record.user) == ("break_glass", "INC-42 hotfix", "oncall@example.com")


def test_workload_templates_are_judged_like_pods():
    http, _ = client(knowledge())
    response = answer(http, review(deployment("evil.example.net/miner:latest")))
    assert response["allowed"] is False and "rule untrusted_registry" in response["status"]["message"]
    cron = {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "nightly", "namespace": "shop"},
        "spec": {"schedule": "@daily", "jobTemplate": {"spec": {"template": pod("evil.example.net/x:1")}}},
    }
    assert answer(http, review(cron))["allowed"] is False


def test_ephemeral_and_init_containers_count():
    obj = pod(APP)
    obj["spec"]["initContainers"] = [{"name": "init", "image": "evil.example.net/init:1"}]
    obj["spec"]["ephemeralContainers"] = [{"name": "debug", "image": "evil.example.net/debug:1"}]
    http, _ = client(knowledge(tags=[tag(APP)], digests=[scanned()]))
    message = answer(http, review(obj))["status"]["message"]
    assert "image evil.example.net/init:1" in message and "image evil.example.net/debug:1" in message


def _update(obj: dict, old: dict | None) -> dict:
    body = review(obj, operation="UPDATE")
    body["request"]["oldObject"] = old
    return body


def _bare(response: dict) -> dict:
    return {k: v for k, v in response.items() if k != "uid"}


def test_an_update_that_starts_no_new_image_is_admitted_without_a_decision():
    http, recorder = client(knowledge())
    # Admitted by break-glass once; the annotation removed, the pod relabelled: nothing new runs.
    old = pod("evil.example.net/miner:latest", annotations={"vigil.dev/break-glass": "INC-9"})
    relabelled = pod("evil.example.net/miner:latest", labels={"app": "web", "team": "payments"})
    assert _bare(answer(http, _update(relabelled, old))) == {"allowed": True}
    # A Deployment scaled (or its old ReplicaSet scaled down by a rollout) under a stricter policy.
    scaled = deployment("evil.example.net/miner:latest")
    scaled["spec"]["replicas"] = 0
    assert _bare(answer(http, _update(scaled, deployment("evil.example.net/miner:latest")))) == {"allowed": True}
    # An image moved from an init container to a regular one is still the same code.
    moved = pod(APP, "evil.example.net/miner:latest")
    before = pod(APP)
    before["spec"]["initContainers"] = [{"name": "init", "image": "evil.example.net/miner:latest"}]
    assert _bare(answer(http, _update(moved, before))) == {"allowed": True}
    assert recorder.decisions == []


def test_finalizers_of_an_object_being_deleted_can_always_be_removed():
    http, recorder = client(knowledge())
    terminating = pod("evil.example.net/miner:latest")
    terminating["metadata"]["deletionTimestamp"] = "2026-12-04T03:00:00Z"
    finalized = {**terminating, "metadata": {**terminating["metadata"], "finalizers": ["example.com/cleanup"]}}
    assert _bare(answer(http, _update(terminating, finalized))) == {"allowed": True}
    assert _bare(answer(http, _update(terminating, None), "/validate/fail-closed")) == {"allowed": True}
    assert recorder.decisions == []


def test_an_update_that_names_a_new_image_is_judged_whole():
    http, recorder = client(knowledge(tags=[tag(APP)], digests=[scanned()]))
    # kubectl debug: the pods/ephemeralcontainers update adds a container to a running pod.
    debugged = pod(APP)
    debugged["spec"]["ephemeralContainers"] = [{"name": "debug", "image": "evil.example.net/debug:1"}]
    body = _update(debugged, pod(APP))
    body["request"]["subResource"] = "ephemeralcontainers"
    response = answer(http, body)
    assert response["allowed"] is False
    assert response["status"]["message"].startswith(
        'policy "prod" rule untrusted_registry: image evil.example.net/debug:1: registry evil.example.net is not '
        "trusted"
    )
    # An image changed in a workload: every image of the new object counts, as its pods will run them all.
    changed = _update(deployment(APP, "evil.example.net/miner:2"), deployment(APP, "evil.example.net/miner:1"))
    assert "image evil.example.net/miner:2" in answer(http, changed)["status"]["message"]
    # A review without the old object (not what kube-apiserver sends) is judged whole.
    assert answer(http, _update(pod("evil.example.net/miner:1"), None))["allowed"] is False
    assert [(d.outcome, d.images) for d in recorder.decisions] == [
        ("denied", [APP, "evil.example.net/debug:1"]),
        ("denied", [APP, "evil.example.net/miner:2"]),
        ("denied", ["evil.example.net/miner:1"]),
    ]


def test_pods_their_replicaset_makes_repeat_no_warning_records():
    http, recorder = client(knowledge())
    answer(http, review(pod("evil.example.net/miner:latest", namespace="staging", owner=True)))
    assert recorder.decisions == []


def test_an_invalid_image_reference_is_denied_in_scope():
    http, _ = client(knowledge())
    response = answer(http, review(pod("Not A Reference")))
    assert response["status"]["message"] == "image 'Not A Reference' is not a valid image reference"


def test_fail_closed_policies_are_judged_only_by_their_webhook():
    policy = {"policies": [{"name": "strict", "failure": "fail", "scope": {"namespaces": ["shop"]}}]}
    http, _ = client(knowledge(policy))
    body = review(pod("evil.example.net/miner:latest"))
    assert answer(http, body, "/validate")["allowed"] is True
    assert answer(http, body, "/validate/fail-closed")["allowed"] is False


def test_a_policy_change_from_the_feed_applies_to_the_next_review():
    k = knowledge()
    http, _ = client(k)
    body = review(pod("evil.example.net/miner:latest"))
    assert answer(http, body)["allowed"] is False
    k.apply(
        EnforcementEvent(enforcement={"policies": [{"name": "prod", "mode": "warn"}]}, enforcement_revision="rev-2")
    )
    assert answer(http, review(pod("evil.example.net/miner:latest")))["allowed"] is True


def test_dry_run_reviews_are_decided_but_not_recorded():
    http, recorder = client(knowledge())
    assert answer(http, review(pod("evil.example.net/miner:latest"), dry_run=True))["allowed"] is False
    assert recorder.decisions == []


def _patch(response: dict) -> list[dict]:
    assert response["patchType"] == "JSONPatch"
    return orjson.loads(base64.b64decode(response["patch"]))


def test_the_mutating_webhook_pins_trusted_tags_to_their_digest():
    http, _ = client(knowledge(tags=[tag(APP)]))
    obj = pod(APP, "evil.example.net/miner:latest", f"{APP}@{PUSHED}")
    response = answer(http, review(obj), "/mutate")
    assert response["allowed"] is True
    assert _patch(response) == [{"op": "replace", "path": "/spec/containers/0/image", "value": f"{APP}@{PUSHED}"}]
    # Workloads are left as written: GitOps tools would fight a rewritten template.
    assert "patch" not in answer(http, review(deployment(APP)), "/mutate")


def test_the_mutating_webhook_asks_the_registry_for_an_unknown_tag():
    registry = Answers({(APP, None): RegistryAnswer(tag_digest=PUSHED, tag_artifacts=frozenset({PUSHED}))})
    http, _ = client(knowledge(), registry)
    assert _patch(answer(http, review(pod(APP)), "/mutate"))[0]["value"] == f"{APP}@{PUSHED}"


@pytest.mark.parametrize("path", ["/validate", "/validate/fail-closed", "/mutate"])
def test_before_the_first_snapshot_the_webhook_is_unavailable_so_failure_policy_decides(path):
    recorder = Recorder()
    recorder.feed_error = "feed connection failed: ConnectError: refused"
    http = TestClient(build_app(Webhook("prod-eu", Knowledge(), recorder)))
    resp = http.post(path, json=review(pod(APP)))
    assert resp.status_code == 503
    assert resp.json() == {
        "error": "bad AdmissionReview",
        "detail": "not ready: feed connection failed: ConnectError: refused",
    }
    assert http.get("/readyz").status_code == 503
    assert http.get("/healthz").json() == {"status": "ok"}


def test_trust_rules_and_scopes_may_name_the_cluster_by_name():
    policy = {"policies": [{"name": "eu", "scope": {"clusters": ["prod-eu-1"], "namespaces": ["shop"]}}]}
    k = knowledge(
        policy, cluster_name="prod-eu-1", clusters={"prod-eu-1": {"trusted": ["eu.example.com"], "mirrors": []}}
    )
    http, _ = client(k)
    assert answer(http, review(pod("eu.example.com/app:1")))["allowed"] is True
    message = answer(http, review(pod("evil.example.net/miner:latest")))["status"]["message"]
    assert message.startswith('policy "eu" rule untrusted_registry: image evil.example.net/miner:latest')
    # Another cluster's webhook is outside the policy's scope.
    other, _ = client(knowledge(policy, cluster_name="prod-us-1"))
    assert answer(other, review(pod("evil.example.net/miner:latest")))["allowed"] is True
