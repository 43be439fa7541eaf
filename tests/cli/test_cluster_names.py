"""Every `--cluster` (and CLUSTER argument) takes a cluster's name or id; an unknown one is an error naming it
and the clusters there are, never a filter that silently matches nothing."""

from __future__ import annotations

import httpx
import orjson
from typer.testing import CliRunner

from vigil.cli import app
from vigil.devtools.inventory import synthetic_snapshot
from vigil.service.store.findings import Observation, observe

runner = CliRunner()


def post_batch(svc, credential: str, batch) -> None:
    resp = httpx.post(
        f"{svc.url}/api/v1/ingest/inventory",
        content=orjson.dumps(batch.model_dump(mode="json")),
        headers={"Authorization": f"Bearer {credential}", "Content-Type": "application/json"},
        timeout=60,
    )
    resp.raise_for_status()


def _finding(svc, cluster_id: str, n: int) -> None:
    with svc.engine.begin() as conn:
        observe(
            conn,
            Observation(
                dedup_key=f"untrusted/{cluster_id}/{n}",
                type="untrusted_registry",
                severity="high",
                subject=f"docker.io/library/app{n}:latest",
                cluster_id=cluster_id,
                namespace="shop",
            ),
        )


def _one_line(text: str) -> str:
    return " ".join(text.split())


def test_get_takes_cluster_names_and_refuses_unknown_ones(live_service):
    svc = live_service
    demo, demo_cred = svc.register("demo")
    other, _ = svc.register("other")
    post_batch(svc, demo_cred, synthetic_snapshot(demo, nodes=2, pods=3, images=1))
    for n in range(3):
        _finding(svc, demo, n)
    _finding(svc, other, 9)
    env = {"VIGIL_URL": svc.url, "VIGIL_TOKEN": svc.token("viewer")}

    by_name = runner.invoke(app, ["get", "findings", "--cluster", "demo", "-o", "json"], env=env)
    assert by_name.exit_code == 0, by_name.output
    by_id = runner.invoke(app, ["get", "findings", "--cluster", demo, "-o", "json"], env=env)
    subjects = sorted(f["subject"] for f in orjson.loads(by_name.stdout))
    assert subjects == [f"docker.io/library/app{n}:latest" for n in range(3)]
    assert orjson.loads(by_id.stdout) == orjson.loads(by_name.stdout)
    nodes = runner.invoke(app, ["get", "nodes", "--cluster", "demo", "-o", "json"], env=env)
    assert [n["name"] for n in orjson.loads(nodes.stdout)] == ["node-0000", "node-0001"]

    for resource in ("findings", "nodes", "workloads", "pods", "images"):
        unknown = runner.invoke(app, ["get", resource, "--cluster", "nosuch"], env=env)
        assert unknown.exit_code == 1, (resource, unknown.output)
        assert _one_line(unknown.output) == (
            "error: 422 invalid_request: query.cluster: cluster 'nosuch' is not registered (known: demo, other)"
        )


def test_the_api_resolves_cluster_names_in_paths_and_filters(live_service):
    svc = live_service
    demo, _ = svc.register("demo")
    assert svc.get("/api/v1/clusters/demo").json()["id"] == demo
    assert svc.get(f"/api/v1/clusters/{demo}").json()["name"] == "demo"
    missing = svc.get("/api/v1/clusters/nosuch")
    assert missing.status_code == 404
    assert missing.json()["detail"] == "cluster 'nosuch' is not registered (known: demo)"
    # The known names are only for callers that may list clusters.
    anonymous = svc.get("/api/v1/findings", token="vgl_u_wrong", cluster="nosuch")
    assert anonymous.status_code == 401 and "demo" not in anonymous.text
    assert svc.get("/api/v1/integrity", cluster="demo").status_code == 200
    assert svc.get("/api/v1/processes", cluster="nosuch").status_code == 422


def test_cluster_credentials_take_a_name(live_service):
    svc = live_service
    svc.register("demo")
    env = {"VIGIL_URL": svc.url, "VIGIL_TOKEN": svc.admin_token}
    listed = runner.invoke(app, ["cluster", "credentials", "demo", "-o", "json"], env=env)
    assert listed.exit_code == 0, listed.output
    assert [c["state"] for c in orjson.loads(listed.stdout)] == ["active"]
    unknown = runner.invoke(app, ["cluster", "credentials", "nosuch"], env=env)
    assert unknown.exit_code == 1
    assert _one_line(unknown.output) == "error: 404 not_found: cluster 'nosuch' is not registered (known: demo)"


def test_trust_rules_need_a_registered_cluster(live_service):
    svc = live_service
    demo, _ = svc.register("demo")
    data = str(svc.settings.data_dir)
    unknown = runner.invoke(app, ["trust", "add", "foo", "--cluster", "nosuch", "--data-dir", data])
    assert unknown.exit_code == 2
    assert _one_line(unknown.output) == "error: --cluster: cluster 'nosuch' is not registered (known: demo)"
    assert orjson.loads(runner.invoke(app, ["trust", "list", "-o", "json", "--data-dir", data]).stdout) == []
    by_name = runner.invoke(app, ["trust", "add", "foo", "--cluster", "demo", "--data-dir", data])
    assert by_name.exit_code == 0 and "added: trusted foo (cluster demo)" in by_name.output
    by_id = runner.invoke(app, ["trust", "add", "bar", "--cluster", demo, "--data-dir", data])
    assert by_id.exit_code == 0, by_id.output
    gone = runner.invoke(app, ["trust", "remove", "foo", "--cluster", "nosuch", "--data-dir", data])
    assert gone.exit_code == 2
    assert _one_line(gone.output) == "error: --cluster: cluster 'nosuch' is not registered (known: demo)"
    assert runner.invoke(app, ["trust", "remove", "foo", "--cluster", "demo", "--data-dir", data]).exit_code == 0


def test_image_check_refuses_a_cluster_the_policy_does_not_name(tmp_path):
    policy = tmp_path / "policy.yaml"
    policy.write_text("trusted: [registry.example.com]\nclusters:\n  prod-eu:\n    trusted: [mirror.example.com]\n")
    result = runner.invoke(
        app, ["image", "check", "docker.io/library/nginx:1.25", "--policy", str(policy), "--cluster", "prod-us"]
    )
    assert result.exit_code == 2
    assert _one_line(result.output) == (
        "error: --cluster 'prod-us' has no rules in the policy (the policy's clusters: prod-eu)"
    )
    bare = runner.invoke(app, ["image", "check", "docker.io/library/nginx:1.25", "--cluster", "prod-eu"])
    assert bare.exit_code == 2
    assert (
        _one_line(bare.output) == "error: --cluster 'prod-eu' has no rules in the policy (the policy names no cluster)"
    )
