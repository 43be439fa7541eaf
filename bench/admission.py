"""Benchmark: admission reviews per second and their latency, against the real webhook process.

Workload: a real service (SQLite) with an enforcement policy (enforce in namespace "shop": untrusted
registries, integrity, malicious packages); a throwaway docker-registry on loopback holding one image
under ``--tags`` tags; the trust policy trusts it; `vigil admission` as its own process (HTTPS,
serving certificate from a throwaway CA) following the service's feed. The load is open-loop: reviews
are sent at a fixed rate over ``--connections`` kept-alive TLS connections, and each latency is
measured from the moment the review was due, so a stalled webhook cannot hide its queue.

- baseline: GET /healthz at the same rate over the same connections (what TLS and HTTP cost alone)
- cached:   Pod reviews whose image the webhook already knows (asked once before the run)
- cold:     Pod reviews of a tag it has never seen: each one asks the registry within the budget

One JSON line per (workload, rate) with p50/p99/max in ms, errors, the achieved rate and the webhook
process's CPU per request (``cpu_us_per_request``, user + system, which a busy machine disturbs far
less than latency); ``ratio_p99`` is p99 over the baseline's p99 at the same rate. Aims: cached p99 < 10 ms at
500 reviews/s; a cold decision < 1 s.

With ``--rounds N`` each rate runs baseline, cached and cold N times in turn (alternated, so a
machine that gets busier mid-run disturbs all three alike); each line names its round.

    .venv/bin/python bench/admission.py [--rates 100,500] [--seconds 5] [--connections 16] [--rounds 1]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import ssl
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import aiohttp
import httpx
import orjson
import psutil

from vigil.devtools.admission import WebhookProcess
from vigil.devtools.oci import build_image, push, tar_layer
from vigil.devtools.registry_server import RegistryServer
from vigil.devtools.service import LiveService
from vigil.registry import RegistryClient, RegistryConfig
from vigil.registry.upload import RegistryWriter

BENCH = "admission"
POLICY = {"policies": [{"name": "prod", "mode": "enforce", "scope": {"namespaces": ["shop"]}}]}
_uids = itertools.count()


def emit(**fields) -> None:
    print(json.dumps({"bench": BENCH, **fields}, sort_keys=True), flush=True)


def review_body(image: str) -> bytes:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "app", "image": image}]},
    }
    return orjson.dumps(
        {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": f"bench-{next(_uids)}",
                "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "resource": {"group": "", "version": "v1", "resource": "pods"},
                "operation": "CREATE",
                "namespace": "shop",
                "name": "web",
                "userInfo": {"username": "bench"},
                "object": pod,
            },
        }
    )


def measured(pid: int, url: str, ctx: ssl.SSLContext, bodies, rate: int, seconds: float, connections: int) -> dict:
    """``run_load`` with the webhook process's CPU time over the run."""
    process = psutil.Process(pid)
    before = process.cpu_times()
    out = asyncio.run(run_load(url, ctx, bodies, rate, seconds, connections))
    after = process.cpu_times()
    cpu = (after.user - before.user) + (after.system - before.system)
    return {**out, "cpu_us_per_request": round(cpu / out["requests"] * 1e6, 1)}


async def run_load(url: str, ctx: ssl.SSLContext, bodies, rate: int, seconds: float, connections: int) -> dict:
    """Send ``rate`` requests a second for ``seconds``; ``bodies`` yields None for GET /healthz."""
    total = int(rate * seconds)
    latencies: list[float] = []
    errors = 0
    connector = aiohttp.TCPConnector(ssl=ctx, limit=connections, force_close=False)
    async with aiohttp.ClientSession(connector=connector) as session:
        # Open the connections first: the run measures kept-alive connections, not handshakes.
        async def warm() -> None:
            async with session.get(f"{url}/healthz") as resp:
                await resp.read()

        await asyncio.gather(*(warm() for _ in range(connections)))
        start = time.perf_counter()

        async def one(i: int, body: bytes | None) -> None:
            nonlocal errors
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            try:
                if body is None:
                    resp = await session.get(f"{url}/healthz")
                else:
                    resp = await session.post(
                        f"{url}/validate", data=body, headers={"Content-Type": "application/json"}
                    )
                async with resp:
                    data = await resp.read()
                    if resp.status != 200 or (body is not None and b'"uid"' not in data):
                        errors += 1
            except aiohttp.ClientError:
                errors += 1
            latencies.append(time.perf_counter() - due)

        await asyncio.gather(*(one(i, next(bodies)) for i in range(total)))
        elapsed = time.perf_counter() - start
    latencies.sort()
    ms = [x * 1000 for x in latencies]
    return {
        "requests": total,
        "errors": errors,
        "achieved_rate": round(total / elapsed, 1),
        "p50_ms": round(statistics.median(ms), 2),
        "p99_ms": round(ms[min(len(ms) - 1, int(len(ms) * 0.99))], 2),
        "max_ms": round(ms[-1], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="100,500")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    rates = [int(r) for r in args.rates.split(",")]
    cold_needed = sum(int(r * args.seconds) for r in rates) * args.rounds + 10
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        with RegistryServer(workdir=work / "registry") as registry:
            config = RegistryConfig.from_mapping({registry.host: {"plain_http": True}})
            client = RegistryClient(config)
            image = build_image([tar_layer({"app/VERSION": b"bench"})])
            repo = f"{registry.host}/team/app"
            digest = push(client, f"{repo}:cached", image)
            writer = RegistryWriter(client)
            t0 = time.perf_counter()
            with ThreadPoolExecutor(8) as pool:
                list(
                    pool.map(
                        lambda i: writer.put_manifest(
                            repo, f"cold-{i}", image.manifest.data, image.manifest.media_type
                        ),
                        range(cold_needed),
                    )
                )
            emit(step="setup", tags_pushed=cold_needed, seconds=round(time.perf_counter() - t0, 1), digest=digest)
            registry_file = work / "registries.yaml"
            registry_file.write_text(f"{registry.host}:\n  plain_http: true\n")

            service = LiveService(work / "service").start()
            try:
                service.trust_registry(f"{registry.host}/team")
                admin = {"Authorization": f"Bearer {service.admin_token}"}
                httpx.put(f"{service.url}/api/v1/policy/enforcement", json=POLICY, headers=admin).raise_for_status()
                cluster_id, credential = service.register("bench")
                resp = httpx.post(
                    f"{service.url}/api/v1/clusters/{cluster_id}/admission-credential",
                    json={},
                    headers={"Authorization": f"Bearer {credential}"},
                )
                resp.raise_for_status()
                webhook = WebhookProcess(
                    work / "webhook", service.url, cluster_id, resp.json()["credential"], registry_config=registry_file
                )
                with webhook:
                    ctx = webhook.ssl_context()
                    cached = f"{repo}:cached"
                    # One cold review, timed alone, then the image is in the webhook's cache.
                    t0 = time.perf_counter()
                    r = httpx.post(
                        f"{webhook.url}/validate",
                        content=review_body(cached),
                        headers={"Content-Type": "application/json"},
                        verify=ctx,
                    )
                    emit(
                        workload="single_cold_decision",
                        ms=round((time.perf_counter() - t0) * 1000, 1),
                        status=r.status_code,
                    )
                    cold_tags = (f"{repo}:cold-{i}" for i in itertools.count())
                    for rate, round_ in itertools.product(rates, range(1, args.rounds + 1)):
                        pid = webhook.pid
                        assert pid is not None
                        load = (webhook.url, ctx)
                        base = measured(pid, *load, itertools.repeat(None), rate, args.seconds, args.connections)
                        emit(workload="baseline_healthz", rate=rate, round=round_, **base)
                        bodies = (review_body(cached) for _ in itertools.count())
                        out = measured(pid, *load, bodies, rate, args.seconds, args.connections)
                        ratio = round(out["p99_ms"] / base["p99_ms"], 2)
                        emit(workload="cached", rate=rate, round=round_, ratio_p99=ratio, **out)
                        bodies = (review_body(next(cold_tags)) for _ in itertools.count())
                        out = measured(pid, *load, bodies, rate, args.seconds, args.connections)
                        ratio = round(out["p99_ms"] / base["p99_ms"], 2)
                        emit(workload="cold", rate=rate, round=round_, ratio_p99=ratio, **out)
            finally:
                service.stop()


if __name__ == "__main__":
    sys.exit(main())
