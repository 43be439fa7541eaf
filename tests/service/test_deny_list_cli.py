"""`vigil policy deny-list list|add|remove` against a live service."""

from __future__ import annotations

import orjson
from typer.testing import CliRunner

from vigil.cli import build_app

runner = CliRunner()
DIGEST = "ab" * 32


def vigil(svc, *args: str, token: str | None = None):
    return runner.invoke(
        build_app("policy"),
        ["policy", "deny-list", *args, "--url", svc.url, "--token", token or svc.admin_token],
        terminal_width=200,
    )


def test_add_list_remove_with_history(live_service):
    svc = live_service
    added = vigil(svc, "add", f"sha256:{DIGEST.upper()}", "--reason", "miner from incident 42")
    assert (added.exit_code, added.stdout) == (0, f"denied {DIGEST}: miner from incident 42\n")
    listed = vigil(svc, "list", "-o", "json", token=svc.token("viewer", "v"))
    assert listed.exit_code == 0, listed.output
    rows = orjson.loads(listed.stdout)
    assert [(r["sha256"], r["reason"], r["added_by"]) for r in rows] == [
        (DIGEST, "miner from incident 42", "token:test-admin")
    ]
    table = vigil(svc, "list")
    assert DIGEST in table.stdout and "miner from incident 42" in table.stdout
    twice = vigil(svc, "add", DIGEST, "--reason", "again")
    assert twice.exit_code == 1
    assert f"sha256 {DIGEST} is already on the deny list" in twice.stderr
    removed = vigil(svc, "remove", DIGEST)
    assert (removed.exit_code, removed.stdout) == (0, f"removed {DIGEST} from the deny list\n")
    gone = vigil(svc, "remove", DIGEST)
    assert gone.exit_code == 1 and f"sha256 {DIGEST} is not on the deny list" in gone.stderr
    history = svc.get("/api/v1/policy/deny-list/history").json()["items"]
    assert [(h["change"], h["by"]) for h in history] == [("removed", "token:test-admin"), ("added", "token:test-admin")]


def test_bad_input_is_one_error_line_and_the_service_is_not_asked(live_service):
    bad = vigil(live_service, "add", "1234", "--reason", "x")
    assert bad.exit_code == 2
    assert bad.stderr == "error: SHA256 '1234' is not a file sha256 (64 hex digits, optionally after 'sha256:')\n"
    blank = vigil(live_service, "add", DIGEST, "--reason", " ")
    assert (blank.exit_code, blank.stderr) == (2, "error: --reason must say why the file is denied\n")
    by_viewer = vigil(live_service, "add", DIGEST, "--reason", "x", token=live_service.token("viewer", "v"))
    assert by_viewer.exit_code == 1
    assert "a viewer token cannot do this; it needs a token with role admin" in by_viewer.stderr
    assert live_service.get("/api/v1/policy/deny-list").json() == {"items": []}
