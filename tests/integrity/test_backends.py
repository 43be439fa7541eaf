"""The evaluator's writes (verdict upserts, findings, provenance) on SQLite and PostgreSQL alike."""

from __future__ import annotations

from vigil.devtools.oci import push

from .integrity_helpers import (
    LABELS,
    client_for,
    evaluate,
    evaluator_for,
    findings,
    image,
    image_pk,
    integrity_of,
    open_findings,
    post,
    put_policy,
    registry_config,
    snapshot,
)


def test_tag_moved_resolves_and_stops_on_each_backend(service_on, registry):
    svc, host = service_on, registry.host
    config = registry_config(host)
    evaluator_for(svc, config)
    repo = f"{host}/backends/app"
    old, new = image("backend-old", labels=LABELS), image("backend-new")
    with client_for(config) as pusher:
        push(pusher, f"{repo}:1", old)
        assert put_policy(svc, {"trusted": [host]}).status_code == 200
        cid, cred = svc.register("b")
        post(svc, cred, snapshot(cid, [("web", f"{repo}:1", old.digest)]))
        assert evaluate(svc)["statuses"] == {"verified": 1}
        push(pusher, f"{repo}:1", new)
    evaluate(svc)
    [f] = open_findings(svc)
    assert (f["type"], f["evidence"]["runtime_digest"], f["evidence"]["registry_digest"]) == (
        "tag_moved",
        old.digest,
        new.digest,
    )
    pk = image_pk(svc, cid, "web")
    got = integrity_of(svc, pk)
    assert (got["status"], got["provenance"]["revision"]) == ("violation", LABELS["org.opencontainers.image.revision"])
    post(svc, cred, snapshot(cid, []))
    report = evaluate(svc)
    assert (report["evaluated"], report["resolved"]) == (0, 1)
    assert open_findings(svc) == []
    assert [x["status_reason"] for x in findings(svc)] == ["the workload no longer runs this image"]
    assert integrity_of(svc, pk)["status"] == "violation"  # the last verdict is kept with the image
