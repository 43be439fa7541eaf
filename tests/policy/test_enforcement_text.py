"""The enforcement policy as YAML for people: every rule written out, and read back as the same policy."""

from __future__ import annotations

import pytest

from vigil.policy.enforcement import EnforcementPolicy, load_enforcement_yaml
from vigil.policy.enforcement_text import enforcement_yaml

POLICY = """
exempt_namespaces: [kube-system, vigil]
policies:
  - name: prod
    scope: {namespaces: [payments], workload_selector: {matchLabels: {tier: web}}}
    rules:
      unscanned: deny
      vulnerabilities: {severity: high, fixable_only: true}
  - name: everywhere
    mode: audit
    failure: fail
"""


def test_the_default_policy_names_its_exemptions_and_no_policies():
    assert enforcement_yaml(EnforcementPolicy()) == (
        "exempt_namespaces:\n- kube-system\n- kube-public\n- kube-node-lease\n"
        "break_glass_annotation: vigil.dev/break-glass\npolicies: []\n"
    )


def test_each_policy_shows_its_mode_failure_and_every_rule_and_only_the_scope_that_narrows_it():
    assert enforcement_yaml(load_enforcement_yaml(POLICY, "p.yaml")) == (
        "exempt_namespaces:\n- kube-system\n- vigil\n"
        "break_glass_annotation: vigil.dev/break-glass\n"
        "policies:\n"
        "- name: prod\n  mode: enforce\n  failure: ignore\n"
        "  scope:\n    namespaces:\n    - payments\n    workload_selector:\n      matchLabels:\n        tier: web\n"
        "  rules:\n    untrusted_registry: true\n    integrity: true\n    unscanned: deny\n"
        "    malicious_package: true\n    vulnerabilities:\n      severity: high\n      fixable_only: true\n"
        "      ignore_unrated: false\n"
        "- name: everywhere\n  mode: audit\n  failure: fail\n"
        "  rules:\n    untrusted_registry: true\n    integrity: true\n    unscanned: allow\n"
        "    malicious_package: true\n"
    )


@pytest.mark.parametrize(
    "text", ["", POLICY, "policies: [{name: a, scope: {clusters: [x]}, rules: {integrity: false}}]"]
)
def test_the_text_reads_back_as_the_same_policy(text):
    policy = load_enforcement_yaml(text, "p.yaml")
    again = load_enforcement_yaml(enforcement_yaml(policy), "shown")
    assert again == policy and again.revision == policy.revision
