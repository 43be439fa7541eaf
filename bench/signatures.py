"""Benchmark: signature verification per digest, cold and cached, for N running images with signatures.

Workload: a throwaway Debian docker-registry on loopback holding N distinct images (R repositories x N/R
tags), each signed once by one ECDSA P-256 key as cosign does (a simple-signing payload under the
`sha256-<hex>.sig` tag: this registry has no referrers API, so discovery asks the referrers endpoint
(404) and the .sig and .att tags); one cluster whose snapshot runs each image in its own Deployment,
posted through the real ingest API; a trust policy that trusts the registry and requires a signature by
that key. The store is SQLite in a temp dir (or --database-url). Phases:

- cold:    a signature pass over every running digest with nothing stored: discovery (referrers, .sig,
           .att, the payload blob), ECDSA verification, the stored checks, one verdict per workload;
- idle:    the next background pass, past the reverify interval: verified digests are never due, so no
           registry request; nothing changed, so no workload is judged again;
- cached:  one digest's verdict from the store, as the API and the admission feed make it: its stored
           checks read by digest and judged against the workload's rule (no registry request), timed
           one by one for every digest;
- api:     GET /api/v1/images/{id}/signatures for a sample of images, end to end over HTTP.

Each line of output is one JSON object. Aim: under 5 ms per cached verdict, 0 requests once verified.

    .venv/bin/python bench/signatures.py [--images 1000] [--repos 10]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from vigil.devtools.oci import build_image, push, tar_layer
from vigil.devtools.registry_server import RegistryServer
from vigil.devtools.service import LiveService
from vigil.devtools.signing import new_key, public_pem, sign
from vigil.policy.signature_rules import material
from vigil.registry import RegistryClient, RegistryConfig
from vigil.service.jobs.signatures import SignatureVerifier
from vigil.service.store import signatures as signature_store
from vigil.service.store.integrity import running_images
from vigil.service.store.policy import load_policy
from vigil.service.store.signatures import judge

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.integrity_eval import snapshot  # noqa: E402
from tests.service.helpers import post_batch  # noqa: E402


def emit(**fields) -> None:
    print(json.dumps(fields), flush=True)


def push_signed(host: str, config: RegistryConfig, n: int, repos: int, key) -> list[tuple[str, str]]:
    layer = tar_layer({"app/README": b"bench layer\n"})
    refs = [(f"{host}/bench/repo{i % repos}:v{i // repos}", i) for i in range(n)]
    clients = [RegistryClient(config) for _ in range(4)]

    def one(item: tuple[str, int]) -> tuple[str, str]:
        ref, i = item
        client = clients[i % len(clients)]
        img = build_image([layer], labels={"org.opencontainers.image.version": f"1.0.{i}"})
        push(client, ref, img)
        sign(client, ref.rsplit(":", 1)[0], img.digest, key)
        return ref, img.digest

    try:
        with ThreadPoolExecutor(max_workers=4) as pool:
            return list(pool.map(one, refs))
    finally:
        for c in clients:
            c.close()


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--repos", type=int, default=10)
    parser.add_argument("--api-sample", type=int, default=200)
    parser.add_argument("--database-url", default=None, help="default: SQLite in a temp dir")
    args = parser.parse_args()
    key = new_key()

    with (
        tempfile.TemporaryDirectory(prefix="vigil-bench-") as tmp,
        RegistryServer(workdir=Path(tmp) / "registry") as registry,
    ):
        config = RegistryConfig.from_mapping({registry.host: {"plain_http": True}})
        started = time.perf_counter()
        images = push_signed(registry.host, config, args.images, args.repos, key)
        emit(
            bench="signatures",
            phase="setup",
            images=len(images),
            repositories=args.repos,
            signatures_per_image=1,
            key="ECDSA P-256",
            push_and_sign_seconds=round(time.perf_counter() - started, 2),
            cpus=os.cpu_count(),
            load_average=[round(x, 2) for x in os.getloadavg()],
        )
        svc = LiveService(Path(tmp) / "data", args.database_url).start()
        try:
            cluster_id, credential = svc.register("bench")
            post_batch(svc, credential, snapshot(cluster_id, images), gzipped=True).raise_for_status()
            rule = {"pattern": f"{registry.host}/bench", "keys": [{"name": "ci", "pem": public_pem(key).decode()}]}
            httpx.put(
                f"{svc.url}/api/v1/policy/trust",
                json={"trusted": [registry.host], "signatures": [rule]},
                headers={"Authorization": f"Bearer {svc.admin_token}"},
            ).raise_for_status()
            # A reverify interval of 1 s, so the idle pass runs past it: a verified digest is still not due.
            client = RegistryClient(config, content_cache_entries=65536)
            verifier = SignatureVerifier(svc.engine, client, reverify_interval=1.0, workers=4)
            store = "postgresql" if args.database_url and args.database_url.startswith("postgres") else "sqlite"

            cold = verifier.run_pass()
            emit(
                bench="signatures",
                phase="cold",
                store=store,
                images=len(images),
                checked=cold.checked,
                statuses=dict(cold.statuses),
                judged=cold.judged,
                opened=cold.opened,
                seconds=round(cold.seconds, 3),
                ms_per_digest=round(cold.seconds * 1000 / max(1, cold.checked), 2),
                requests=cold.requests,
                requests_per_digest=round(cold.requests / max(1, cold.checked), 2),
            )
            time.sleep(1.1)
            idle = verifier.run_pass()
            emit(
                bench="signatures",
                phase="idle",
                store=store,
                due=idle.due,
                judged=idle.judged,
                seconds=round(idle.seconds, 3),
                requests=idle.requests,
            )

            with svc.engine.connect() as conn:
                policy = load_policy(conn)
                running = running_images(conn)
            revision = material(policy.signatures).revision
            timings: list[float] = []
            judging: list[float] = []
            verdicts: dict[str, int] = {}
            for r in running:
                t0 = time.perf_counter()
                with svc.engine.connect() as conn:
                    state = signature_store.load_states(conn, [r.digest]).get(r.digest)
                t1 = time.perf_counter()
                verdict = judge(policy, r, state, revision)
                t2 = time.perf_counter()
                timings.append((t2 - t0) * 1000)
                judging.append((t2 - t1) * 1000)
                verdicts[verdict.status.value] = verdicts.get(verdict.status.value, 0) + 1
            emit(
                bench="signatures",
                phase="cached",
                store=store,
                verdicts=len(timings),
                statuses=verdicts,
                ms_mean=round(statistics.fmean(timings), 3),
                ms_p50=round(percentile(timings, 50), 3),
                ms_p99=round(percentile(timings, 99), 3),
                ms_max=round(max(timings), 3),
                judge_only_ms_mean=round(statistics.fmean(judging), 4),
                judge_only_ms_p99=round(percentile(judging, 99), 4),
                load_average=[round(x, 2) for x in os.getloadavg()],
                requests=0,
            )

            pks = sorted({r.image_pk for r in running})[: args.api_sample]
            api: list[float] = []
            with httpx.Client(headers={"Authorization": f"Bearer {svc.admin_token}"}) as http:
                for pk in pks:
                    t0 = time.perf_counter()
                    http.get(f"{svc.url}/api/v1/images/{pk}/signatures").raise_for_status()
                    api.append((time.perf_counter() - t0) * 1000)
            emit(
                bench="signatures",
                phase="api",
                store=store,
                requests=len(api),
                ms_p50=round(percentile(api, 50), 2),
                ms_p99=round(percentile(api, 99), 2),
            )
            client.close()
        finally:
            svc.stop()


if __name__ == "__main__":
    main()
