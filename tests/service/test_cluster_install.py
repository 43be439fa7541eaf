"""`vigil cluster install`: a pending cluster, a bound registration token in a 0600 file, and the exact
Helm command that reads it (rendered with the real chart when Helm's engine is installed)."""

from __future__ import annotations

import base64
import shlex
import stat
from pathlib import Path

import httpx
import pytest
import yaml
from typer.testing import CliRunner

from vigil.service.cli.serve import cluster_app

CHART = Path(__file__).resolve().parents[2] / "deploy" / "helm" / "vigil"


@pytest.fixture
def cwd(tmp_path, monkeypatch) -> Path:
    work = tmp_path / "work"  # tmp_path itself holds the service's data
    work.mkdir()
    monkeypatch.chdir(work)
    return work


def install(svc, *args: str):
    return CliRunner().invoke(
        cluster_app, ["install", "--url", svc.url, *args], env={"VIGIL_TOKEN": svc.admin_token}, catch_exceptions=False
    )


def register(svc, token: str, name: str) -> httpx.Response:
    return httpx.post(
        f"{svc.url}/api/v1/clusters/register", json={"name": name}, headers={"Authorization": f"Bearer {token}"}
    )


def test_install_prints_the_helm_command_reading_a_private_token_file(live_service, cwd):
    result = install(live_service, "--name", "prod-eu-1", "--ttl", "2h", "--max-uses", "1",
                     "--service-url", "https://vigil.example.com")  # fmt: skip
    assert result.exit_code == 0, result.output
    token_file = cwd / "vigil-registration-prod-eu-1.token"
    token = token_file.read_text()
    assert token.startswith("vgl_r_") and "\n" not in token
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert result.stdout == (
        "helm upgrade --install vigil deploy/helm/vigil \\\n"
        "    --set central.enabled=false \\\n"
        "    --set securedCluster.clusterName=prod-eu-1 \\\n"
        "    --set securedCluster.serviceUrl=https://vigil.example.com \\\n"
        "    --set-file securedCluster.registrationToken=./vigil-registration-prod-eu-1.token\n"
    )
    assert token not in result.output  # stdout and stderr: the secret is in the file only

    (cluster,) = live_service.get("/api/v1/clusters").json()["items"]
    assert (cluster["name"], cluster["status"], cluster["controller"]["status"]) == (
        "prod-eu-1",
        "pending",
        "never_seen",
    )
    # The token registers that cluster only, once.
    other = register(live_service, token, "someone-else")
    assert other.status_code == 403
    assert other.json()["detail"] == "this registration token registers cluster 'prod-eu-1' only, not 'someone-else'"
    registered = register(live_service, token, "prod-eu-1")
    assert registered.status_code == 200 and registered.json()["cluster_id"] == cluster["id"]
    assert register(live_service, token, "prod-eu-1").status_code == 401  # max uses 1
    assert [c["id"] for c in live_service.get("/api/v1/clusters").json()["items"]] == [cluster["id"]]


def test_manifest_holds_the_token_in_a_secret(live_service, cwd):
    result = install(live_service, "--name", "edge", "--manifest")
    assert result.exit_code == 0, result.output
    assert list(cwd.iterdir()) == []  # nothing written: the manifest goes to stdout
    assert "kubectl apply -k deploy/manifests/secured-cluster" in result.stdout
    # Nothing to make by hand for the sensors: the controller writes their Secret once registered.
    assert "# The controller then writes the sensors' credential Secret in vigil-sensor.\n" in result.stdout
    secret = yaml.safe_load(result.stdout)
    assert secret["kind"] == "Secret"
    assert (secret["metadata"]["name"], secret["metadata"]["namespace"]) == ("vigil-controller", "vigil-system")
    data = secret["stringData"]
    assert set(data) == {"service-url", "cluster-name", "registration-token"}
    assert (data["service-url"], data["cluster-name"]) == (live_service.url, "edge")
    assert register(live_service, data["registration-token"], "edge").status_code == 200


def test_without_an_admin_token_nothing_is_made(live_service, cwd):
    viewer = live_service.token("viewer")
    result = CliRunner().invoke(cluster_app, ["install", "--url", live_service.url, "--name", "x", "--token", viewer])
    assert result.exit_code == 1
    assert "403" in result.output
    assert live_service.get("/api/v1/clusters").json()["items"] == []
    assert list(cwd.iterdir()) == []


def values_from_command(command: str, cwd: Path) -> dict:
    """The values Helm builds from the printed command's --set and --set-file flags."""
    words = shlex.split(command.replace("\\\n", " "))
    assert words[:5] == ["helm", "upgrade", "--install", "vigil", "deploy/helm/vigil"]
    values: dict = {}
    for flag, assignment in zip(words[5::2], words[6::2], strict=True):
        key, _, value = assignment.partition("=")
        if flag == "--set-file":
            value = (cwd / value).read_text()
        else:
            assert flag == "--set"
        node = values
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = {"false": False, "true": True}.get(value, value)
    return values


def test_the_printed_command_installs_the_chart_with_the_token(live_service, cwd):
    helm_python = pytest.importorskip("helm_python", reason="helm-python-sdk (scripts/setup --test) is missing")
    result = install(live_service, "--name", "prod-eu-1", "--service-url", "https://vigil.example.com")
    token = (cwd / "vigil-registration-prod-eu-1.token").read_text()
    chart = helm_python.Chart.load(str(CHART))
    try:
        rendered = chart.render(values_from_command(result.stdout, cwd), name="vigil", namespace="default",
                                is_install=True)  # fmt: skip
    finally:
        chart.close()
    objects = [doc for path, text in rendered.items() if not path.endswith("NOTES.txt")
               for doc in yaml.safe_load_all(text) if doc]  # fmt: skip
    kinds = {(o["kind"], o["metadata"]["name"]): o for o in objects}
    assert ("Deployment", "vigil-service") not in kinds
    secret = kinds[("Secret", "vigil-registration")]
    assert base64.b64decode(secret["data"]["registration-token"]).decode() == token
    env = {
        e["name"]: e
        for e in kinds[("Deployment", "vigil-controller")]["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["VIGIL_CLUSTER_NAME"]["value"] == "prod-eu-1"
    assert env["VIGIL_SERVICE_URL"]["value"] == "https://vigil.example.com"
    assert env["VIGIL_REGISTRATION_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "vigil-registration"
    controller = kinds[("Deployment", "vigil-controller")]["spec"]["template"]["spec"]["containers"][0]
    assert controller["args"][1:3] == ["--sensor-namespace", "vigil-sensor"]
    assert kinds[("Role", "vigil-controller-sensor-credential")]["rules"][0]["resourceNames"] == [
        "vigil-sensor-credential"
    ]
