"""Request bodies are read only after the caller is checked, inflated off the event loop, and bounded per route."""

from __future__ import annotations

import gzip
import socket
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from vigil.devtools.inventory import synthetic_snapshot
from vigil.devtools.service import LiveService
from vigil.service.app import create_app

MiB = 1024 * 1024

# A real service in its own process, so its resident memory is its own.
SERVE = """
import sys
import uvicorn
from vigil.service.app import create_app
from vigil.service.settings import Settings

settings = Settings(data_dir=sys.argv[1], port=int(sys.argv[2]))
uvicorn.run(create_app(settings), host="127.0.0.1", port=settings.port, log_config=None, access_log=False)
"""


def _bomb(decompressed: int) -> bytes:
    """``decompressed`` zero bytes, gzipped without ever holding them in memory."""
    deflate = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = bytes(MiB)
    parts = [deflate.compress(zeros) for _ in range(decompressed // MiB)]
    parts.append(deflate.flush())
    return b"".join(parts)


@pytest.fixture(scope="module")
def bomb_256m() -> bytes:
    return _bomb(256 * MiB)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS in /proc/{pid}/status")


@pytest.fixture
def service_process(tmp_path: Path) -> Iterator[tuple[subprocess.Popen, str]]:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVE, str(tmp_path / "data"), str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read().decode()[-3000:]
            time.sleep(0.2)
        yield proc, url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_a_gzip_bomb_without_a_token_is_refused_unread(service_process, bomb_256m):
    proc, url = service_process
    assert len(bomb_256m) < 300 * 1024
    headers = {"Content-Encoding": "gzip", "Content-Type": "application/json"}
    target = f"{url}/api/v1/ingest/inventory"
    # Warm the paths the bombs take, so what is measured after is what the bombs cost.
    for _ in range(3):
        assert httpx.post(target, content=gzip.compress(b"{}"), headers=headers).status_code == 401
        httpx.get(f"{url}/healthz")
    before = _rss_kib(proc.pid)

    answers: list[tuple[int, dict]] = []

    def send() -> None:
        resp = httpx.post(target, content=bomb_256m, headers=headers, timeout=120)
        answers.append((resp.status_code, resp.json()))

    senders = [threading.Thread(target=send) for _ in range(12)]
    for t in senders:
        t.start()
    latencies, peak = [], before
    with httpx.Client(base_url=url, timeout=10) as health:
        while any(t.is_alive() for t in senders) or len(latencies) < 10:
            start = time.perf_counter()
            assert health.get("/healthz").status_code == 200
            latencies.append(time.perf_counter() - start)
            peak = max(peak, _rss_kib(proc.pid))
            time.sleep(0.02)
    for t in senders:
        t.join()
    after = _rss_kib(proc.pid)
    print(f"RSS before {before} KiB, peak {peak} KiB, after {after} KiB; /healthz max {max(latencies):.3f}s")

    detail = "missing Authorization header; send 'Authorization: Bearer <token>'"
    assert answers == [(401, {"error": "unauthorized", "detail": detail})] * 12
    assert peak - before < 30 * 1024
    assert max(latencies) < 1.0


@pytest.fixture
def small_limits(tmp_path: Path) -> Iterator[LiveService]:
    svc = LiveService(tmp_path / "d")
    svc.settings.max_body_bytes = 8 * MiB
    svc.settings.max_large_bodies = 1
    svc.app = create_app(svc.settings, engine=svc.engine)
    svc.start()
    try:
        yield svc
    finally:
        svc.stop()


def test_a_bomb_beyond_the_route_limit_is_refused_with_the_limit(small_limits, bomb_256m):
    svc = small_limits
    _cid, cred = svc.register("bombed")
    gz = {"Content-Encoding": "gzip", "Content-Type": "application/json"}
    ingest = httpx.post(
        f"{svc.url}/api/v1/ingest/inventory", content=bomb_256m, headers={**gz, "Authorization": f"Bearer {cred}"}
    )
    assert ingest.status_code == 413
    assert ingest.json() == {"error": "payload_too_large", "detail": "decompressed body exceeds 8388608 bytes"}
    # Outside the ingest routes an authenticated body gets 1 MiB.
    tokens = httpx.post(
        f"{svc.url}/api/v1/tokens",
        content=_bomb(2 * MiB),
        headers={**gz, "Authorization": f"Bearer {svc.admin_token}"},
    )
    assert tokens.status_code == 413
    assert tokens.json() == {
        "error": "payload_too_large",
        "detail": "decompressed body exceeds 1048576 bytes, the limit outside the ingest routes",
    }
    # A body read before the caller is known (the console's login form) gets 64 KiB.
    login = httpx.post(
        f"{svc.url}/login",
        content=b"token=" + b"a" * (70 * 1024),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert login.status_code == 413
    assert login.json() == {
        "error": "payload_too_large",
        "detail": "request body exceeds 65536 bytes, the limit before the caller is authenticated",
    }


def test_large_bodies_beyond_the_slots_get_503_with_retry_after(small_limits):
    svc = small_limits
    cid, cred = svc.register("busy")
    auth = {"Authorization": f"Bearer {cred}", "Content-Type": "application/json"}
    url = f"{svc.url}/api/v1/ingest/inventory"
    release = threading.Event()

    def stalled() -> Iterator[bytes]:
        yield b'{"pad": "' + b"x" * (2 * MiB)
        release.wait(30)
        yield b'"}'

    held: list[int] = []
    holder = threading.Thread(target=lambda: held.append(httpx.post(url, content=stalled(), headers=auth).status_code))
    holder.start()
    batch = synthetic_snapshot(cid, nodes=10, pods=2000, images=20, seed=1)
    body = gzip.compress(orjson.dumps(batch.model_dump(mode="json")))
    try:
        deadline = time.monotonic() + 10
        while True:
            busy = httpx.post(url, content=body, headers={**auth, "Content-Encoding": "gzip"}, timeout=60)
            if busy.status_code == 503 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert busy.status_code == 503
        assert busy.headers["retry-after"] == "1"
        assert busy.json() == {
            "error": "busy",
            "detail": "1 request bodies over 1048576 bytes are being read already; retry later",
        }
    finally:
        release.set()
        holder.join()
    assert held == [422]
    # The slot is free again once the held body is done with.
    done = httpx.post(url, content=body, headers={**auth, "Content-Encoding": "gzip"}, timeout=60)
    assert done.status_code == 200, done.text
    assert done.json()["counts"]["pods"] == 2000


def test_a_normal_gzip_batch_is_applied(small_limits):
    svc = small_limits
    cid, cred = svc.register("normal")
    batch = synthetic_snapshot(cid, nodes=2, pods=10, images=2, seed=3)
    resp = httpx.post(
        f"{svc.url}/api/v1/ingest/inventory",
        content=gzip.compress(orjson.dumps(batch.model_dump(mode="json"))),
        headers={"Authorization": f"Bearer {cred}", "Content-Encoding": "gzip", "Content-Type": "application/json"},
    )
    assert resp.status_code == 200, resp.text
    assert resp.json() == {
        "batch_id": batch.batch_id,
        "applied": True,
        "counts": {"nodes": 2, "workloads": 2, "pods": 10, "containers": 20},
    }
