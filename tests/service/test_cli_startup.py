"""The `vigil` command's own part: the version, and what a client command loads (never the service)."""

from __future__ import annotations

import os
import subprocess
import sys

import orjson
from typer.testing import CliRunner

from vigil import __version__
from vigil.cli import app
from vigil.devtools.inventory import synthetic_snapshot

from .helpers import post_batch

# Runs `vigil ARGS...` as the console script does, then writes every loaded module to stderr.
PROBE = (
    "import atexit, sys\n"
    "atexit.register(lambda: sys.stderr.write('\\n'.join(sorted(sys.modules))))\n"
    "sys.argv = ['vigil', *sys.argv[1:]]\n"
    "from vigil.cli import main\n"
    "main()\n"
)
SERVICE_SIDE = ("vigil.service.app", "vigil.service.store", "vigil.service.api", "sqlalchemy", "fastapi", "uvicorn")
OTHER_UNITS = ("vigil.controller", "vigil.sensor", "vigil.scanner", "vigil.catalog", "kubernetes_asyncio")


def probe(*args: str, env: dict[str, str] | None = None) -> tuple[subprocess.CompletedProcess, set[str]]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    done = subprocess.run([sys.executable, "-c", PROBE, *args], env={**clean, **(env or {})},
                          capture_output=True, text=True, timeout=60)
    return done, set(done.stderr.splitlines())


def loaded(modules: set[str], prefixes: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if any(m == p or m.startswith(p + ".") for p in prefixes))


def test_version_flag_and_command_print_the_version():
    assert __version__ == "0.1.0"
    runner = CliRunner()
    for args in (["--version"], ["version"]):
        result = runner.invoke(app, args)
        assert (result.exit_code, result.output) == (0, "0.1.0\n"), args
    done = subprocess.run([sys.executable, "-m", "vigil.cli", "--version"], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout, done.stderr) == (0, "0.1.0\n", "")


def test_version_loads_no_unit_and_no_http_client():
    done, modules = probe("--version")
    assert done.returncode == 0 and done.stdout == "0.1.0\n"
    assert loaded(modules, SERVICE_SIDE + OTHER_UNITS + ("httpx", "rich", "vigil.service")) == []


def test_get_against_a_running_service_loads_only_the_client(live_service):
    svc = live_service
    cid, cred = svc.register("startup")
    post_batch(svc, cred, synthetic_snapshot(cid, nodes=2, pods=3, images=1)).raise_for_status()
    env = {"VIGIL_URL": svc.url, "VIGIL_TOKEN": svc.token("viewer")}
    done, modules = probe("get", "clusters", "-o", "json", env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = orjson.loads(done.stdout)
    assert [(r["id"], r["name"], r["nodes"], r["pods"]) for r in rows] == [(cid, "startup", 2, 3)]
    # The columns (and so the response models) matter only to a table.
    assert "vigil.wire.client" in modules and "vigil.wire.views" not in modules
    assert loaded(modules, SERVICE_SIDE + OTHER_UNITS + ("vigil.service",)) == []


def test_get_without_a_token_says_so_and_loads_no_http_client():
    done, modules = probe("get", "pods")
    assert done.returncode == 2 and "no API token: pass --token or set VIGIL_TOKEN" in done.stderr
    assert loaded(modules, SERVICE_SIDE + ("httpx", "vigil.service")) == []


def test_image_check_help_loads_neither_the_store_nor_the_registry_client():
    done, modules = probe("image", "check", "--help")
    assert done.returncode == 0 and "Print the trust and integrity verdict of one image" in done.stdout
    assert "--registry-config" in done.stdout and "vigil.service.cli.check" in modules
    assert loaded(modules, SERVICE_SIDE + OTHER_UNITS + ("vigil.registry", "vigil.service.jobs", "httpx", "yaml")) == []
