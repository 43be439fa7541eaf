"""The `vigil` command's own part: the version, and what a client command loads (never the service)."""

from __future__ import annotations

import os
import subprocess
import sys

import orjson
from typer.testing import CliRunner

from vigil import __version__
from vigil.cli import app, get
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
OTHER_UNITS = ("vigil.controller", "vigil.sensor", "vigil.scanner", "vigil.catalog", "vigil.kube")


def probe(*args: str, env: dict[str, str] | None = None) -> tuple[subprocess.CompletedProcess, set[str]]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args], env={**clean, **(env or {})}, capture_output=True, text=True, timeout=60
    )
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
    # A plain `get` runs without typer (and the pydantic it builds parameters with); the columns,
    # and so the response models, matter only to a table.
    assert "vigil.wire.client" in modules and "vigil.cli.root" not in modules
    client_only = ("vigil.service", "typer", "pydantic", "vigil.wire.views")
    assert loaded(modules, SERVICE_SIDE + OTHER_UNITS + client_only) == []


def test_plain_get_prints_what_the_typer_command_prints(live_service):
    svc = live_service
    cid, cred = svc.register("same")
    post_batch(svc, cred, synthetic_snapshot(cid, nodes=3, pods=4, images=2)).raise_for_status()
    viewer = svc.token("viewer")
    env = {"VIGIL_URL": svc.url, "VIGIL_TOKEN": viewer}
    cases = [
        ["get", "pods", "-o", "json"],
        ["get", "--output=json", "nodes", "--limit", "2"],
        ["get", "workloads", "-n", "default", "--type", "Deployment", "--output", "json", "--cluster", cid],
        ["get", "findings", "--severity", "critical,high", "--status", "open", "-o", "json"],
        ["get", "images", "-o", "json", "--url", svc.url, "--token", viewer],
    ]
    for args in cases:
        done, modules = probe(*args, env=env)
        typed = CliRunner().invoke(app, args, env=env)
        assert (done.returncode, typed.exit_code) == (0, 0), (args, done.stderr[-500:], typed.output)
        assert orjson.loads(done.stdout) == orjson.loads(typed.stdout), args
        assert "typer" not in modules, args
    assert [n["name"] for n in orjson.loads(probe(*cases[1], env=env)[0].stdout)] == ["node-0000", "node-0001"]
    assert len(orjson.loads(probe(*cases[0], env=env)[0].stdout)) == 4
    denied, modules = probe("get", "pods", "-o", "json", env={"VIGIL_URL": svc.url, "VIGIL_TOKEN": "vgl_u_wrong"})
    assert denied.returncode == 1 and "401 unauthorized: token is not known" in denied.stderr
    assert "typer" not in modules


def test_get_arguments_the_plain_path_leaves_to_typer():
    env = {"VIGIL_URL": "http://127.0.0.1:1", "VIGIL_TOKEN": "vgl_u_x"}
    assert get.plain(["pods", "-o", "json", "--limit=3", "-n", "kube-system"], env) == {
        "resource": get.Resource.pods,
        "output": get.Output.json,
        "limit": 3,
        "namespace": "kube-system",
        "url": "http://127.0.0.1:1",
        "token": "vgl_u_x",
    }
    assert get.plain(["clusters", "--url", "http://svc:8080", "--token", "vgl_u_y"], {"VIGIL_URL": ""}) == {
        "resource": get.Resource.clusters,
        "output": get.Output.table,
        "url": "http://svc:8080",
        "token": "vgl_u_y",
    }
    assert get.plain(["clusters"], {"VIGIL_URL": "", "VIGIL_TOKEN": "t"})["url"] == "http://127.0.0.1:8080"
    for args in (
        ["pods", "--help"],
        ["pods", "-ojson"],
        ["pods", "-o", "yaml"],
        ["pods", "--limit", "0"],
        ["pods", "--limit"],
        ["pods", "--cluster", "--namespace", "x"],
        ["pods", "nodes"],
        ["pod"],
        [],
        ["pods", "--clus", "c"],
        ["pods", "-n=x"],
        ["pods", "--", "x"],
        ["pods", "--token", ""],
    ):
        assert get.plain(args, env) is None, args
    assert get.plain(["pods"], {"VIGIL_TOKEN": ""}) is None
    # What typer then answers, as before.
    done, modules = probe("get", "pods", "--limit", "0", env=env)
    assert done.returncode == 2 and "Invalid value for '--limit'" in done.stderr and "typer" in modules
    done, _ = probe("get", "--help")
    assert done.returncode == 0 and "List clusters, nodes, workloads, pods, images or findings" in done.stdout


def test_get_without_a_token_says_so_and_loads_no_http_client():
    done, modules = probe("get", "pods")
    assert done.returncode == 2 and "no API token: pass --token or set VIGIL_TOKEN" in done.stderr
    assert loaded(modules, SERVICE_SIDE + ("httpx", "vigil.service")) == []


def test_image_check_help_loads_neither_the_store_nor_the_registry_client():
    done, modules = probe("image", "check", "--help")
    assert done.returncode == 0 and "Print the trust and integrity verdict of one image" in done.stdout
    assert "--registry-config" in done.stdout and "vigil.service.cli.check" in modules
    assert loaded(modules, SERVICE_SIDE + OTHER_UNITS + ("vigil.registry", "vigil.service.jobs", "httpx", "yaml")) == []
