"""GET/PUT /api/v1/policy/trust, the policy file at start, `vigil trust`, and the background evaluator."""

from __future__ import annotations

import time

import httpx
import pytest
from typer.testing import CliRunner

from vigil.cli import app as vigil_app
from vigil.devtools.oci import push
from vigil.devtools.service import LiveService
from vigil.service.app import create_app
from vigil.service.settings import IntegritySettings, Settings
from vigil.service.store.clusters import ensure_cluster
from vigil.service.store.db import create_store_engine
from vigil.service.store.policy import load_policy

from .integrity_helpers import (
    client_for,
    evaluator_for,
    image,
    image_pk,
    integrity_of,
    post,
    put_policy,
    registry_config,
    snapshot,
)

DOC = {
    "trusted": ["registry.example.com/team"],
    "mirrors": [{"source": "docker.io", "mirror": "artifactory.example.com/docker-remote"}],
    "clusters": {"prod": {"trusted": ["ghcr.io/acme"], "mirrors": []}},
}


def test_put_then_get_round_trips_normalized(service):
    r = put_policy(service, {**DOC, "trusted": ["Registry.Example.com/team/", "index.docker.io/library"]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["trusted"] == ["docker.io/library", "registry.example.com/team"]
    got = service.get("/api/v1/policy/trust").json()
    assert got == body
    assert len(got["revision"]) == 16
    assert put_policy(service, DOC).json()["revision"] != got["revision"]


def test_only_admins(service):
    viewer = service.token("viewer")
    r = put_policy(service, DOC, token=viewer)
    assert r.status_code == 403
    assert r.json() == {
        "error": "forbidden",
        "detail": "a viewer token cannot do this; it needs a token with role admin",
    }
    assert service.get("/api/v1/policy/trust", token=viewer).status_code == 403
    _, credential = service.register("c")
    assert put_policy(service, DOC, token=credential).status_code == 403
    assert httpx.put(f"{service.url}/api/v1/policy/trust", json=DOC).status_code == 401
    assert service.get("/api/v1/policy/trust").json()["trusted"] == []  # nothing changed


@pytest.mark.parametrize(
    "doc, field, message",
    [
        ({"trusted": ["ok.io", "https://ok.io"]}, "body.trusted[1]", "pattern 'https://ok.io': has a scheme"),
        (
            {"mirrors": [{"source": "docker.io", "mirror": "Art/UP"}]},
            "body.mirrors[0].mirror",
            "path component 'UP' must be lowercase",
        ),
        ({"mirrors": [{"source": "docker.io"}]}, "body.mirrors[0].mirror", "Field required"),
        (
            {"clusters": {"prod": {"trusted": ["x.io:70000"]}}},
            "body.clusters.prod.trusted[0]",
            "port 70000 is out of range 1-65535",
        ),
        ({"trustd": ["ok.io"]}, "body.trustd", "Extra inputs are not permitted"),
        ({"trusted": "ok.io"}, "body.trusted", "Input should be a valid array"),
    ],
)
def test_malformed_policy_is_422_naming_the_field(service, doc, field, message):
    r = put_policy(service, doc)
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["error"] == "invalid_request"
    [err] = body["errors"]
    assert err["field"] == field
    assert message in err["message"]
    assert body["detail"].startswith(f"{field}: ")


def test_policy_file_loaded_at_start(tmp_path):
    path = tmp_path / "trust.yaml"
    path.write_text(
        "trusted: [registry.example.com/team]\n"
        "mirrors:\n  - {source: docker.io, mirror: artifactory.example.com/docker-remote}\n"
        "clusters:\n  prod: {trusted: [ghcr.io/acme]}\n"
    )
    app = create_app(Settings(data_dir=tmp_path / "d", integrity=IntegritySettings(trust_file=path)))
    with app.state.engine.connect() as conn:
        policy = load_policy(conn)
    assert sorted(r.describe() for r in policy.trusted) == [
        "trusted ghcr.io/acme (cluster prod)",
        "trusted registry.example.com/team (global)",
    ]
    assert [m.describe() for m in policy.mirrors] == [
        "mirror docker.io -> artifactory.example.com/docker-remote (global)"
    ]
    app.state.engine.dispose()


def test_trust_cli_add_remove_list(tmp_path):
    runner = CliRunner()
    data = ["--data-dir", str(tmp_path / "d")]
    r = runner.invoke(vigil_app, ["trust", "add", "registry.example.com/team", *data])
    assert (r.exit_code, r.output.strip()) == (0, "added: trusted registry.example.com/team (global)")
    r = runner.invoke(vigil_app, ["trust", "add", "registry.example.com/team", *data])
    assert r.output.strip() == "already present: trusted registry.example.com/team (global)"
    r = runner.invoke(
        vigil_app,
        ["trust", "add", "docker.io", "--mirror", "artifactory.example.com/remote", "--cluster", "prod", *data],
    )
    assert (r.exit_code, r.output.strip()) == (2, "error: --cluster: cluster 'prod' is not registered (no cluster is)")
    engine = create_store_engine(f"sqlite:///{tmp_path / 'd' / 'vigil.db'}")
    with engine.begin() as conn:
        ensure_cluster(conn, "prod")
    engine.dispose()
    r = runner.invoke(
        vigil_app,
        ["trust", "add", "docker.io", "--mirror", "artifactory.example.com/remote", "--cluster", "prod", *data],
    )
    assert r.output.strip() == "added: mirror docker.io -> artifactory.example.com/remote (cluster prod)"
    r = runner.invoke(vigil_app, ["trust", "add", "https://bad", *data])
    assert r.exit_code == 2
    assert "PATTERN: pattern 'https://bad': has a scheme" in r.output
    r = runner.invoke(vigil_app, ["trust", "list", "-o", "json", *data])
    assert r.exit_code == 0
    import json

    rows = json.loads(r.output)
    assert [(x["kind"], x["pattern"], x["mirror"], x["cluster"]) for x in rows] == [
        ("trusted", "registry.example.com/team", None, None),
        ("mirror", "docker.io", "artifactory.example.com/remote", "prod"),
    ]
    r = runner.invoke(vigil_app, ["trust", "remove", "registry.example.com/team", *data])
    assert (r.exit_code, r.output.strip()) == (0, "removed: trusted registry.example.com/team (global)")
    r = runner.invoke(vigil_app, ["trust", "remove", "registry.example.com/team", *data])
    assert r.exit_code == 1
    r = runner.invoke(vigil_app, ["trust", "remove", "docker.io", "--mirror-rule", "--cluster", "prod", *data])
    assert r.exit_code == 0
    r = runner.invoke(vigil_app, ["trust", "list", "-o", "json", *data])
    assert json.loads(r.output) == []


def test_background_evaluator_checks_new_images_without_being_asked(tmp_path, registry):
    svc = LiveService(tmp_path / "data")
    svc.settings.integrity.background = True
    config = registry_config(registry.host)
    evaluator_for(svc, config)
    svc.start()
    try:
        img = image("background")
        with client_for(config) as pusher:
            push(pusher, f"{registry.host}/bg/app:1", img)
        assert put_policy(svc, {"trusted": [registry.host]}).status_code == 200
        cid, cred = svc.register("bg")
        post(svc, cred, snapshot(cid, [("web", f"{registry.host}/bg/app:1", img.digest)]))
        pk = image_pk(svc, cid, "web")
        deadline = time.monotonic() + 15
        while integrity_of(svc, pk)["status"] == "pending" and time.monotonic() < deadline:
            time.sleep(0.2)
        assert integrity_of(svc, pk)["status"] == "verified"
    finally:
        svc.stop()
    assert svc.app.state.workers.integrity._thread is None  # stopped with the service
