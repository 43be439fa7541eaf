"""A finding's evidence as a person reads it in the browser: a vulnerability's package, versions, fix and
advisory links; a runtime finding's process with its parents by name, its pod (a link to the workload)
and its node. The runtime finding comes from the real analysis pass over sensor records."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from vigil.service.store.runtime import apply_runtime_batch
from vigil.service.store.runtime_analysis import enqueue_batch
from vigil.service.store.schema import findings
from vigil.wire.runtime import RuntimeBatch


def _rows(page) -> dict[str, str]:
    return {
        d.get_attribute("data-label"): " ".join(d.inner_text().split()) for d in page.locator("#evidence-rows dd").all()
    }


def _exec(pid: int, ppid: int, path: str, argv: list[str], at: datetime) -> dict:
    return {
        "time": at.isoformat(),
        "pid": pid,
        "ppid": ppid,
        "uid": 0,
        "gid": 0,
        "comm": path.rsplit("/", 1)[-1][:15],
        "filename": path,
        "argv": argv,
    }


def _record(w, pod, path: str, sha: str, sample: dict, at: datetime) -> dict:
    return {
        "container_id": w.container.container_id,
        "pod_uid": pod.uid,
        "kind": "executable",
        "path": path,
        "sha256": sha,
        "first_seen": at.isoformat(),
        "last_seen": at.isoformat(),
        "count": 1,
        "samples": [sample],
    }


def test_a_vulnerability_finding_reads_as_package_versions_fix_and_advisory_links(admin_page, console):
    svc, w = console
    page = admin_page
    page.goto(f"{svc.url}/findings/{w.findings['vuln_d0']}")
    rows = _rows(page)
    assert rows["package"] == "openssl"
    assert rows["installed version"] == "3.0.2"
    assert rows["fixed versions"] == "3.0.7"
    assert rows["remediation"] == "upgrade to 3.0.7"
    links = page.locator('#evidence-rows dd[data-label="advisories"] a')
    assert links.all_inner_texts() == ["CVE-2022-3602"]
    assert links.first.get_attribute("href") == "https://osv.dev/vulnerability/CVE-2022-3602"


def test_a_runtime_finding_names_parents_links_the_pod_and_shows_the_node(admin_page, console):
    svc, w = console
    pod = next(p for p in w.snapshot.pods if p.name == "deployment-0-0")
    t = datetime.now(UTC) - timedelta(seconds=30)
    # The entry point python3 (started by the runtime's shim, pid 900) ran sh, which ran a file the image lacks.
    python = _exec(1000, 900, "/usr/bin/python3", ["/usr/bin/python3", "app.py"], t - timedelta(hours=1))
    sh = _exec(1001, 1000, "/bin/sh", ["/bin/sh", "-c", "/tmp/payload"], t)
    payload = _exec(1002, 1001, "/tmp/payload", ["/tmp/payload", "--quiet"], t + timedelta(seconds=1))
    with svc.engine.begin() as conn:
        batch = RuntimeBatch.model_validate(
            {
                "batch_id": "rt-evidence",
                "cluster_id": w.prod,
                "node_name": "node-0000",
                "sensor_id": "s1",
                "seq": 1,
                "window_start": (t - timedelta(hours=1)).isoformat(),
                "window_end": (t + timedelta(seconds=2)).isoformat(),
                "records": [
                    _record(w, pod, "/usr/bin/python3", "11" * 32, python, t - timedelta(hours=1)),
                    _record(w, pod, "/bin/sh", "22" * 32, sh, t),
                    _record(w, pod, "/tmp/payload", "33" * 32, payload, t + timedelta(seconds=1)),
                ],
            }
        )
        # As the ingest API stores a batch: its records, queued for runtime analysis.
        apply_runtime_batch(conn, batch)
        enqueue_batch(conn, batch)
    svc.app.state.workers.runtime.run_pass(labels_now=True)
    with svc.engine.connect() as conn:
        (finding_id,) = conn.execute(
            select(findings.c.id).where(
                findings.c.type == "runtime_drift",
                findings.c.subject.like("/tmp/payload %"),
                findings.c.status == "open",
            )
        ).one()
    page = admin_page
    page.goto(f"{svc.url}/findings/{finding_id}")
    rows = _rows(page)
    assert rows["process"] == "/tmp/payload"
    assert rows["command line"] == "/tmp/payload --quiet"
    assert rows["parent chain"] == "sh ← python3 ← pid 900"
    assert rows["container"] == w.container.name
    assert rows["node"] == "node-0000"
    pod_link = page.locator('#evidence-rows dd[data-label="pod"] a')
    assert pod_link.inner_text() == "deployment-0-0"
    with page.expect_navigation():
        pod_link.click()
    assert re.fullmatch(re.escape(f"{svc.url}/workloads/{w.prod}/ns-0/Deployment/deployment-0"), page.url)
    assert page.locator("h1").inner_text() == "Deployment ns-0/deployment-0"
    assert page.locator('#workload-pods tr[data-pod="deployment-0-0"]').count() == len(pod.containers)
