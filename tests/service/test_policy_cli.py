"""`vigil policy enforcement show|apply|history` and `vigil policy decisions` against a live service."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
from typer.testing import CliRunner

from vigil.cli import build_app
from vigil.policy.enforcement import EnforcementPolicy, load_enforcement_yaml
from vigil.policy.enforcement_text import enforcement_yaml
from vigil.service.store.admission import record_decisions
from vigil.wire.admission import AdmissionDecisionRecord, ViolationRecord

runner = CliRunner()
POLICY = """\
exempt_namespaces: [kube-system, vigil]
policies:
  - name: prod
    scope: {namespaces: [payments]}
    rules: {unscanned: deny}
  - name: everywhere
    mode: audit
"""
T0 = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)


def vigil(svc, *args: str, token: str | None = None):
    return runner.invoke(
        build_app("policy"),
        ["policy", *args, "--url", svc.url, "--token", token or svc.admin_token],
        terminal_width=200,
    )


def test_show_apply_history_round_trip(live_service, tmp_path):
    svc = live_service
    default = EnforcementPolicy()
    shown = vigil(svc, "enforcement", "show")
    assert shown.exit_code == 0, shown.output
    assert shown.stdout == f"# revision {default.revision}: the default policy, never changed\n" + enforcement_yaml(
        default
    )

    path = tmp_path / "policy.yaml"
    path.write_text(POLICY)
    applied = vigil(svc, "enforcement", "apply", "-f", str(path))
    assert applied.exit_code == 0, applied.output
    expected = load_enforcement_yaml(POLICY, "t")
    doc = svc.get("/api/v1/policy/enforcement").json()
    meta = ("revision", "updated_at", "updated_by", "warnings")
    assert {k: v for k, v in doc.items() if k not in meta} == expected.model_dump(mode="json")
    assert (doc["revision"], doc["updated_by"], doc["warnings"]) == (expected.revision, "token:test-admin", [])
    stamp = f"revision {expected.revision}, updated {doc['updated_at']} by token:test-admin"
    assert applied.stdout == f"applied {path}: {stamp}; prod (enforce), everywhere (audit)\n"

    # What `show` prints is a file `apply` takes: the same policy, the same revision.
    shown = vigil(svc, "enforcement", "show")
    assert shown.stdout == f"# {stamp}\n" + enforcement_yaml(expected)
    again = tmp_path / "shown.yaml"
    again.write_text(shown.stdout)
    assert vigil(svc, "enforcement", "apply", "--file", str(again)).exit_code == 0
    empty = tmp_path / "empty.yaml"
    empty.write_text("policies: []\n")
    assert vigil(svc, "enforcement", "apply", "-f", str(empty)).stdout.endswith("; no policies: nothing enforced\n")

    history = vigil(svc, "enforcement", "history", "-o", "json")
    assert history.exit_code == 0, history.output
    items = orjson.loads(history.stdout)
    assert [i["revision"] for i in items] == [default.revision, expected.revision, expected.revision]
    assert [i["updated_by"] for i in items] == ["token:test-admin"] * 3
    assert items[1]["policy"] == expected.model_dump(mode="json")
    table = vigil(svc, "enforcement", "history")
    assert table.exit_code == 0
    lines = [line for line in table.stdout.splitlines() if expected.revision in line]
    assert len(lines) == 2 and all("prod (enforce), everywhere (audit)" in line for line in lines)


def test_runtime_rules_that_reach_no_container_are_stored_with_a_warning(live_service, tmp_path):
    svc = live_service
    path = tmp_path / "labelled.yaml"
    path.write_text(
        "policies: [{name: labelled, scope: {namespace_selector: {matchLabels: {env: prod}}},"
        " runtime: {escape: enforce}}]\n"
    )
    warning = (
        "policy labelled: its runtime rules (escape) are scoped by namespace_selector, and the inventory carries "
        "no namespace labels, so they apply to no running container; scope them by namespaces or "
        "workload_selector (admission still applies the selector)"
    )
    applied = vigil(svc, "enforcement", "apply", "-f", str(path))
    assert applied.exit_code == 0, applied.output
    assert applied.stderr == f"warning: {warning}\n"
    assert svc.get("/api/v1/policy/enforcement").json()["warnings"] == [warning]
    shown = vigil(svc, "enforcement", "show")
    assert shown.stdout.splitlines()[1] == f"# warning: {warning}"
    # what `show` prints is still a file `apply` takes
    again = tmp_path / "shown.yaml"
    again.write_text(shown.stdout)
    assert vigil(svc, "enforcement", "apply", "-f", str(again)).exit_code == 0


def test_a_bad_file_is_one_error_line_and_the_service_is_not_asked(live_service, tmp_path):
    svc = live_service
    bad = tmp_path / "bad.yaml"
    for text, message in (
        ("policies: [{name: prod, mode: block}]", "policies[0].mode: Input should be 'enforce', 'warn' or 'audit'"),
        ("policies: [", "not valid YAML at line 1, column 12"),
        (
            "policies: [{name: prod, rules: {unscaned: deny}}]",
            "policies[0].rules.unscaned: Extra inputs are not permitted",
        ),
    ):
        bad.write_text(text)
        result = vigil(svc, "enforcement", "apply", "-f", str(bad))
        assert result.exit_code == 2
        assert result.output == f"error: enforcement policy {bad}: {message}\n"
    assert svc.get("/api/v1/policy/enforcement/history").json() == {"items": []}


def test_a_viewer_may_list_decisions_but_not_read_or_change_the_policy(live_service, tmp_path):
    svc = live_service
    viewer = svc.token("viewer", "auditor")
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY)
    for args in (("enforcement", "apply", "-f", str(path)), ("enforcement", "show"), ("enforcement", "history")):
        result = vigil(svc, *args, token=viewer)
        assert result.exit_code == 1, result.output
        assert result.output.startswith("error: 403 forbidden: ")
    assert vigil(svc, "decisions", token=viewer).exit_code == 0
    no_token = runner.invoke(build_app("policy"), ["policy", "decisions", "--url", svc.url], env={"VIGIL_TOKEN": ""})
    assert no_token.exit_code == 2 and no_token.output == "error: no API token: pass --token or set VIGIL_TOKEN\n"


def _decision(uid: str, minutes: int, namespace: str, name: str, outcome: str, **kw) -> AdmissionDecisionRecord:
    return AdmissionDecisionRecord(
        uid=uid,
        at=T0 + timedelta(minutes=minutes),
        operation="CREATE",
        kind="Pod",
        namespace=namespace,
        name=name,
        user="alice@example.com",
        outcome=outcome,
        **kw,
    )


def test_decisions_are_listed_newest_first_and_filtered(live_service):
    svc = live_service
    prod, _ = svc.register("prod")
    staging, _ = svc.register("staging")
    untrusted = ViolationRecord(
        policy="prod",
        mode="enforce",
        rule="untrusted_registry",
        image="evil.example.org/x:1",
        message='policy "prod" rule untrusted_registry: image evil.example.org/x:1: registry evil.example.org is '
        "not trusted",
    )
    with svc.engine.begin() as conn:
        record_decisions(
            conn,
            prod,
            [
                _decision(
                    "u1", 0, "payments", "web", "denied", images=["evil.example.org/x:1"], violations=[untrusted]
                ),
                _decision("u2", 1, "payments", "api", "warned"),
            ],
        )
        record_decisions(conn, staging, [_decision("u3", 2, "default", "", "audited")])
        record_decisions(
            conn,
            prod,
            [_decision("u4", 3, "payments", "debug", "break_glass", break_glass="INC-42", violations=[untrusted])],
        )

    def uids(*args: str) -> list[str]:
        result = vigil(svc, "decisions", "-o", "json", *args)
        assert result.exit_code == 0, result.output
        return [d["uid"] for d in orjson.loads(result.stdout)]

    assert uids() == ["u4", "u3", "u2", "u1"]
    assert uids("--cluster", "prod") == ["u4", "u2", "u1"]
    assert uids("--cluster", staging) == ["u3"]
    assert uids("--namespace", "payments", "--outcome", "denied") == ["u1"]
    assert uids("--limit", "2") == ["u4", "u3"]

    doc = orjson.loads(vigil(svc, "decisions", "-o", "json", "--outcome", "break_glass").stdout)
    assert len(doc) == 1
    assert {k: doc[0][k] for k in ("uid", "cluster_id", "namespace", "kind", "name", "outcome", "break_glass")} == {
        "uid": "u4",
        "cluster_id": prod,
        "namespace": "payments",
        "kind": "Pod",
        "name": "debug",
        "outcome": "break_glass",
        "break_glass": "INC-42",
    }
    assert doc[0]["violations"][0]["message"] == untrusted.message

    table = vigil(svc, "decisions", "--cluster", "prod", "--outcome", "denied")
    assert table.exit_code == 0, table.output
    (row,) = [line for line in table.stdout.splitlines() if "Pod/web" in line]
    assert [c.strip() for c in row.strip("│┃ ").split("│")] == [
        "2026-12-01T09:30:00Z",
        prod,
        "payments",
        "Pod/web",
        "alice@example.com",
        "denied",
        "evil.example.org/x:1",
        "untrusted_registry",
        "-",
    ]

    bad = vigil(svc, "decisions", "--outcome", "blocked")
    assert bad.exit_code == 2
    assert bad.output == (
        "error: --outcome 'blocked' is not one of allowed, denied, warned, audited, break_glass, exempt\n"
    )
    unknown = vigil(svc, "decisions", "--cluster", "nosuch")
    assert unknown.exit_code == 1
    assert unknown.output.startswith("error: 422 invalid_request: query.cluster: cluster 'nosuch' is not registered")
