"""`vigil controller` refuses bad inputs with errors naming them; credentials are kept 0600."""

from __future__ import annotations

import stat

from typer.testing import CliRunner

from vigil.controller.cli import app
from vigil.controller.credentials import ClusterCredential, load_credential, save_credential


def test_no_credential_and_no_registration_token(tmp_path):
    cred = tmp_path / "cred.json"
    result = CliRunner().invoke(app, ["--service", "http://127.0.0.1:9", "--credential-file", str(cred)], env={})
    assert result.exit_code == 2
    assert f"error: no credential file at {cred}: pass --registration-token and --cluster-name" in result.output


def test_plain_http_only_on_loopback(tmp_path):
    result = CliRunner().invoke(
        app, ["--service", "http://vigil.example.com", "--credential-file", str(tmp_path / "c")], env={}
    )
    assert result.exit_code == 2
    assert "service URL 'http://vigil.example.com': plain HTTP is allowed only on loopback; use https" in result.output


def test_credential_file_roundtrip_and_mode(tmp_path):
    path = tmp_path / "sub" / "cred.json"
    save_credential(path, ClusterCredential("cid", "secret-value", "prod", "https://x"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = load_credential(path)
    assert loaded == ClusterCredential("cid", "secret-value", "prod", "https://x")
    assert "secret-value" not in repr(loaded)


def test_broken_credential_file_is_named(tmp_path):
    path = tmp_path / "cred.json"
    path.write_text('{"cluster_id": "x"}')
    result = CliRunner().invoke(app, ["--service", "http://127.0.0.1:9", "--credential-file", str(path)], env={})
    assert result.exit_code == 2
    assert f"error: credential file {path}: needs non-empty string fields cluster_id and credential" in result.output
