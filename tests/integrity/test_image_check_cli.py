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
