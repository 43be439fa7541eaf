"""The enforcement policy: parsing with errors that name the field, and the decisions admission makes from facts."""

from __future__ import annotations

import pytest

from vigil.model.findings import Severity
from vigil.model.image import parse_image_ref
from vigil.policy.enforcement import (
    AdmissionSubject,
    EnforcementPolicyError,
    ImageFacts,
    Outcome,
    Rule,
    VulnerabilityFact,
    evaluate,
    load_enforcement_yaml,
)
from vigil.policy.integrity import judge
from vigil.policy.trust_doc import parse_policy_text
from vigil.registry.probe import RegistryAnswer

TRUST = parse_policy_text("trusted: [registry.example.com/team]\n", "trust.yaml")
RUNNING = "sha256:" + "a" * 64
PUSHED = "sha256:" + "b" * 64

POLICY = """
policies:
  - name: prod
    mode: enforce
    scope: {namespaces: [payments]}
    rules:
      unscanned: deny
      vulnerabilities: {severity: high, fixable_only: true}
  - name: everywhere
    mode: audit
    rules: {unscanned: allow}
"""


def subject(namespace: str = "payments", **kw) -> AdmissionSubject:
    return AdmissionSubject(cluster="prod-eu", namespace=namespace, kind="Pod", name="web", **kw)


def facts(reference: str, **kw) -> ImageFacts:
    return ImageFacts(reference=reference, image=parse_image_ref(reference), **kw)


def test_defaults_exempt_the_system_namespaces_and_enforce_nothing():
    policy = load_enforcement_yaml("", "policy.yaml")
    assert policy.exempt_namespaces == ("kube-system", "kube-public", "kube-node-lease")
    assert policy.break_glass_annotation == "vigil.dev/break-glass"
    decision = evaluate(policy, TRUST, subject(), [facts("evil.example.org/x:1")])
    assert decision.outcome is Outcome.ALLOWED and decision.allowed


def test_an_untrusted_registry_is_denied_naming_policy_rule_and_image():
    policy = load_enforcement_yaml(POLICY, "policy.yaml")
    decision = evaluate(policy, TRUST, subject(), [facts("evil.example.org/x:1")])
    assert decision.outcome is Outcome.DENIED and not decision.allowed
    assert decision.message == (
        'policy "prod" rule untrusted_registry: image evil.example.org/x:1: registry evil.example.org is not '
        "trusted (consulted: trusted registry.example.com/team (global))"
    )
    # the cluster-wide audit policy records the same image
    assert [(v.policy, v.mode, v.rule) for v in decision.violations] == [
        ("prod", "enforce", Rule.UNTRUSTED_REGISTRY),
        ("everywhere", "audit", Rule.UNTRUSTED_REGISTRY),
    ]


def test_a_digest_never_pushed_is_denied_with_both_digests():
    ref = parse_image_ref(f"registry.example.com/team/app:1.0@{RUNNING}")
    verdict = judge(RUNNING, TRUST.decide(ref, ("prod-eu",)), RegistryAnswer(tag_digest=PUSHED, digest_present=False))
    decision = evaluate(
        load_enforcement_yaml(POLICY, "p"), TRUST, subject(), [facts(str(ref), integrity=verdict, scanned=True)]
    )
    assert decision.outcome is Outcome.DENIED
    (violation,) = [v for v in decision.violations if v.policy == "prod"]
    assert violation.rule is Rule.INTEGRITY
    assert violation.evidence == {"finding": "digest_mismatch", "runtime_digest": RUNNING, "registry_digest": PUSHED}
    assert f"digest_mismatch: digest sha256:{'a' * 64} is not in the trusted registry" in violation.message
    assert f"whose tag 1.0 is sha256:{'b' * 64}" in violation.message


def test_unscanned_images_follow_the_rule_and_other_namespaces_only_the_audit_policy():
    policy = load_enforcement_yaml(POLICY, "p")
    image = facts("registry.example.com/team/app:1.0")
    assert evaluate(policy, TRUST, subject(), [image]).message == (
        'policy "prod" rule unscanned: image registry.example.com/team/app:1.0: not scanned by Vigil yet'
    )
    other = evaluate(policy, TRUST, subject("shop"), [image])
    assert other.outcome is Outcome.ALLOWED  # unscanned is allowed by the audit policy: nothing to record


def test_vulnerability_rule_counts_only_fixable_ones_at_or_above_the_floor():
    policy = load_enforcement_yaml(POLICY, "p")
    vulns = (
        VulnerabilityFact("CVE-2024-1", "openssl", Severity.CRITICAL, fixable=False),
        VulnerabilityFact("CVE-2024-2", "zlib", Severity.HIGH, fixable=True),
        VulnerabilityFact("CVE-2024-3", "curl", Severity.MEDIUM, fixable=True),
    )
    decision = evaluate(
        policy, TRUST, subject(), [facts("registry.example.com/team/app:1.0", scanned=True, vulnerabilities=vulns)]
    )
    assert decision.message == (
        'policy "prod" rule vulnerabilities: image registry.example.com/team/app:1.0: 1 vulnerabilities at high '
        "or above with a fix: CVE-2024-2 (zlib, high)"
    )


def test_an_unrated_vulnerability_counts_at_any_floor_unless_the_rule_leaves_it_out():
    # PyPA's PYSEC-2019-217 (CVE-2019-10906, Jinja2 < 2.10.1) carries no CVSS vector: its level is unknown.
    unrated = VulnerabilityFact("CVE-2019-10906", "jinja2", Severity.UNKNOWN, fixable=True)
    low = VulnerabilityFact("CVE-2024-4", "zlib", Severity.LOW, fixable=True)
    image = facts("registry.example.com/team/app:1.0", scanned=True, vulnerabilities=(unrated, low))
    counted = evaluate(load_enforcement_yaml(POLICY, "p"), TRUST, subject(), [image])
    assert counted.outcome is Outcome.DENIED
    assert counted.message == (
        'policy "prod" rule vulnerabilities: image registry.example.com/team/app:1.0: 1 vulnerabilities at high '
        "or above or unrated (1 unknown) with a fix: CVE-2019-10906 (jinja2, unknown)"
    )
    ignoring = POLICY.replace("fixable_only: true}", "fixable_only: true, ignore_unrated: true}")
    left_out = evaluate(load_enforcement_yaml(ignoring, "p"), TRUST, subject(), [image])
    assert left_out.outcome is Outcome.ALLOWED
    assert load_enforcement_yaml(ignoring, "p").revision != load_enforcement_yaml(POLICY, "p").revision


def test_warn_and_audit_modes_admit():
    warn = load_enforcement_yaml("policies: [{name: w, mode: warn}]", "p")
    decision = evaluate(warn, TRUST, subject(), [facts("evil.example.org/x:1")])
    assert decision.outcome is Outcome.WARNED and decision.allowed
    assert decision.warnings == (
        'policy "w" rule untrusted_registry: image evil.example.org/x:1: registry evil.example.org is not trusted '
        "(consulted: trusted registry.example.com/team (global))",
    )
    audit = load_enforcement_yaml("policies: [{name: a, mode: audit}]", "p")
    decision = evaluate(audit, TRUST, subject(), [facts("evil.example.org/x:1")])
    assert decision.outcome is Outcome.AUDITED and decision.allowed and decision.warnings == ()


def test_unscanned_warn_is_a_warning_even_in_enforce_mode():
    policy = load_enforcement_yaml("policies: [{name: p, rules: {unscanned: warn}}]", "p")
    decision = evaluate(policy, TRUST, subject(), [facts("registry.example.com/team/app:1.0")])
    assert decision.outcome is Outcome.WARNED
    assert decision.warnings == (
        'policy "p" rule unscanned: image registry.example.com/team/app:1.0: not scanned by Vigil yet',
    )


def test_break_glass_admits_with_its_reason_and_exempt_namespaces_are_not_judged():
    policy = load_enforcement_yaml(POLICY, "p")
    image = facts("evil.example.org/x:1")
    glass = evaluate(policy, TRUST, subject(annotations={"vigil.dev/break-glass": "INC-42 hotfix"}), [image])
    assert glass.outcome is Outcome.BREAK_GLASS and glass.allowed and glass.break_glass == "INC-42 hotfix"
    blank = evaluate(policy, TRUST, subject(annotations={"vigil.dev/break-glass": "  "}), [image])
    assert blank.outcome is Outcome.DENIED  # a break-glass without a reason is no break-glass
    system = evaluate(policy, TRUST, subject("kube-system"), [image])
    assert system.outcome is Outcome.EXEMPT and system.exempt == "namespace kube-system is exempt"


def test_scopes_select_by_cluster_namespace_labels_and_workload_labels():
    policy = load_enforcement_yaml(
        """
policies:
  - name: team
    scope:
      clusters: [prod-eu]
      namespace_selector: {matchLabels: {team: pay}}
      workload_selector: {matchExpressions: [{key: tier, operator: In, values: [web]}]}
""",
        "p",
    )
    image = [facts("evil.example.org/x:1")]
    hit = subject(namespace_labels={"team": "pay"}, workload_labels={"tier": "web"})
    assert evaluate(policy, TRUST, hit, image).outcome is Outcome.DENIED
    for miss in (
        subject(namespace_labels={"team": "shop"}, workload_labels={"tier": "web"}),
        subject(namespace_labels={"team": "pay"}, workload_labels={"tier": "db"}),
        AdmissionSubject(
            cluster="dev", namespace="payments", namespace_labels={"team": "pay"}, workload_labels={"tier": "web"}
        ),
    ):
        assert evaluate(policy, TRUST, miss, image).outcome is Outcome.ALLOWED


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("policies: [{name: p, mode: block}]", "policies[0].mode: Input should be 'enforce', 'warn' or 'audit'"),
        ("policies: [{name: P_1}]", "policies[0].name: 'P_1' must be lower-case letters, digits and '-'"),
        ("policies: [{name: p}, {name: p}]", "policies: policy names must be unique: p appear more than once"),
        ("policies: [{name: p, rules: {vulnerabilities: {severity: unknown}}}]", "severity must be one of critical"),
        (
            "policies: [{name: p, scope: {namespace_selector: {matchExpressions: [{key: a, operator: In}]}}}]",
            "operator In needs values",
        ),
        (
            "policies: [{name: p, rules: {untrusted: true}}]",
            "policies[0].rules.untrusted: Extra inputs are not permitted",
        ),
        ("policies: [", "enforcement policy policy.yaml"),
    ],
)
def test_bad_documents_name_the_source_and_the_field(text, message):
    with pytest.raises(EnforcementPolicyError) as exc:
        load_enforcement_yaml(text, "policy.yaml")
    assert str(exc.value).startswith("enforcement policy policy.yaml")
    assert message in str(exc.value)


def test_revision_follows_the_document():
    a = load_enforcement_yaml(POLICY, "p")
    assert a.revision == load_enforcement_yaml(POLICY, "p").revision
    assert a.revision != load_enforcement_yaml("policies: [{name: prod}]", "p").revision
