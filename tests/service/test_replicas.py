"""Several `vigil service` processes on one PostgreSQL: each background job runs on one replica and
moves to another within the lease when that one is killed; a finding made by one replica reaches the
stream and the alert receiver of the other, once; a runtime batch wakes the analysis wherever its
lease is. And one process per SQLite file."""

from __future__ import annotations

import gzip
import json
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, insert, select

from alerts.receivers import HttpReceiver
from vigil.devtools.oci import build_image, push, tar_layer
from vigil.devtools.registry_server import RegistryServer, find_registry_binary
from vigil.devtools.service import LiveService
from vigil.devtools.service_process import ServiceProcess
from vigil.policy.trust import Pattern
from vigil.registry import RegistryClient, RegistryConfig
from vigil.service.jobs.leases import JobLeases
from vigil.service.jobs.workers import scan_worker
from vigil.service.settings import ReplicaSettings, RetentionSettings
from vigil.service.store.clusters import cluster_for_registration
from vigil.service.store.db import create_store_engine, migrate
from vigil.service.store.policy import add_trusted
from vigil.service.store.schema import alert_cursors, executions, finding_events, findings, image_scans, job_leases
from vigil.service.store.tokens import issue_token

LEASE_S = 3.0
LEASED_JOBS = {"integrity", "signatures", "contents", "runtime", "retention"}
# A non-holder asks again at its job's next tick (integrity and contents: 2 s) and at most once a second.
TAKEOVER_BOUND_S = LEASE_S + 2.0 + 1.0 + 1.0  # + 1 s for a loaded 2-core machine
NODE = "node-1"
T0 = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)


def wait_for(what: str, check, timeout: float = 60.0, every: float = 0.2):
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(every)


class Store:
    """The shared PostgreSQL as the test sees it: migrated, with an admin token."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = create_store_engine(url)
        migrate(self.engine)
        with self.engine.begin() as conn:
            self.admin = issue_token(conn, role="admin", name="test-admin").secret

    def holders(self) -> dict[str, str]:
        with self.engine.connect() as conn:
            return {r.job: r.holder for r in conn.execute(select(job_leases.c.job, job_leases.c.holder))}

    def all_held_by(self, replica: ServiceProcess) -> bool:
        held = self.holders()
        return set(held) == LEASED_JOBS and all(f":{replica.pid}:" in h for h in held.values())

    def register(self, replica: ServiceProcess, name: str) -> tuple[str, str]:
        with self.engine.begin() as conn:
            token = cluster_for_registration(conn, name, timedelta(hours=1), 1)[1].secret
        resp = httpx.post(
            f"{replica.url}/api/v1/clusters/register", json={"name": name}, headers=bearer(token), timeout=30
        )
        assert resp.status_code == 200, resp.text
        return resp.json()["cluster_id"], resp.json()["credential"]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def store(postgres) -> Iterator[Store]:
    postgres.reset()
    s = Store(postgres.url)
    yield s
    s.engine.dispose()


@pytest.fixture
def replicas(store, tmp_path) -> Iterator[list[ServiceProcess]]:
    """Started by the test (the order matters); all stopped at the end."""
    started: list[ServiceProcess] = []
    yield started
    for r in started:
        r.stop()


def replica(store: Store, tmp_path: Path, name: str, **env: str) -> ServiceProcess:
    return ServiceProcess(
        tmp_path / name,
        store.url,
        env={"VIGIL_JOB_LEASE_SECONDS": str(LEASE_S), "VIGIL_ALERT_DESTINATIONS": "127.0.0.1", **env},
        args=("--registry-config", str(tmp_path / "registries.json")),
    )


def leases_taken(r: ServiceProcess) -> list[str]:
    return sorted(rec["job"] for rec in r.log_records() if rec.get("msg") == "job lease taken")


# -- background jobs ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    if find_registry_binary() is None:
        pytest.skip("docker-registry binary missing (Debian package docker-registry)")
    reg = RegistryServer(workdir=tmp_path_factory.mktemp("replica-registry")).start()
    yield reg
    reg.close()


def push_app_image(registry: RegistryServer) -> tuple[str, str]:
    image = build_image([tar_layer({"app/run.sh": b"#!/bin/sh\nexec sleep 3600\n"})])
    ref = f"{registry.host}/vigil/replica-app:{uuid.uuid4().hex[:8]}"
    with RegistryClient(RegistryConfig.from_mapping({registry.host: {"plain_http": True}})) as client:
        return ref, push(client, ref, image)


def inventory(cluster_id: str, pod: str, cid: str, ref: str, digest: str) -> dict:
    return {
        "kind": "snapshot",
        "batch_id": f"inv-{uuid.uuid4().hex[:12]}",
        "cluster_id": cluster_id,
        "nodes": [{"name": NODE, "labels": {"kubernetes.io/hostname": NODE}, "container_runtime": "containerd://1.6"}],
        "workloads": [{"namespace": "shop", "kind": "Deployment", "name": "web", "owner_chain": []}],
        "pods": [
            {
                "uid": pod,
                "namespace": "shop",
                "name": "web-1",
                "node_name": NODE,
                "phase": "Running",
                "workload": {"kind": "Deployment", "name": "web"},
                "containers": [
                    {
                        "name": "app",
                        "image": ref,
                        "image_id": f"{ref.rsplit(':', 1)[0]}@{digest}",
                        "image_digest": digest,
                        "container_id": f"containerd://{cid}",
                        "state": "running",
                    }
                ],
            }
        ],
    }


def kernel_batch(cluster_id: str, pod: str, cid: str, kind: str, target: str, detail: dict) -> dict:
    at = T0.isoformat()
    sample = {
        "time": at,
        "pid": 300,
        "ppid": 200,
        "uid": 0,
        "comm": "loader",
        "exe": "/tmp/loader",
        "argv": ["/tmp/loader"],
        "parents": ["sh"],
    }
    return {
        "batch_id": f"rt-{uuid.uuid4().hex[:16]}",
        "cluster_id": cluster_id,
        "node_name": NODE,
        "sensor_id": "s1",
        "seq": 0,
        "window_start": at,
        "window_end": (T0 + timedelta(seconds=60)).isoformat(),
        "records": [],
        "activities": [
            {
                "container_id": f"containerd://{cid}",
                "pod_uid": pod,
                "kind": kind,
                "target": target,
                "upper_layer": None,
                "detail": detail,
                "first_seen": at,
                "last_seen": at,
                "count": 1,
                "samples": [sample],
            }
        ],
    }


def post(r: ServiceProcess | LiveService, path: str, token: str, body: dict, gz: bool = False) -> dict:
    content = json.dumps(body).encode()
    headers = {**bearer(token), "Content-Type": "application/json"}
    if gz:
        content, headers["Content-Encoding"] = gzip.compress(content), "gzip"
    resp = httpx.post(f"{r.url}{path}", content=content, headers=headers, timeout=30)
    assert resp.status_code in (200, 201), resp.text
    return resp.json()


def kernel_findings(store: Store) -> list[tuple[str, str, int]]:
    """(type, subject, number of history rows) of every kernel_activity finding."""
    with store.engine.connect() as conn:
        rows = conn.execute(
            select(findings.c.id, findings.c.type, findings.c.subject).where(findings.c.type == "kernel_activity")
        ).all()
        events = conn.execute(select(finding_events.c.finding_id)).scalars().all()
    return sorted((r.type, r.subject, events.count(r.id)) for r in rows)


def runtime_last_pass(store: Store, r: ServiceProcess):
    resp = httpx.get(f"{r.url}/api/v1/runtime/status", headers=bearer(store.admin), timeout=30)
    assert resp.status_code == 200, resp.text
    return resp.json()["last_pass"]


def test_each_job_runs_on_one_replica_and_moves_to_the_other_within_the_lease_when_killed(
    store, replicas, registry, tmp_path
):
    (tmp_path / "registries.json").write_text(json.dumps({registry.host: {"plain_http": True}}))
    with store.engine.begin() as conn:
        add_trusted(conn, Pattern.parse(registry.host), None, "token:test-admin")
    a = replica(store, tmp_path, "a").start()
    replicas.append(a)
    wait_for("replica A to hold every job", lambda: store.all_held_by(a), timeout=30)
    b = replica(store, tmp_path, "b").start()
    replicas.append(b)
    time.sleep(2 * LEASE_S)  # B asks for every lease a few times meanwhile

    # Every leased job runs on A alone: B took no lease and ran no runtime analysis pass.
    assert store.all_held_by(a)
    assert leases_taken(a) == sorted(LEASED_JOBS)
    assert leases_taken(b) == []
    assert runtime_last_pass(store, a) is not None
    assert runtime_last_pass(store, b) is None

    # Work that arrives at B is done by A, once.
    cluster_id, credential = store.register(b, "replicas")
    ref, digest = push_app_image(registry)
    pod, cid = str(uuid.uuid4()), uuid.uuid4().hex * 2
    post(b, "/api/v1/ingest/inventory", credential, inventory(cluster_id, pod, cid, ref, digest), gz=True)

    def scanned() -> bool:
        with store.engine.connect() as conn:
            return conn.execute(select(image_scans.c.status).where(image_scans.c.digest == digest)).scalar() == "done"

    wait_for("the image scanned", scanned, timeout=90)
    post(b, "/api/v1/ingest/runtime", credential, kernel_batch(cluster_id, pod, cid, "module_load", "rootkit.ko", {}))
    first = wait_for("the module load analysed", lambda: kernel_findings(store), timeout=30)
    assert [(t, n) for t, _, n in first] == [("kernel_activity", 1)]  # opened once
    assert runtime_last_pass(store, b) is None

    # A dies holding every lease: B takes each within the lease (and a tick), and does A's work from then on.
    a.kill()
    killed = time.monotonic()
    post(
        b,
        "/api/v1/ingest/runtime",
        credential,
        kernel_batch(cluster_id, pod, cid, "bpf_load", "bpf", {"prog_type": "kprobe"}),
    )
    wait_for("replica B to hold every job", lambda: store.all_held_by(b), timeout=30, every=0.1)
    took = time.monotonic() - killed
    print(f"every job lease taken over {took:.2f} s after the SIGKILL (lease {LEASE_S} s)")
    assert took <= TAKEOVER_BOUND_S, f"takeover took {took:.1f} s"
    assert took >= LEASE_S * 0.5  # not before A's lease could have run out
    second = wait_for("the bpf load analysed by B", lambda: len(got := kernel_findings(store)) == 2 and got)
    assert [(t, n) for t, _, n in second] == [("kernel_activity", 1), ("kernel_activity", 1)]
    assert runtime_last_pass(store, b) is not None
    assert leases_taken(b) == sorted(LEASED_JOBS)


# -- the stream and alerts ------------------------------------------------------------------------


def denied(uid: str, name: str) -> dict:
    image = "evil.example/x:1"
    violation = {
        "policy": "prod",
        "mode": "enforce",
        "rule": "untrusted_registry",
        "image": image,
        "message": f'policy "prod" rule untrusted_registry: image {image}: registry evil.example is not trusted',
        "evidence": {"checked_against": "evil.example/x"},
    }
    return {
        "uid": uid,
        "at": T0.isoformat(),
        "operation": "CREATE",
        "kind": "Deployment",
        "namespace": "shop",
        "name": name,
        "user": "alice@example.com",
        "outcome": "denied",
        "images": [image],
        "violations": [violation],
        "enforcement_revision": "abc",
    }


class StreamReader:
    """An SSE client of one replica's findings stream, in a thread, keeping every finding event."""

    def __init__(self, r: ServiceProcess | LiveService, token: str) -> None:
        self.events: list[dict] = []
        self.connected = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, args=(f"{r.url}/api/v1/findings/stream", token), daemon=True)
        self._thread.start()
        assert self.connected.wait(15), "the stream did not answer"

    def _read(self, url: str, token: str) -> None:
        with httpx.stream("GET", url, headers=bearer(token), timeout=httpx.Timeout(60, read=None)) as resp:
            assert resp.status_code == 200
            self.connected.set()
            data: list[str] = []
            for line in resp.iter_lines():
                if self._stop.is_set():
                    return
                if line.startswith("data:"):
                    data.append(line[5:].strip())
                elif line == "" and data:
                    self.events.append(json.loads("\n".join(data)))
                    data = []

    def close(self) -> None:
        self._stop.set()


def test_a_finding_made_by_one_replica_reaches_the_stream_and_the_alert_receiver_of_the_other_once(
    store, replicas, tmp_path
):
    (tmp_path / "registries.json").write_text("{}")
    a = replica(store, tmp_path, "a").start()
    b = replica(store, tmp_path, "b").start()
    replicas.extend([a, b])
    receiver = HttpReceiver(path="/hook")
    stream = StreamReader(b, store.admin)
    try:
        post(
            a,
            "/api/v1/alerts/outputs",
            store.admin,
            {
                "name": "hook",
                "kind": "webhook",
                "url": receiver.url,
                "secret": "whsec-replicas-7f3c9a1e",
                "threshold": "low",
            },
        )
        cluster_id, _ = store.register(a, "stream")
        credential = post(a, f"/api/v1/clusters/{cluster_id}/admission-credential", store.admin, {})["credential"]
        names = [f"web-{i}" for i in range(5)]
        post(
            a,
            f"/api/v1/clusters/{cluster_id}/admission/decisions",
            credential,
            {
                "batch_id": "adm-1",
                "cluster_id": cluster_id,
                "decisions": [denied(f"u{i}", n) for i, n in enumerate(names)],
            },
        )

        got = wait_for("5 findings on B's stream", lambda: len(stream.events) >= 5 and stream.events, timeout=30)
        assert (
            sorted((e["event"]["kind"], e["finding"]["type"], e["finding"]["cluster_id"]) for e in got)
            == [("opened", "admission_denied", cluster_id)] * 5
        )
        wait_for("5 alerts", lambda: len(receiver.requests) >= 5, timeout=30)
        time.sleep(3.0)  # both dispatchers tick (1 s) a few times more: nothing is sent again
        sent = [r.json() for r in receiver.requests]
        assert len(sent) == 5
        assert len({s["event_id"] for s in sent}) == 5
        assert sorted(s["event_id"] for s in sent) == sorted(e["event"]["id"] for e in got)
        assert len(stream.events) == 5
    finally:
        stream.close()
        receiver.close()


def cursor_owner(store: Store) -> str | None:
    with store.engine.connect() as conn:
        return conn.execute(select(alert_cursors.c.lease_owner)).scalar_one()


def test_killing_the_replica_delivering_alerts_hands_the_rest_to_the_other_within_a_lease_each_once(
    store, replicas, tmp_path
):
    (tmp_path / "registries.json").write_text("{}")
    a, b = replica(store, tmp_path, "a"), replica(store, tmp_path, "b")
    replicas.extend([a, b])  # before they start: the fixture stops them whatever happens
    a.start()
    b.start()
    # The receiver takes three alerts, then refuses until told otherwise: the fourth waits in retries.
    receiver = HttpReceiver(path="/hook", default_status=503)
    receiver.respond(200, 200, 200)
    try:
        post(
            a,
            "/api/v1/alerts/outputs",
            store.admin,
            {
                "name": "hook",
                "kind": "webhook",
                "url": receiver.url,
                "secret": "whsec-takeover-4b1d",
                "threshold": "low",
            },
        )
        cluster_id, _ = store.register(a, "takeover")
        credential = post(a, f"/api/v1/clusters/{cluster_id}/admission-credential", store.admin, {})["credential"]
        decisions = [denied(f"u{i}", f"web-{i}") for i in range(10)]
        post(
            a,
            f"/api/v1/clusters/{cluster_id}/admission/decisions",
            credential,
            {"batch_id": "adm-takeover", "cluster_id": cluster_id, "decisions": decisions},
        )
        with store.engine.connect() as conn:
            event_ids = sorted(conn.execute(select(finding_events.c.id)).scalars())
        assert len(event_ids) == 10

        wait_for("three alerts taken and the fourth refused", lambda: len(receiver.requests) >= 4, every=0.02)
        owner = cursor_owner(store)
        sender, other = (a, b) if owner is not None and f":{a.pid}:" in owner else (b, a)
        assert owner is not None and f":{sender.pid}:" in owner
        # Retrying the fourth for longer than the lease, the sender keeps the cursor: its lease is renewed.
        time.sleep(2 * LEASE_S)
        assert cursor_owner(store) == owner

        sender.kill()
        killed = time.monotonic()
        receiver.default_status = 200
        wait_for("every alert taken", lambda: len(receiver.accepted()) >= 10, timeout=30, every=0.05)
        took = min(r.at for r in receiver.accepted() if r.at > killed) - killed
        print(f"alerts resumed by the other replica {took:.2f} s after the SIGKILL (lease {LEASE_S} s)")
        assert LEASE_S * 0.5 <= took <= TAKEOVER_BOUND_S
        time.sleep(3.0)  # the survivor ticks (1 s) a few times more: nothing is sent again

        accepted = [r.json()["event_id"] for r in receiver.accepted()]
        refused = {r.json()["event_id"] for r in receiver.requests if r.status == 503}
        assert sorted(accepted) == event_ids  # each alert taken once, none lost
        assert refused == {event_ids[3]}  # only the one in retries at the kill was tried and refused
        assert f":{other.pid}:" in (cursor_owner(store) or "")
    finally:
        receiver.close()


# -- a runtime batch wakes the analysis ------------------------------------------------------------

# The analysis looks for queued records this often when nothing wakes it: far longer than a wake takes.
LONG_TICK_S = 30.0
WAKE_BOUND_S = 3.0


def kernel_events(stream: StreamReader) -> list[tuple[str, str, str]]:
    return sorted(
        (e["event"]["kind"], e["finding"]["type"], e["finding"]["subject"])
        for e in stream.events
        if e["finding"]["type"] == "kernel_activity"
    )


def test_on_sqlite_a_runtime_batch_is_analysed_and_streamed_at_once_not_at_the_next_period(registry, tmp_path):
    svc = LiveService(tmp_path / "data")
    svc.trust_registry(registry.host)
    config = RegistryConfig.from_mapping({registry.host: {"plain_http": True}})
    svc.app.state.workers.contents.scanner = scan_worker(svc.engine, RegistryClient(config))
    svc.settings.runtime.tick = LONG_TICK_S
    svc.start()
    stream = None
    try:
        cluster_id, credential = svc.register("wake")
        ref, digest = push_app_image(registry)
        pod, cid = str(uuid.uuid4()), uuid.uuid4().hex * 2
        post(svc, "/api/v1/ingest/inventory", credential, inventory(cluster_id, pod, cid, ref, digest))
        report = svc.app.state.workers.contents.run_pass(scan=True)
        assert [s.status for s in report.scanned] == ["done"]
        stream = StreamReader(svc, svc.admin_token)
        time.sleep(1.0)  # the analyzer's first pass is over: the next one without a wake is 30 s away

        sent = time.monotonic()
        post(
            svc,
            "/api/v1/ingest/runtime",
            credential,
            kernel_batch(cluster_id, pod, cid, "module_load", "rootkit.ko", {}),
        )
        got = wait_for("the module load on the stream", lambda: kernel_events(stream), timeout=LONG_TICK_S, every=0.02)
        took = time.monotonic() - sent
        print(f"runtime batch to its finding on the stream: {took * 1000:.0f} ms (analysis period {LONG_TICK_S:g} s)")
        assert got == [("opened", "kernel_activity", "kernel-module-load: rootkit.ko")]
        assert took < WAKE_BOUND_S
    finally:
        if stream is not None:
            stream.close()
        svc.stop()


def test_a_runtime_batch_sent_to_one_replica_wakes_the_analysis_of_the_replica_holding_its_lease(
    store, replicas, registry, tmp_path
):
    (tmp_path / "registries.json").write_text(json.dumps({registry.host: {"plain_http": True}}))
    with store.engine.begin() as conn:
        add_trusted(conn, Pattern.parse(registry.host), None, "token:test-admin")
    slow = {"VIGIL_RUNTIME_TICK": str(LONG_TICK_S)}
    a, b = replica(store, tmp_path, "a", **slow), replica(store, tmp_path, "b", **slow)
    replicas.extend([a, b])  # before they start: the fixture stops them whatever happens
    a.start()
    wait_for("replica A to hold every job", lambda: store.all_held_by(a), timeout=30)
    b.start()
    stream = StreamReader(b, store.admin)
    try:
        cluster_id, credential = store.register(b, "wake")
        ref, digest = push_app_image(registry)
        pod, cid = str(uuid.uuid4()), uuid.uuid4().hex * 2
        post(b, "/api/v1/ingest/inventory", credential, inventory(cluster_id, pod, cid, ref, digest), gz=True)

        def scanned() -> bool:
            with store.engine.connect() as conn:
                status = conn.execute(select(image_scans.c.status).where(image_scans.c.digest == digest)).scalar()
            return status == "done"

        wait_for("the image scanned", scanned, timeout=90)
        time.sleep(1.0)  # A's pass after the scan is over: its next one without a wake is 30 s away

        # B takes the batch; A, which holds the runtime lease, analyses it; B's stream sends the finding.
        sent = time.monotonic()
        post(
            b, "/api/v1/ingest/runtime", credential, kernel_batch(cluster_id, pod, cid, "module_load", "rootkit.ko", {})
        )
        got = wait_for("the module load on B's stream", lambda: kernel_events(stream), timeout=LONG_TICK_S, every=0.02)
        took = time.monotonic() - sent
        print(f"batch to B, analysed by A, on B's stream: {took * 1000:.0f} ms (analysis period {LONG_TICK_S:g} s)")
        assert got == [("opened", "kernel_activity", "kernel-module-load: rootkit.ko")]
        assert took < WAKE_BOUND_S
        assert store.holders()["runtime"].count(f":{a.pid}:") == 1
        assert runtime_last_pass(store, b) is None
    finally:
        stream.close()


# -- SQLite is one process ------------------------------------------------------------------------


def test_a_second_service_on_one_sqlite_file_is_refused_and_the_file_named(tmp_path):
    data = tmp_path / "data"
    first = ServiceProcess(data).start()
    try:
        status, output = ServiceProcess(data).run_to_exit()
        database = (data / "vigil.db").resolve()
        assert status == 2
        assert output.strip() == (
            f"error: the SQLite store {database} is in use by another Vigil service (pid {first.pid}): SQLite "
            "serves one service process; to run several replicas, start each with --database-url "
            "postgresql://... on one PostgreSQL"
        )
        # The lock dies with its process, however it ends: after a SIGKILL a new service starts.
        first.kill()
        again = ServiceProcess(data).start()
        again.stop()
    finally:
        first.stop()


# -- a pass cut short ------------------------------------------------------------------------------


def test_a_retention_pass_cut_by_a_kill_is_finished_by_the_other_replica_within_the_lease(store, replicas, tmp_path):
    (tmp_path / "registries.json").write_text("{}")
    # A pass every 5 s, of batches of 100 with half a second after each.
    slow = {"VIGIL_RETENTION_INTERVAL": "5", "VIGIL_RETENTION_BATCH_ROWS": "100", "VIGIL_RETENTION_PAUSE": "0.5"}
    a = replica(store, tmp_path, "a", **slow).start()
    replicas.append(a)
    wait_for("replica A to hold every job", lambda: store.all_held_by(a), timeout=30)
    b = replica(store, tmp_path, "b", **slow).start()
    replicas.append(b)

    # 3,000 runtime records past the period: A's next pass takes about 15 s over them.
    with store.engine.begin() as conn:
        cluster_id = cluster_for_registration(conn, "retention", timedelta(hours=1), 1)[0]
        old = datetime.now(UTC) - timedelta(days=11)
        conn.execute(
            insert(executions),
            [
                {
                    "cluster_id": cluster_id,
                    "node_name": NODE,
                    "container_id": f"c{i % 50}",
                    "pod_uid": None,
                    "kind": "executable",
                    "path": f"/usr/bin/tool-{i}",
                    "sha256": f"{i:064x}",
                    "first_seen_at": old,
                    "last_seen_at": old,
                    "count": 1,
                    "samples": [],
                }
                for i in range(3000)
            ],
        )

    def stored() -> int:
        with store.engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(executions)).scalar_one()

    wait_for("A to be pruning", lambda: stored() <= 2500, timeout=30, every=0.05)
    assert store.all_held_by(a)
    a.kill()
    killed = time.monotonic()
    left = stored()
    assert 0 < left < 3000

    wait_for("B to take retention", lambda: store.holders().get("retention", "").count(f":{b.pid}:"), every=0.1)
    took = time.monotonic() - killed
    print(f"retention taken over {took:.2f} s after the SIGKILL, {left} of 3000 rows left")
    assert took <= TAKEOVER_BOUND_S
    wait_for("B to finish the pass", lambda: stored() == 0, timeout=60)

    def passes() -> list[dict]:
        return [r["deleted"] for r in b.log_records() if r.get("msg") == "retention pass"]

    wait_for("B's pass logged", passes, timeout=10)
    assert [p["executions"] for p in passes()] == [left]


# -- the lease itself ------------------------------------------------------------------------------


def test_a_lease_is_one_holders_until_it_runs_out_or_is_handed_back(store):
    a = JobLeases(store.engine, "replica-a", period=1.0)
    b = JobLeases(store.engine, "replica-b", period=1.0)
    assert a.may_run("integrity") is True
    assert b.may_run("integrity") is False
    assert store.holders() == {"integrity": "replica-a"}
    # a renews nothing (its renewer is not started): the lease runs out, and b takes it at its next try.
    time.sleep(1.1)
    assert b.may_run("integrity") is True
    assert store.holders() == {"integrity": "replica-b"}
    assert a.may_run("integrity") is False
    b.stop()  # hands it back: a takes it at once
    assert store.holders() == {}
    time.sleep(a.retry)
    assert a.may_run("integrity") is True
    a.stop()


def test_lease_and_retention_settings_refuse_what_is_not_a_positive_number(monkeypatch):
    monkeypatch.setenv("VIGIL_JOB_LEASE_SECONDS", "0")
    with pytest.raises(ValueError) as lease:
        ReplicaSettings()
    assert str(lease.value) == "VIGIL_JOB_LEASE_SECONDS='0' must be a positive number of seconds"
    monkeypatch.setenv("VIGIL_RETENTION_DAYS", "ten")
    with pytest.raises(ValueError) as days:
        RetentionSettings()
    assert str(days.value) == "VIGIL_RETENTION_DAYS='ten' must be a positive number of days"
