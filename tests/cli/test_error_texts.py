"""Error texts say what to fix: a bad --url names the option and its rule, an untrusted verdict says why,
and `vigil intel import` reports each warning once, on stderr."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vigil.cli import build_app

runner = CliRunner()
VIGIL = [sys.executable, "-m", "vigil.cli"]
URL_RULE = "a service URL needs the scheme http or https and a host, e.g. http://127.0.0.1:8080"


@pytest.mark.parametrize(
    "command",
    [
        ["get", "clusters"],
        ["alerts", "list"],
        ["cluster", "credentials", "demo"],
        ["cluster", "install", "--name", "x"],
    ],
    ids=" ".join,
)
@pytest.mark.parametrize("url", ["not-a-url", "ftp://host", "http://"])
def test_a_service_url_without_scheme_or_host_is_refused_naming_the_rule(command, url, tmp_path):
    result = runner.invoke(
        build_app(), [*command, "--url", url, "--token", "vgl_u_x"], terminal_width=300, env={"HOME": str(tmp_path)}
    )
    assert result.exit_code != 0
    assert " ".join(result.stderr.split()).endswith(f"error: --url {url!r}: {URL_RULE}"), result.output


def test_plain_get_refuses_the_url_too():
    # `vigil get` runs without typer when its arguments are plain (vigil.cli.get.run_plain).
    done = subprocess.run(
        VIGIL + ["get", "clusters", "--url", "not-a-url", "--token", "vgl_u_x"], capture_output=True, text=True
    )
    assert done.returncode == 1
    assert " ".join(done.stderr.split()) == f"error: --url 'not-a-url': {URL_RULE}"


def test_an_untrusted_verdict_says_why():
    result = runner.invoke(
        build_app(), ["image", "check", "docker.io/library/nginx:1.25", "--trusted", "registry.example.com"]
    )
    assert result.exit_code == 1
    assert (
        "finding    untrusted_registry (high): no trusted pattern matches docker.io/library/nginx "
        "(consulted: trusted registry.example.com (global))\n"
    ) in result.stdout


def _record(modified: str, summary: str) -> str:
    return json.dumps(
        {
            "id": "PYSEC-2024-99",
            "modified": modified,
            "summary": summary,
            "affected": [{"package": {"ecosystem": "PyPI", "name": "demo-lib"}, "versions": ["1.0"]}],
        }
    )


def test_intel_import_prints_each_warning_once_on_stderr(tmp_path: Path):
    records = tmp_path / "osv"
    records.mkdir()
    (records / "a.json").write_text(_record("2024-01-01T00:00:00Z", "older"))
    (records / "b.json").write_text(_record("2024-02-01T00:00:00Z", "newer"))
    done = subprocess.run(
        VIGIL + ["intel", "import", str(records), "--db", str(tmp_path / "intel.db")], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "warning" not in done.stdout
    warnings = [line for line in done.stderr.splitlines() if "PYSEC-2024-99" in line]
    assert len(warnings) == 1 and warnings[0].startswith("warning: "), done.stderr


def test_a_plain_http_registry_spoken_to_over_tls_gets_the_plain_http_hint(tmp_path):
    from vigil.devtools.registry_server import RegistryServer

    with RegistryServer.for_pytest(tmp_path / "registry") as registry:
        result = runner.invoke(
            build_app(), ["image", "check", f"{registry.host}/shop/web:1.0", "--trusted", registry.host]
        )
    assert result.exit_code == 3, result.output
    line = next(line for line in result.stdout.splitlines() if line.startswith("registry "))
    assert "WRONG_VERSION_NUMBER" in line
    assert f"; the registry may speak plain HTTP: use --plain-http {registry.host} (or plain_http: true)" in line


def test_kube_api_load_names_both_files_of_a_duplicate_object(tmp_path):
    objects = tmp_path / "k8s"
    objects.mkdir()
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "shop"}, "spec": {}}
    (objects / "a.json").write_text(json.dumps(pod))
    (objects / "b.json").write_text(json.dumps(dict(pod, spec={"nodeName": "n1"})))
    result = runner.invoke(build_app(), ["dev", "kube-api", "--load", str(objects), "--port", "0"])
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: Pod shop/web is defined twice: in {objects / 'a.json'} and in {objects / 'b.json'}\n"
    )
