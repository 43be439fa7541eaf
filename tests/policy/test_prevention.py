"""Runtime prevention for one node: the enforcement policy's runtime rules resolved to its running containers."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from vigil.policy.enforcement import EnforcementPolicyError, RuntimeRules, load_enforcement_yaml
from vigil.policy.enforcement_text import enforcement_yaml
from vigil.policy.prevention import Cluster, RunningContainer, node_policy, policy_for, unreachable_runtime_rules
from vigil.wire.prevention import PreventionRule

AT = datetime(2026, 12, 4, 1, 0, tzinfo=UTC)
CLUSTER = Cluster("c-1", "prod-eu")
WEB = RunningContainer("containerd://" + "a" * 64, "payments", "web-1", "uid-web", "Deployment/web", {"tier": "web"})
DB = RunningContainer("containerd://" + "b" * 64, "payments", "db-0", "uid-db", "StatefulSet/db", {"tier": "db"})
SYS = RunningContainer("containerd://" + "c" * 64, "kube-system", "dns-1", "uid-dns", "Deployment/dns", {})
OTHER = RunningContainer("containerd://" + "d" * 64, "shop", "cart-1", "uid-cart", "Deployment/cart", {"tier": "web"})
DENY = ["f" * 64, "e" * 64, "f" * 64]

POLICY = """
policies:
  - name: web-kill
    mode: enforce
    scope: {namespaces: [payments], workload_selector: {matchLabels: {tier: web}}}
    runtime: {drift: enforce, memfd_exec: audit}
  - name: everywhere
    mode: audit
    runtime: {drift: enforce, tmp_exec: enforce, escape: audit}
  - name: admission-only
    rules: {unscanned: deny}
"""


def _node(text: str, containers=(WEB, DB, SYS, OTHER), deny=DENY):
    return node_policy(load_enforcement_yaml(text, "p.yaml"), CLUSTER, "node-1", containers, deny, AT)


def test_rules_are_capped_by_the_policy_mode_and_the_strictest_policy_wins():
    node = _node(POLICY)
    by_id = {c.container_id: c for c in node.containers}
    assert list(by_id) == [WEB.container_id, DB.container_id, OTHER.container_id]  # sorted, kube-system exempt
    web = by_id[WEB.container_id]
    assert web.rules == {"drift": "enforce", "escape": "audit", "memfd_exec": "audit", "tmp_exec": "audit"}
    assert web.policies == {
        "drift": "web-kill",
        "escape": "everywhere",
        "memfd_exec": "web-kill",
        "tmp_exec": "everywhere",
    }
    assert (web.namespace, web.pod_name, web.pod_uid) == ("payments", "web-1", "uid-web")
    assert web.workload == "Deployment/web"
    # A policy in audit mode only reports, whatever its rules say.
    assert by_id[DB.container_id].rules == {"drift": "audit", "escape": "audit", "tmp_exec": "audit"}
    assert set(by_id[OTHER.container_id].policies.values()) == {"everywhere"}
    assert node.deny_sha256 == ["e" * 64, "f" * 64]
    assert node.node_name == "node-1" and node.generated_at == AT
    assert policy_for(node, WEB.container_id, PreventionRule.DRIFT) == "web-kill"
    assert policy_for(node, DB.container_id, PreventionRule.MEMFD_EXEC) is None
    assert policy_for(node, SYS.container_id, PreventionRule.DRIFT) is None


def test_flipping_a_policy_from_audit_to_enforce_flips_its_containers_and_the_revision():
    audit = _node(POLICY)
    enforce = _node(POLICY.replace("mode: audit", "mode: enforce"))
    assert {c.container_id: c.rules["tmp_exec"] for c in enforce.containers} == {
        WEB.container_id: "enforce",
        DB.container_id: "enforce",
        OTHER.container_id: "enforce",
    }
    assert audit.revision != enforce.revision and len(audit.revision) == 16


def test_the_revision_depends_on_the_contents_only():
    first = _node(POLICY)
    again = node_policy(
        load_enforcement_yaml(POLICY, "p.yaml"),
        CLUSTER,
        "node-1",
        [OTHER, DB, SYS, WEB],  # another order, another time
        list(reversed(DENY)),
        datetime(2027, 1, 1, tzinfo=UTC),
    )
    assert again.revision == first.revision
    assert _node(POLICY, deny=DENY + ["0" * 64]).revision != first.revision
    assert _node(POLICY, containers=(WEB, DB)).revision != first.revision
    # A container that no rule reaches is not listed and does not change the revision.
    assert _node(POLICY, containers=(WEB, DB, OTHER)).revision == first.revision


def test_known_non_image_sha256s_go_to_containers_with_the_drift_rule_on_sorted_and_in_the_revision():
    from dataclasses import replace

    sha_a, sha_b = "a1" * 32, "b2" * 32
    web = replace(WEB, drift_sha256=frozenset({sha_b, sha_a}))
    no_drift = "policies: [{name: p, runtime: {tmp_exec: enforce}}]"
    node = _node(POLICY, containers=(web, DB))
    assert {c.container_id: c.drift_sha256 for c in node.containers} == {
        WEB.container_id: [sha_a, sha_b],
        DB.container_id: [],
    }
    assert node.revision != _node(POLICY, containers=(WEB, DB)).revision
    # Without the drift rule on the container, its sha256s are not sent (and do not move the revision).
    (only,) = _node(no_drift, containers=(web,)).containers
    assert (
        only.drift_sha256 == []
        and _node(no_drift, containers=(web,)).revision == _node(no_drift, containers=(WEB,)).revision
    )
    many = replace(WEB, drift_sha256=frozenset(f"{i:064x}" for i in range(10_005)))
    (bounded,) = _node(POLICY, containers=(many,)).containers
    assert bounded.drift_sha256 == [f"{i:064x}" for i in range(10_000)]


def test_scope_by_cluster_id_or_name_and_only_containers_with_a_rule_on_are_listed():
    by_name = "policies: [{name: p, scope: {clusters: [prod-eu]}, runtime: {deny_listed: enforce}}]"
    by_id = by_name.replace("prod-eu", "c-1")
    elsewhere = by_name.replace("prod-eu", "staging")
    assert [c.rules for c in _node(by_name, containers=(WEB,)).containers] == [{"deny_listed": "enforce"}]
    assert [c.rules for c in _node(by_id, containers=(WEB,)).containers] == [{"deny_listed": "enforce"}]
    assert _node(elsewhere).containers == []
    assert _node("policies: [{name: p, rules: {unscanned: deny}}]").containers == []


def test_a_namespace_label_selector_applies_only_where_the_namespace_labels_are_known():
    text = "policies: [{name: p, scope: {namespace_selector: {matchLabels: {env: prod}}}, runtime: {drift: enforce}}]"
    known = RunningContainer(WEB.container_id, "payments", namespace_labels={"env": "prod"})
    unknown = RunningContainer(DB.container_id, "payments")
    other = RunningContainer(OTHER.container_id, "shop", namespace_labels={"env": "dev"})
    assert [c.container_id for c in _node(text, containers=(known, unknown, other)).containers] == [WEB.container_id]


def test_runtime_rules_scoped_by_namespace_labels_are_said_to_reach_no_running_container():
    text = (
        "policies: [{name: labelled, scope: {namespace_selector: {matchLabels: {env: prod}}},"
        " runtime: {drift: enforce, escape: audit}},"
        " {name: admission-only, scope: {namespace_selector: {matchLabels: {env: prod}}}},"
        " {name: by-name, scope: {namespaces: [payments]}, runtime: {drift: enforce}}]"
    )
    assert unreachable_runtime_rules(load_enforcement_yaml(text, "p.yaml")) == [
        "policy labelled: its runtime rules (drift, escape) are scoped by namespace_selector, and the inventory "
        "carries no namespace labels, so they apply to no running container; scope them by namespaces or "
        "workload_selector (admission still applies the selector)"
    ]


def test_exempt_namespaces_are_never_enforced():
    text = "exempt_namespaces: [payments]\npolicies: [{name: p, runtime: {escape: enforce}}]"
    assert [c.container_id for c in _node(text).containers] == [SYS.container_id, OTHER.container_id]


def test_runtime_rules_are_one_per_prevention_rule():
    assert list(RuntimeRules.model_fields) == [str(r) for r in PreventionRule]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "policies: [{name: p, runtime: {drift: kill}}]",
            "enforcement policy p.yaml: policies[0].runtime.drift: Input should be 'off', 'audit' or 'enforce'",
        ),
        (
            "policies: [{name: p, runtime: {exec_from_tmp: enforce}}]",
            "enforcement policy p.yaml: policies[0].runtime.exec_from_tmp: Extra inputs are not permitted",
        ),
        (
            "policies: [{name: p, runtime: enforce}]",
            "enforcement policy p.yaml: policies[0].runtime: Input should be a valid dictionary or instance of "
            "RuntimeRules",
        ),
    ],
)
def test_a_bad_runtime_rule_is_an_error_naming_the_field(text, message):
    with pytest.raises(EnforcementPolicyError) as err:
        load_enforcement_yaml(text, "p.yaml")
    assert str(err.value) == message


def test_runtime_rules_all_off_keep_the_revision_of_a_policy_without_them():
    plain = load_enforcement_yaml("policies: [{name: p}]", "p.yaml")
    off = load_enforcement_yaml("policies: [{name: p, runtime: {drift: 'off'}}]", "p.yaml")
    on = load_enforcement_yaml("policies: [{name: p, runtime: {drift: audit}}]", "p.yaml")
    assert plain.revision == off.revision != on.revision


def test_the_text_shows_the_runtime_rules_that_are_on_and_reads_back():
    policy = load_enforcement_yaml(POLICY, "p.yaml")
    text = enforcement_yaml(policy)
    assert "  runtime:\n    drift: enforce\n    memfd_exec: audit\n" in text
    assert "  runtime:\n    drift: enforce\n    tmp_exec: enforce\n    escape: audit\n" in text
    assert text.count("runtime:") == 2
    assert load_enforcement_yaml(text, "shown") == policy
