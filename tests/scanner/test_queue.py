"""The scan queue on both store backends: concurrent workers never take the same job
(FOR UPDATE SKIP LOCKED on PostgreSQL), failures back off and are retried, a dead
worker's lease runs out, and `vigil scanner` works as a separate process."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from vigil.clock import utcnow
from vigil.devtools.oci import build_image, push, tar_layer
from vigil.service.jobs.workers import scan_worker
from vigil.service.store import contents as store
from vigil.service.store.db import create_store_engine, migrate
from vigil.service.store.schema import image_scans

from .helpers import client_for, content_findings, post, run_scans, snapshot, use_registry


def digest(i: int) -> str:
    return "sha256:" + f"{i:064x}"


@pytest.fixture
def engine(database_url):
    engine = create_store_engine(database_url)
    migrate(engine)
    yield engine
    engine.dispose()


def test_concurrent_claims_take_each_job_once(engine):
    wanted = {digest(i): "linux/amd64" for i in range(40)}
    with engine.begin() as conn:
        assert store.enqueue(conn, wanted) == {"queued": 40, "retried": 0, "requeued": 0, "untrusted": 0}
        assert store.enqueue(conn, wanted)["queued"] == 0  # idempotent
    claimed: dict[str, list[str]] = {}
    lock = threading.Lock()
    start = threading.Barrier(4)

    def worker(name: str) -> None:
        start.wait()
        while True:
            with engine.begin() as conn:
                job = store.claim(conn, name)
            if job is None:
                return
            with lock:
                claimed.setdefault(job.digest, []).append(name)

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(claimed) == sorted(wanted)
    assert all(len(names) == 1 for names in claimed.values()), {d: n for d, n in claimed.items() if len(n) > 1}
    with engine.connect() as conn:
        rows = conn.execute(
            select(image_scans.c.digest, image_scans.c.status, image_scans.c.worker, image_scans.c.attempts)
        ).all()
    assert {(r.status, r.attempts) for r in rows} == {("scanning", 1)}
    assert {r.digest: r.worker for r in rows} == {d: names[0] for d, names in claimed.items()}


def test_failure_backoff_retry_and_expired_lease(engine):
    now = utcnow()
    with engine.begin() as conn:
        store.enqueue(conn, {digest(1): "linux/amd64", digest(2): "linux/arm64"}, now=now)
        job = store.claim(conn, "w1", now=now)
        assert (job.digest, job.platform, job.attempts, job.sources) == (digest(1), "linux/amd64", 1, ())
        assert store.record_failure(conn, job, "registry.example: unreachable", now=now)
        assert store.record_failure(conn, job, "again", now=now) is False  # no longer held by w1
        other = store.claim(conn, "w2", now=now)
        assert other.digest == digest(2)
    with engine.connect() as conn:
        s = store.scan_status(conn, digest(1))
    assert (s["status"], s["error"], s["attempts"]) == ("failed", "registry.example: unreachable", 1)
    with engine.begin() as conn:
        # not before the backoff (60 s after the first failure)
        assert store.enqueue(conn, {}, now=now + timedelta(seconds=30))["retried"] == 0
        assert store.enqueue(conn, {}, now=now + timedelta(seconds=61))["retried"] == 1
        again = store.claim(conn, "w3", now=now + timedelta(seconds=61))
        assert (again.digest, again.attempts) == (digest(1), 2)
        # w2 died holding digest(2): its lease runs out and the job is queued again
        assert store.enqueue(conn, {}, lease=900, now=now + timedelta(seconds=901))["requeued"] == 1
        retaken = store.claim(conn, "w4", now=now + timedelta(seconds=902))
        assert (retaken.digest, retaken.attempts) == (digest(2), 2)
        # w2 comes back late: its result is discarded, w4 holds the job
        late = store.ScanResult("sha256:" + "f" * 64, "r/x", "linux/arm64", None, [], [], [])
        assert store.record_result(conn, other, late) is False
        conn.execute(update(image_scans).where(image_scans.c.digest == digest(1)).values(attempts=store.MAX_ATTEMPTS))
        assert store.record_failure(conn, again, "still down", now=now + timedelta(seconds=62))
        # after MAX_ATTEMPTS a failed scan stays failed
        assert store.enqueue(conn, {}, now=now + timedelta(days=1))["retried"] == 0


def small_image(text: str):
    return build_image(
        [
            tar_layer(
                {
                    f"app/{text}.txt": text.encode(),
                    "usr/lib/python3/dist-packages/demo-1.0.dist-info/METADATA": (
                        b"Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n"
                    ),
                }
            )
        ]
    )


def test_several_workers_scan_each_image_once(service_on, registry):
    svc = service_on
    images = [small_image(f"img{i}") for i in range(6)]
    running = []
    with client_for(registry.host) as pusher:
        for i, img in enumerate(images):
            push(pusher, f"{registry.host}/queue/app{i}:1", img)
            running.append(("team", f"app{i}", f"{registry.host}/queue/app{i}:1", img.digest))
    cid, cred = svc.register("queue")
    post(svc, cred, snapshot(cid, running))
    svc.trust_registry(registry.host)
    workers = [scan_worker(svc.engine, client_for(registry.host)) for _ in range(3)]
    workers[0].enqueue_running()
    outcomes: list = []
    threads = [threading.Thread(target=lambda w=w: outcomes.extend(w.run_pending())) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert sorted(o.digest for o in outcomes) == sorted(img.digest for img in images)
    assert {o.status for o in outcomes} == {"done"} and sum(w.scans for w in workers) == 6
    with svc.engine.connect() as conn:
        assert store.scan_counts(conn) == {"pending": 0, "scanning": 0, "done": 6, "failed": 0, "not_scanned": 0}
    blobs = sum(w.client.stats.by_kind.get("blob", 0) for w in workers)
    assert blobs == 6  # one layer per image, each pulled once


def test_scan_failure_is_reported_per_image(service_on, registry):
    svc = service_on
    use_registry(svc, registry.host)
    cid, cred = svc.register("broken")
    missing = "sha256:" + "e" * 64
    post(svc, cred, snapshot(cid, [("team", "ghost", f"{registry.host}/queue/ghost:1", missing)]))
    report = run_scans(svc)
    [outcome] = report["scanned"]
    assert outcome["status"] == "failed"
    pk = svc.list_all("/api/v1/pods", cluster=cid)[0]["containers"][0]["image_pk"]
    scan = svc.get(f"/api/v1/images/{pk}/scan").json()
    assert scan["status"] == "failed" and scan["next_attempt_at"]
    assert scan["error"].startswith(f"{registry.host}/queue/ghost: ")
    assert scan["error"].endswith("registry answered 404 MANIFEST_UNKNOWN: manifest unknown")
    r = svc.get(f"/api/v1/images/{pk}/packages")
    assert r.status_code == 409 and r.json()["detail"].startswith(f"image {pk} is not scanned yet (scan failed): ")


def test_findings_on_both_backends(service_on, registry, tmp_path):
    """A vulnerable wheel in a small image: findings opened, then resolved when it stops running."""
    from .helpers import import_advisories, write_record

    svc = service_on
    use_registry(svc, registry.host)
    record = {
        "id": "PYSEC-9999-1",
        "modified": "2025-01-01T00:00:00Z",
        "aliases": ["CVE-2099-0002"],
        "affected": [
            {
                "package": {"ecosystem": "PyPI", "name": "demo"},
                "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1.1"}]}],
            }
        ],
    }
    import_advisories(svc.settings.intel_db, write_record(tmp_path, record))
    img = small_image("vuln")
    with client_for(registry.host) as pusher:
        push(pusher, f"{registry.host}/queue/vuln:1", img)
    cid, cred = svc.register("vuln")
    post(svc, cred, snapshot(cid, [("team", "api", f"{registry.host}/queue/vuln:1", img.digest)]))
    run_scans(svc)
    [f] = content_findings(svc, status="open", cluster=cid)
    assert (f["type"], f["severity"], f["evidence"]["vulnerability"], f["evidence"]["fixed_versions"]) == (
        "vulnerable_package",
        "unknown",
        "CVE-2099-0002",
        ["1.1"],
    )
    post(svc, cred, snapshot(cid, []))
    run_scans(svc)
    assert content_findings(svc, status="open", cluster=cid) == []


def test_scanner_command_as_a_separate_process(service_on, registry, tmp_path):
    svc = service_on
    img = small_image("proc")
    with client_for(registry.host) as pusher:
        push(pusher, f"{registry.host}/queue/proc:1", img)
    svc.trust_registry(registry.host)
    cid, cred = svc.register("proc")
    post(svc, cred, snapshot(cid, [("team", "proc", f"{registry.host}/queue/proc:1", img.digest)]))
    config = tmp_path / "registries.yaml"
    config.write_text(f"'{registry.host}':\n  plain_http: true\n")
    env = dict(os.environ, VIGIL_DATABASE_URL=svc.settings.database_url, VIGIL_REGISTRY_CONFIG=str(config))
    proc = subprocess.run(
        [sys.executable, "-m", "vigil.cli", "scanner", "--once"], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert "scanned 1 images, 0 failed" in proc.stderr
    with svc.engine.connect() as conn:
        assert store.scan_status(conn, img.digest)["status"] == "done"


def test_background_scanner_started_by_the_service(tmp_path, registry):
    """With contents_background (what `vigil service` sets), nothing needs calling: a digest that
    appears in inventory is scanned, matched and turned into findings by the service's threads."""
    import time

    from vigil.devtools.service import LiveService

    from .helpers import import_advisories, write_record

    svc = LiveService(tmp_path / "data")
    svc.settings.contents.background, svc.settings.contents.tick = True, 0.2
    worker = use_registry(svc, registry.host)
    record = {
        "id": "PYSEC-9999-2",
        "modified": "2025-01-01T00:00:00Z",
        "affected": [{"package": {"ecosystem": "PyPI", "name": "demo"}, "versions": ["1.0"]}],
    }
    import_advisories(svc.settings.intel_db, write_record(tmp_path / "rec", record))
    svc.start()
    try:
        img = small_image("background")
        with client_for(registry.host) as pusher:
            push(pusher, f"{registry.host}/queue/background:1", img)
        cid, cred = svc.register("background")
        post(svc, cred, snapshot(cid, [("team", "bg", f"{registry.host}/queue/background:1", img.digest)]))
        deadline = time.time() + 30
        while not content_findings(svc, status="open", cluster=cid) and time.time() < deadline:
            time.sleep(0.2)
        [f] = content_findings(svc, status="open", cluster=cid)
        assert f["evidence"]["advisory_ids"] == ["PYSEC-9999-2"] and worker.scans == 1
    finally:
        svc.stop()
    assert worker._thread is None  # the lifespan stopped the scanner with the service
