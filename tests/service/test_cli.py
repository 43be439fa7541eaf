"""The `vigil` command: `up` on a fresh data dir, token and cluster administration, `get` against a live service."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
import orjson
from typer.testing import CliRunner

from vigil.cli import app
from vigil.devtools.inventory import synthetic_snapshot
from vigil.devtools.net import free_port, wait_for_port

from .helpers import post_batch

runner = CliRunner()
VIGIL = [sys.executable, "-m", "vigil.cli"]


def test_up_on_fresh_data_dir_serves_health_and_refuses_anonymous_api(tmp_path):
    port = free_port()
    data = tmp_path / "fresh" / "vigil"
    # --no-sensor: as root with BTF, `vigil up` registers this host's cluster, and the store is to stay empty here
    # (tests/service/test_up.py runs the sensor).
    proc = subprocess.Popen(
        VIGIL + ["up", "--port", str(port), "--data-dir", str(data), "--no-sensor"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")},
    )
    try:
        wait_for_port(port, timeout=30)
        assert httpx.get(f"http://127.0.0.1:{port}/healthz").json()["status"] == "ok"
        anon = httpx.get(f"http://127.0.0.1:{port}/api/v1/clusters")
        assert anon.status_code == 401 and anon.json()["error"] == "unauthorized"
    finally:
        proc.terminate()
        out, errs = proc.communicate(timeout=15)
    lines = out.splitlines()
    assert lines[0].startswith(f"Vigil service on http://127.0.0.1:{port}")
    token_file = data / "admin-token"
    assert (
        f"First start: admin token written to {token_file} (mode 0600); store it elsewhere, then delete the file."
    ) in lines
    token = token_file.read_text().strip()
    assert token.startswith("vgl_u_") and oct(token_file.stat().st_mode & 0o777) == "0o600"
    # Stdout is a pipe (a log, as under systemd or a container runtime): the secret is not in it.
    assert token not in out
    assert (data / "vigil.db").is_file() and oct(data.stat().st_mode & 0o777) == "0o700"
    # The secret is printed once to the terminal, never into the logs.
    assert token not in errs
    # A second start finds the admin and prints no token.
    port2 = free_port()
    proc = subprocess.Popen(
        VIGIL + ["up", "--port", str(port2), "--data-dir", str(data), "--no-sensor"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_port(port2, timeout=30)
        ok = httpx.get(f"http://127.0.0.1:{port2}/api/v1/clusters", headers={"Authorization": f"Bearer {token}"})
        assert ok.status_code == 200 and ok.json() == {"items": [], "next": None}
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=15)
    assert "admin token" not in out


def test_up_refuses_plain_http_off_loopback(tmp_path):
    result = runner.invoke(app, ["up", "--host", "0.0.0.0", "--data-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "--host 0.0.0.0 is not a loopback address" in result.output


def test_token_and_cluster_commands_work_on_the_store(tmp_path):
    data = str(tmp_path / "d")
    init = runner.invoke(app, ["service", "init", "--data-dir", data])
    assert init.exit_code == 0 and "vgl_u_" not in init.output
    assert f"admin token written to {data}/admin-token (mode 0600)" in init.output
    assert (tmp_path / "d" / "admin-token").read_text().startswith("vgl_u_")
    made = runner.invoke(app, ["token", "create", "--role", "viewer", "--name", "auditor", "--data-dir", data])
    assert made.exit_code == 0
    bad = runner.invoke(app, ["token", "create", "--role", "root", "--name", "x", "--data-dir", data])
    assert bad.exit_code == 2 and "--role 'root' must be admin or viewer" in bad.output
    reg = runner.invoke(app, ["cluster", "token", "--ttl", "2h", "--max-uses", "3", "--data-dir", data])
    assert reg.exit_code == 0 and "vgl_r_" in reg.output
    ttl = runner.invoke(app, ["cluster", "token", "--ttl", "soon", "--data-dir", data])
    assert ttl.exit_code == 2 and "'soon' is not a duration like 30m, 24h or 7d" in ttl.output


def test_get_lists_resources_as_json_and_tables(live_service):
    svc = live_service
    cid, cred = svc.register("cli")
    post_batch(svc, cred, synthetic_snapshot(cid, nodes=2, pods=6, images=2))
    env = {"VIGIL_URL": svc.url, "VIGIL_TOKEN": svc.token("viewer")}
    out = runner.invoke(app, ["get", "pods", "--output", "json"], env=env)
    assert out.exit_code == 0, out.output
    pods = orjson.loads(out.stdout)
    assert len(pods) == 6 and {p["cluster_id"] for p in pods} == {cid}
    table = runner.invoke(app, ["get", "clusters"], env=env)
    assert table.exit_code == 0 and "cli" in table.output and cid[:8] in table.output
    limited = runner.invoke(app, ["get", "nodes", "--limit", "1", "-o", "json"], env=env)
    assert [n["name"] for n in orjson.loads(limited.stdout)] == ["node-0000"]
    denied = runner.invoke(app, ["get", "pods"], env={"VIGIL_URL": svc.url, "VIGIL_TOKEN": "vgl_u_wrong"})
    assert denied.exit_code == 1 and "401 unauthorized: token is not known" in denied.output
    no_token = runner.invoke(app, ["get", "pods"], env={"VIGIL_URL": svc.url, "VIGIL_TOKEN": ""})
    assert no_token.exit_code == 2 and "no API token" in no_token.output


def test_first_admin_token_is_shown_on_a_terminal_and_kept_in_a_0600_file(tmp_path):
    """On a terminal the person who started the service sees the token; the file holds the same one."""
    import pty

    data = tmp_path / "d"
    primary, secondary = pty.openpty()
    proc = subprocess.Popen(
        VIGIL + ["service", "init", "--data-dir", str(data)],
        stdout=secondary,
        stderr=subprocess.PIPE,
        env={k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")},
    )
    os.close(secondary)
    shown = b""
    while True:
        try:
            chunk = os.read(primary, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        shown += chunk
    os.close(primary)
    assert proc.wait(timeout=60) == 0, proc.stderr.read() if proc.stderr else ""
    token = (data / "admin-token").read_text().strip()
    assert oct((data / "admin-token").stat().st_mode & 0o777) == "0o600"
    lines = [line.strip() for line in shown.decode().splitlines()]
    assert lines[lines.index("Admin token (shown once):") + 1] == token
