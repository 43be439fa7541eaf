"""Listings printed to a pipe keep every value whole, and every listing command answers `-o json`."""

from __future__ import annotations

import subprocess
import sys

import orjson
from typer.testing import CliRunner

from vigil.cli import app

runner = CliRunner()
VIGIL = [sys.executable, "-m", "vigil.cli"]


def test_token_list_through_a_pipe_shows_whole_ids_that_revoke_accepts(tmp_path):
    data = str(tmp_path / "d")
    assert runner.invoke(app, ["service", "init", "--data-dir", data]).exit_code == 0
    made = runner.invoke(
        app, ["token", "create", "--role", "viewer", "--name", "a-rather-long-token-name-for-ci", "--data-dir", data]
    )
    assert made.exit_code == 0
    listed = orjson.loads(runner.invoke(app, ["token", "list", "-o", "json", "--data-dir", data]).stdout)
    assert [t["name"] for t in listed] == ["initial-admin", "a-rather-long-token-name-for-ci"]
    # Through a real pipe (not a terminal) the table is as wide as its values.
    piped = subprocess.run(VIGIL + ["token", "list", "--data-dir", data], capture_output=True, text=True, check=True)
    for token in listed:
        assert token["id"] in piped.stdout and token["name"] in piped.stdout
    assert "…" not in piped.stdout
    revoked = runner.invoke(app, ["token", "revoke", listed[1]["id"], "--data-dir", data])
    assert revoked.exit_code == 0 and f"revoked {listed[1]['id']}" in revoked.stdout


def test_token_list_refuses_an_unknown_output(tmp_path):
    result = runner.invoke(app, ["token", "list", "-o", "yaml", "--data-dir", str(tmp_path)])
    assert result.exit_code == 2 and "'yaml' is not one of" in " ".join(result.output.split())


def test_trust_list_json(tmp_path):
    data = str(tmp_path / "d")
    assert runner.invoke(app, ["trust", "add", "registry.example.com/team", "--data-dir", data]).exit_code == 0
    rows = orjson.loads(runner.invoke(app, ["trust", "list", "-o", "json", "--data-dir", data]).stdout)
    assert [(r["kind"], r["pattern"]) for r in rows] == [("trusted", "registry.example.com/team")]
