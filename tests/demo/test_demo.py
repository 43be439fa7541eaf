"""`vigil demo` runs the real pipeline and every finding it shows is computed by it."""

from __future__ import annotations

import subprocess
import sys

import httpx
import orjson
import pytest

from vigil.devtools.net import free_port
from vigil.devtools.registry_server import find_registry_binary


@pytest.mark.skipif(find_registry_binary() is None, reason="docker-registry binary missing (apt-get install docker-registry)")
def test_demo_computes_every_finding_type(tmp_path):
    port = free_port()
    proc = subprocess.run(
        [sys.executable, "-m", "vigil.cli", "demo", "--port", str(port), "--work-dir", str(tmp_path / "demo"), "--exit-when-ready", "--wait", "150", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = orjson.loads(proc.stdout.strip().splitlines()[-1])
    # One finding per workload: shop/api (tag moved, malicious npm package), shop/worker (never
    # pushed), batch/report (deleted), edge/miner (untrusted), shop/web (Jinja2 2.10).
    assert summary["findings"] == {
        "tag_moved": 1,
        "digest_mismatch": 1,
        "artifact_missing": 1,
        "untrusted_registry": 1,
        "vulnerable_package": 1,
        "malicious_package": 1,
    }
    assert summary["token"].startswith("vgl_u_")
    # The demo stopped its parts: the port is free again.
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
    log = (tmp_path / "demo" / "vigil.log").read_text()
    assert summary["token"] not in log
