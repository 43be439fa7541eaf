"""`vigil image check` standalone against the real registry: verdicts, exit codes, JSON output."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from vigil.cli import app as vigil_app
from vigil.devtools.oci import push

from .integrity_helpers import LABELS, client_for, image, registry_config, two_platform


@pytest.fixture(scope="module")
def pushed(registry):
    host = registry.host
    old, new, index = image("cli-old", labels=LABELS), image("cli-new"), two_platform("cli-multi")
    with client_for(registry_config(host)) as c:
        push(c, f"{host}/cli/app:1.0", old)
        push(c, f"{host}/cli/app:1.0", new)  # 1.0 moved from old to new
        push(c, f"{host}/cli/multi:2", index)
        push(c, f"{host}/hub/library/busybox:1.36", new)
    return host, old, new, index


def run(*args: str):
    return CliRunner().invoke(vigil_app, ["image", "check", *args])


def test_clean_exit_0_with_json_and_provenance(pushed):
    host, old, new, index = pushed
    r = run(f"{host}/cli/app:1.0@{new.digest}", "--trusted", host, "--plain-http", host, "--output", "json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert (doc["status"], doc["findings"]) == ("verified", [])
    assert (doc["evidence"]["runtime_digest"], doc["evidence"]["registry_digest"]) == (new.digest, new.digest)
    assert doc["evidence"]["rule"] == f"trusted {host} (global)"
    # without a digest: what the tag points at now is checked (trust, presence)
    r = run(f"{host}/cli/multi:2@{index.images[1].digest}", "--trusted", host, "--plain-http", host)
    assert r.exit_code == 0, r.output
    assert "status     verified" in r.output


def test_tag_moved_exit_1_naming_the_finding(pushed):
    host, old, new, _ = pushed
    r = run(f"{host}/cli/app:1.0@{old.digest}", "--trusted", host, "--plain-http", host, "-o", "json")
    assert r.exit_code == 1
    doc = json.loads(r.output)
    assert doc["status"] == "violation"
    assert [(f["type"], f["severity"]) for f in doc["findings"]] == [("tag_moved", "medium")]
    assert doc["findings"][0]["evidence"]["registry_digest"] == new.digest
    assert doc["provenance"]["source"] == LABELS["org.opencontainers.image.source"]
    text = run(f"{host}/cli/app:1.0@{old.digest}", "--trusted", host, "--plain-http", host)
    assert text.exit_code == 1
    assert f"finding    tag_moved (medium): runtime_digest={old.digest}, registry_digest={new.digest}" in text.output


def test_digest_mismatch_and_missing_and_untrusted(pushed):
    host, *_ = pushed
    rogue = image("cli-rogue").digest
    r = run(f"{host}/cli/app:1.0@{rogue}", "--trusted", host, "--plain-http", host, "-o", "json")
    assert (r.exit_code, [f["type"] for f in json.loads(r.output)["findings"]]) == (1, ["digest_mismatch"])
    r = run(f"{host}/cli/app:9.9", "--trusted", host, "--plain-http", host, "-o", "json")
    doc = json.loads(r.output)
    assert (r.exit_code, [f["type"] for f in doc["findings"]]) == (1, ["artifact_missing"])
    assert doc["findings"][0]["evidence"]["registry_answer"].startswith(
        f"registry {host}, repository cli/app, reference 9.9: tag_unknown"
    )
    r = run(f"{host}/cli/app:1.0", "--trusted", f"{host}/other", "--plain-http", host, "-o", "json")
    doc = json.loads(r.output)
    assert (r.exit_code, [(f["type"], f["severity"]) for f in doc["findings"]]) == (1, [("untrusted_registry", "high")])


def test_policy_file_with_mirror(pushed, tmp_path):
    host, old, new, _ = pushed
    policy = tmp_path / "trust.yaml"
    policy.write_text(f"trusted: ['{host}/hub']\nmirrors:\n  - {{source: docker.io, mirror: '{host}/hub'}}\n")
    r = run(f"busybox:1.36@{new.digest}", "--policy", str(policy), "--plain-http", host)
    assert r.exit_code == 0, r.output
    assert f"checked    {host}/hub/library/busybox" in r.output
    assert f"mirror     mirror docker.io -> {host}/hub (global)" in r.output


def test_unreachable_exit_3_and_usage_errors_exit_2(pushed):
    r = run("127.0.0.1:9/cli/app:1.0", "--plain-http", "127.0.0.1:9", "-o", "json")
    assert r.exit_code == 3
    doc = json.loads(r.output)
    assert doc["status"] == "unknown"
    assert doc["evidence"]["error_kind"] == "unreachable"
    r = run("Registry.example.com/App:1")
    assert r.exit_code == 2
    assert "repository name (App) must be lowercase" in r.output
    r = run("registry.example.com/app:1", "--trusted", "https://x")
    assert r.exit_code == 2
    assert "--trusted: pattern 'https://x': has a scheme" in r.output


def test_runs_as_the_installed_command(pushed):
    host, old, new, _ = pushed
    exe = [sys.executable, "-m", "vigil.cli"]
    done = subprocess.run(
        [*exe, "image", "check", f"{host}/cli/app:1.0@{old.digest}", "--trusted", host, "--plain-http", host],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1, done.stderr
    assert "tag_moved" in done.stdout


# -- --enforcement: the admission webhook's decision for the same image ------------------------------------

ENFORCEMENT = """\
policies:
  - name: strict
    mode: enforce
    scope: {namespaces: [prod]}
  - name: gentle
    mode: warn
    scope: {namespaces: [staging]}
  - name: frontend-scans
    mode: enforce
    scope: {namespaces: [web], workload_selector: {matchLabels: {tier: frontend}}}
    rules: {unscanned: deny}
  - name: pay-gate
    mode: enforce
    scope: {namespaces: [pay]}
    rules: {vulnerabilities: {severity: high, fixable_only: true}}
"""


@pytest.fixture
def enforcement(tmp_path):
    path = tmp_path / "enforcement.yaml"
    path.write_text(ENFORCEMENT)
    return str(path)


UNTRUSTED = "evil.example.com/x:1"
UNTRUSTED_TEXT = (
    f"image {UNTRUSTED}: registry evil.example.com is not trusted (consulted: trusted registry.example.com (global))"
)


def decision_lines(output: str) -> list[str]:
    """The lines from ``decision`` on (the verdict's lines before them are tested above)."""
    lines = output.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("decision ")]
    assert len(starts) == 1, output
    return lines[starts[0] :]


def test_enforcement_denies_an_untrusted_registry_with_the_policy_message(enforcement):
    r = run(UNTRUSTED, "--trusted", "registry.example.com", "--enforcement", enforcement, "--namespace", "prod")
    assert r.exit_code == 1, r.output
    assert decision_lines(r.output) == [
        "decision   denied",
        f'violation  policy "strict" rule untrusted_registry: {UNTRUSTED_TEXT}',
    ]
    r = run(UNTRUSTED, "--trusted", "registry.example.com", "--enforcement", enforcement, "-n", "prod", "-o", "json")
    assert r.exit_code == 1, r.output
    assert json.loads(r.output)["enforcement"] == {
        "outcome": "denied",
        "allowed": False,
        "message": f'policy "strict" rule untrusted_registry: {UNTRUSTED_TEXT}',
        "warnings": [],
        "exempt": None,
        "violations": [
            {
                "policy": "strict",
                "mode": "enforce",
                "rule": "untrusted_registry",
                "image": UNTRUSTED,
                "message": f'policy "strict" rule untrusted_registry: {UNTRUSTED_TEXT}',
                "evidence": {"checked_against": "evil.example.com/x"},
            }
        ],
    }


def test_enforcement_in_warn_mode_prints_the_warning_and_exits_0(enforcement):
    r = run(UNTRUSTED, "--trusted", "registry.example.com", "--enforcement", enforcement, "--namespace", "staging")
    assert r.exit_code == 0, r.output
    assert decision_lines(r.output) == [
        "decision   warned",
        f'warning    policy "gentle" rule untrusted_registry: {UNTRUSTED_TEXT}',
    ]


def test_enforcement_out_of_scope_is_allowed_and_an_exempt_namespace_says_so(enforcement):
    # Without --enforcement the same image is a violation (exit 1); no policy covers namespace dev.
    assert run(UNTRUSTED, "--trusted", "registry.example.com").exit_code == 1
    r = run(UNTRUSTED, "--trusted", "registry.example.com", "--enforcement", enforcement, "--namespace", "dev")
    assert r.exit_code == 0, r.output
    assert decision_lines(r.output) == ["decision   allowed"]
    r = run(UNTRUSTED, "--enforcement", enforcement, "--namespace", "kube-system")
    assert r.exit_code == 0, r.output
    assert decision_lines(r.output) == ["decision   exempt", "exempt     namespace kube-system is exempt"]


def test_enforcement_scope_by_workload_labels_and_the_unscanned_rule(pushed, enforcement):
    # image check scans nothing, so to the policy the image is unscanned, as to a webhook whose service has
    # not scanned it yet.
    host, _, new, _ = pushed
    ref = f"{host}/cli/app:1.0@{new.digest}"
    args = (ref, "--trusted", host, "--plain-http", host, "--enforcement", enforcement, "-n", "web")
    r = run(*args, "--label", "tier=frontend", "--label", "app=shop")
    assert r.exit_code == 1, r.output
    assert decision_lines(r.output) == [
        "decision   denied",
        f'violation  policy "frontend-scans" rule unscanned: image {ref}: not scanned by Vigil yet',
    ]
    r = run(*args, "--label", "tier=backend")
    assert (r.exit_code, decision_lines(r.output)) == (0, ["decision   allowed"])


def test_enforcement_denies_a_moved_tag_naming_both_digests(pushed, enforcement):
    host, old, new, _ = pushed
    ref = f"{host}/cli/app:1.0@{old.digest}"
    r = run(ref, "--trusted", host, "--plain-http", host, "--enforcement", enforcement, "-n", "prod")
    assert r.exit_code == 1, r.output
    assert decision_lines(r.output)[1] == (
        f'violation  policy "strict" rule integrity: image {ref}: tag_moved: tag 1.0 moved: '
        f"the image runs {old.digest}, the registry's tag is {new.digest}"
    )


def test_a_bad_enforcement_file_is_one_error_line_naming_the_file_and_field(tmp_path):
    bad = tmp_path / "enforcement.yaml"
    bad.write_text("policies:\n  - name: strict\n    mode: block\n")
    r = run(UNTRUSTED, "--enforcement", str(bad))
    assert r.exit_code == 2, r.output
    assert r.output.splitlines() == [
        f"error: enforcement policy {bad}: policies[0].mode: Input should be 'enforce', 'warn' or 'audit'"
    ]
    bad.write_text("policies: [\n")
    r = run(UNTRUSTED, "--enforcement", str(bad))
    assert r.exit_code == 2, r.output
    assert len(r.output.splitlines()) == 1 and r.output.startswith(f"error: enforcement policy {bad}: "), r.output
    r = run(UNTRUSTED, "--enforcement", str(tmp_path / "missing.yaml"))
    assert (r.exit_code, r.output.splitlines()) == (2, [f"error: --enforcement {tmp_path}/missing.yaml: no such file"])
    bad.write_text(ENFORCEMENT)
    r = run(UNTRUSTED, "--enforcement", str(bad), "--label", "tier")
    assert (r.exit_code, r.output.splitlines()) == (2, ["error: --label 'tier': must be key=value"])


def scan_report(path, digest, vulnerabilities):
    """A report as `vigil scan IMAGE -o json` writes it (the fields image check reads, and others it skips)."""
    path.write_text(
        json.dumps(
            {
                "target": "the scanned image",
                "digest": digest,
                "summary": {"packages": 3},
                "packages": [],
                "vulnerabilities": [
                    {
                        "package": {"type": "deb", "name": name, "version": "1"},
                        "id": vid,
                        "severity": {"level": level, "score": None},
                        "malicious": malicious,
                        "fixed_versions": fixed,
                    }
                    for name, vid, level, malicious, fixed in vulnerabilities
                ],
            }
        )
    )
    return str(path)


def test_enforcement_with_a_scan_report_judges_its_vulnerabilities_and_malicious_packages(
    pushed, enforcement, tmp_path
):
    host, old, new, _ = pushed
    ref = f"{host}/cli/app:1.0@{new.digest}"
    report = scan_report(
        tmp_path / "scan.json",
        new.digest,
        [
            ("openssl", "CVE-2026-1", "critical", False, ["3.0.9"]),
            ("zlib", "CVE-2026-2", "critical", False, []),  # no fix: fixable_only passes it
            ("libc", "CVE-2026-3", "medium", False, ["2"]),  # under the floor
            ("jinja2", "CVE-2019-10906", "unknown", False, ["2.10.1"]),  # unrated: counts at any floor
            ("evilpkg", "MAL-2026-1", "critical", True, []),
        ],
    )
    args = (ref, "--trusted", host, "--plain-http", host, "--enforcement", enforcement, "--scan-report", report)
    r = run(*args, "-n", "pay")
    assert r.exit_code == 1, r.output
    assert decision_lines(r.output) == [
        "decision   denied",
        f'violation  policy "pay-gate" rule malicious_package: image {ref}: malicious packages: evilpkg',
        f'violation  policy "pay-gate" rule vulnerabilities: image {ref}: 2 vulnerabilities at high or above '
        "or unrated (1 unknown) with a fix: CVE-2026-1 (openssl, critical), CVE-2019-10906 (jinja2, unknown)",
    ]
    # The report makes the image scanned: the unscanned rule no longer refuses it, the malicious package does.
    r = run(*args, "-n", "web", "--label", "tier=frontend")
    assert (r.exit_code, decision_lines(r.output)) == (
        1,
        [
            "decision   denied",
            f'violation  policy "frontend-scans" rule malicious_package: image {ref}: malicious packages: evilpkg',
        ],
    )
    # A report of another digest is refused, naming both.
    r = run(f"{host}/cli/app:1.0@{old.digest}", *args[1:], "-n", "pay")
    assert (r.exit_code, r.output.splitlines()[-1]) == (
        2,
        f"error: --scan-report {report}: is a scan of {new.digest}, but the image runs {old.digest} "
        "(scan the image by reference, or check it by digest)",
    )
    bad = tmp_path / "bad.json"
    bad.write_text('{"target": "x", "vulnerabilities": [{"id": "CVE-1"}]}')
    missing = "vulnerabilities.0.package"
    r = run(ref, "--enforcement", enforcement, "--scan-report", str(bad))
    assert (r.exit_code, r.output.splitlines()) == (
        2,
        [f"error: --scan-report {bad}: not the JSON of `vigil scan -o json` ({missing}: Field required)"],
    )
    r = run(ref, "--scan-report", report)
    assert (r.exit_code, r.output.splitlines()) == (2, ["error: --scan-report is read with --enforcement only"])


def test_the_report_vigil_scan_writes_is_the_one_image_check_reads(pushed, enforcement, tmp_path):
    host, _, new, _ = pushed
    ref = f"{host}/cli/app:1.0@{new.digest}"
    db = tmp_path / "intel.db"
    (tmp_path / "osv").mkdir()
    assert CliRunner().invoke(vigil_app, ["intel", "import", str(tmp_path / "osv"), "--db", str(db)]).exit_code == 0
    scanned = CliRunner().invoke(vigil_app, ["scan", ref, "--plain-http", host, "--db", str(db), "-o", "json"])
    assert scanned.exit_code == 0, scanned.output
    report = tmp_path / "scan.json"
    report.write_text(scanned.stdout)
    args = (
        ref,
        "--trusted",
        host,
        "--plain-http",
        host,
        "--enforcement",
        enforcement,
        "-n",
        "web",
        "-l",
        "tier=frontend",
    )
    r = run(*args, "--scan-report", str(report))
    assert (r.exit_code, decision_lines(r.output)) == (0, ["decision   allowed"]), r.output
    r = run(*args)
    assert (r.exit_code, decision_lines(r.output)[0]) == (1, "decision   denied")
