"""Each finding type's evidence reads as rows: package and fix, process and pod, image and registry."""

from vigil.model.findings import FINDING_TYPES
from vigil.service.ui import evidence


def _flat(rows):
    return {r.label: [(c.text, c.href) for c in r.cells] for r in rows}


def test_every_finding_type_has_a_renderer():
    assert set(evidence.RENDERERS) == set(FINDING_TYPES)


def test_vulnerability_names_package_versions_fix_and_advisory_links():
    f = {
        "type": "vulnerable_package",
        "evidence": {
            "package": {"name": "jinja2", "version": "2.10", "ecosystem": "PyPI"},
            "installed_version": "2.10",
            "fixed_versions": ["2.11.3"],
            "vulnerability": "GHSA-462w-v97r-4m45",
            "advisory_ids": ["GHSA-462w-v97r-4m45"],
            "aliases": ["CVE-2020-28493"],
            "severity": {"level": "medium", "score": None, "source": "database_specific"},
        },
    }
    rows = _flat(evidence.rows(f))
    assert rows["package"] == [("jinja2", None)]
    assert rows["advisory severity"] == [("medium (database_specific)", None)]
    assert rows["installed version"] == [("2.10", None)]
    assert rows["remediation"] == [("upgrade to 2.11.3", None)]
    assert rows["advisories"] == [
        ("GHSA-462w-v97r-4m45", "https://osv.dev/vulnerability/GHSA-462w-v97r-4m45"),
        ("CVE-2020-28493", "https://osv.dev/vulnerability/CVE-2020-28493"),
    ]


def test_vulnerability_says_where_its_severity_came_from_or_that_none_rated_it():
    def severity_row(severity):
        f = {"type": "vulnerable_package", "evidence": {"package": {"name": "jinja2"}, "severity": severity}}
        return _flat(evidence.rows(f)).get("advisory severity")

    assert severity_row({"level": "high", "score": 8.6, "source": "CVSS_V3"}) == [("high 8.6 (CVSS_V3)", None)]
    assert severity_row({"level": "unknown", "score": None, "source": None}) == [
        ("unknown (unrated: no CVSS vector or rating in the advisory or its aliases)", None)
    ]
    assert severity_row(None) is None


def test_runtime_names_process_parent_chain_pod_link_and_node():
    samples = [
        {"pid": 30, "ppid": 20, "comm": "curl"},
        {"pid": 20, "ppid": 10, "comm": "sh"},
        {"pid": 10, "ppid": 1, "comm": "python3"},
    ]
    f = {
        "type": "runtime_drift",
        "cluster_id": "c1",
        "namespace": "team0",
        "workload": {"kind": "Deployment", "name": "app0"},
        "evidence": {
            "path": "/tmp/x",
            "process": {
                "path": "/tmp/x",
                "argv": ["/tmp/x", "-v"],
                "samples": samples,
                "container": {"pod": "app0-abc", "node": "node-1", "name": "app"},
            },
        },
    }
    rows = _flat(evidence.rows(f))
    assert rows["process"] == [("/tmp/x", None)]
    assert rows["parent chain"] == [("sh", None), ("python3", None), ("pid 1", None)]
    assert rows["pod"] == [("app0-abc", "/workloads/c1/team0/Deployment/app0")]
    assert rows["node"] == [("node-1", None)]


def test_untrusted_registry_names_image_and_registry():
    f = {
        "type": "untrusted_registry",
        "evidence": {"image": "evil.io/app:1", "registry": "evil.io", "trusted_patterns": ["registry.local/*"]},
    }
    rows = _flat(evidence.rows(f))
    assert rows["image"] == [("evil.io/app:1", None)]
    assert rows["registry"] == [("evil.io", None)]
    assert rows["trusted patterns"] == [("registry.local/*", None)]


def test_signature_findings_name_the_failing_check_the_signers_and_the_rule():
    f = {
        "type": "unsigned_image",
        "evidence": {
            "image": "registry.example.com/app@sha256:ab",
            "rule": "signatures for registry.example.com (global)",
            "failing_checks": ["no signature by an accepted key or identity"],
            "signed_by": [],
            "accepted_signers": ["key ci (sha256:0123)"],
            "signatures": ["signature sha256:cd: signed by key sha256:9999, which the rule does not accept"],
            "provenance": [{"builder_id": "b", "source_repository": "https://github.com/acme/app"}],
        },
    }
    rows = _flat(evidence.rows(f))
    assert rows["failing checks"] == [("no signature by an accepted key or identity", None)]
    assert rows["accepted signers"] == [("key ci (sha256:0123)", None)]
    assert rows["signatures"] == [
        ("signature sha256:cd: signed by key sha256:9999, which the rule does not accept", None)
    ]
    assert rows["rule"] == [("signatures for registry.example.com (global)", None)]
    assert rows["provenance"] == [("builder id b, source repository https://github.com/acme/app", None)]
    assert "signed by" not in rows
