"""A contents finding is settled by its key columns, whatever its advisory id looks like: Red Hat
ids hold a ':' (RHSA-2024:1234), which a key string cut from the right would misread."""

from __future__ import annotations

import hashlib

from sqlalchemy import select

from vigil.devtools.oci import build_image, push, tar_layer
from vigil.service.store.schema import findings

from .helpers import (
    client_for,
    content_findings,
    image_pk,
    import_advisories,
    post,
    run_scans,
    snapshot,
    use_registry,
    write_record,
)

ADVISORY = {
    "id": "RHSA-2024:1234",
    "modified": "2024-01-10T00:00:00Z",
    "summary": "demo: a test advisory with a Red Hat style id",
    "affected": [{"package": {"ecosystem": "PyPI", "name": "demo"}, "versions": ["1.0"]}],
    "references": [{"type": "ADVISORY", "url": "https://example.org/RHSA-2024:1234"}],
}
METADATA = "usr/lib/python3/dist-packages/demo-1.0.dist-info/METADATA"


def test_finding_of_an_advisory_id_with_a_colon_resolves_when_the_advisory_is_withdrawn(service_on, registry, tmp_path):
    svc = service_on
    use_registry(svc, registry.host)
    image = build_image([tar_layer({METADATA: b"Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n"})])
    ref = f"{registry.host}/keys/demo:1.0"
    with client_for(registry.host) as pusher:
        push(pusher, ref, image)
    cid, cred = svc.register("keys")
    post(svc, cred, snapshot(cid, [("shop", "web", ref, image.digest)]))
    import_advisories(svc.settings.intel_db, write_record(tmp_path / "v1", ADVISORY))
    run_scans(svc)

    [opened] = content_findings(svc, status="open")
    assert (opened["type"], opened["evidence"]["vulnerability"], opened["evidence"]["advisory_ids"]) == (
        "vulnerable_package",
        "RHSA-2024:1234",
        ["RHSA-2024:1234"],
    )
    pk = image_pk(svc, cid, "web")
    package = opened["evidence"]["package"]
    package_hash = hashlib.sha256(f"{package['type']}\0demo\0{package['found_in']}".encode()).hexdigest()[:16]
    with svc.engine.connect() as conn:
        row = conn.execute(
            select(findings.c.family, findings.c.scope, findings.c.subject_key).where(findings.c.id == opened["id"])
        ).one()
    assert tuple(row) == ("contents", f"{cid}/shop/Deployment/web@{pk}", f"{package_hash}:RHSA-2024:1234")

    withdrawn = {**ADVISORY, "modified": "2024-02-01T00:00:00Z", "withdrawn": "2024-02-01T00:00:00Z"}
    import_advisories(svc.settings.intel_db, write_record(tmp_path / "v2", withdrawn))
    report = run_scans(svc)
    assert report["intel_reloaded"] is True and report["resolved"] == 1

    assert content_findings(svc, status="open") == []
    [resolved] = content_findings(svc, status="resolved")
    assert resolved["id"] == opened["id"]
    # The workload still runs the image: the advisory ended the finding, not the workload.
    assert resolved["status_reason"] == "condition ended: the advisories no longer match the installed version"
