"""Benchmark: integrity evaluation of N distinct running images against a real local registry.

Workload: a throwaway Debian docker-registry on loopback holding N distinct images
(R repositories x N/R tags, each its own manifest and config); one cluster whose
snapshot runs each image in its own Deployment, posted through the real ingest API;
the trust policy trusts the registry. Then full evaluation passes of every
(image, cluster) pair, timed, with registry requests counted by the client:

- cold:     empty caches, nothing stored (tag HEADs, and provenance: manifest + config per digest)
- warm:     the same pass again at once: tag answers cached (TTL 0.9 x reverify interval)
- reverify: tag answers expired, as at the next reverify interval; provenance is stored, content cached
- idle:     a background tick with nothing due (the steady-state cost between intervals)
- sweep:    reverify passes again at other ``--registry-concurrency`` bounds, 1 being the sequential
            path (the ratio against it is in the same run)

``verdict_seconds`` is when every verdict and finding of the pass was committed; provenance (manifest
and config per new digest) is fetched after that, within ``seconds``.

Each line of output is one JSON object. Aims: cold verdicts < 5 s, warm pass < 0.5 s, <= 1 request per
image per interval.

    .venv/bin/python bench/integrity_eval.py [--images 2000] [--repos 20] [--registry-concurrency 8] \\
        [--sweep 1,16] [--database-url postgresql://...]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from vigil.devtools.oci import build_image, push, tar_layer
from vigil.devtools.registry_server import RegistryServer
from vigil.devtools.service import LiveService
from vigil.registry import RegistryClient, RegistryConfig
from vigil.service.jobs.integrity import IntegrityEvaluator
from vigil.service.jobs.workers import TAG_TTL_FRACTION
from vigil.wire.inventory import InventorySnapshot

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.service.helpers import post_batch


def emit(**fields) -> None:
    print(json.dumps(fields), flush=True)


def push_images(host: str, config: RegistryConfig, n: int, repos: int) -> list[tuple[str, str]]:
    layer = tar_layer({"app/README": b"bench layer\n"})
    refs = [(f"{host}/bench/repo{i % repos}:v{i // repos}", i) for i in range(n)]

    def one(item: tuple[str, int]) -> tuple[str, str]:
        ref, i = item
        img = build_image(
            [layer],
            labels={
                "org.opencontainers.image.version": f"1.0.{i}",
                "org.opencontainers.image.source": f"https://git.example.com/bench/{i}",
            },
        )
        with_client = clients[i % len(clients)]
        push(with_client, ref, img)
        return ref, img.digest

    clients = [RegistryClient(config) for _ in range(8)]
    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            return list(pool.map(one, refs))
    finally:
        for c in clients:
            c.close()


def snapshot(cluster_id: str, images: list[tuple[str, str]]) -> InventorySnapshot:
    workloads, pods = [], []
    for i, (ref, digest) in enumerate(images):
        name = f"app-{i}"
        workloads.append({"namespace": "bench", "kind": "Deployment", "name": name})
        pods.append(
            {
                "uid": f"00000000-0000-4000-8000-{i:012d}",
                "namespace": "bench",
                "name": f"{name}-0",
                "phase": "Running",
                "workload": {"kind": "Deployment", "name": name},
                "containers": [
                    {
                        "name": "app",
                        "image": ref,
                        "image_digest": digest,
                        "image_id": f"{ref.rsplit(':', 1)[0]}@{digest}",
                        "state": "running",
                    }
                ],
            }
        )
    return InventorySnapshot.model_validate(
        {"kind": "snapshot", "batch_id": "bench-1", "cluster_id": cluster_id, "workloads": workloads, "pods": pods}
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--repos", type=int, default=20)
    parser.add_argument("--reverify-interval", type=float, default=300.0)
    parser.add_argument("--database-url", default=None, help="default: SQLite in a temp dir")
    parser.add_argument("--registry-concurrency", type=int, default=8)
    parser.add_argument("--sweep", default="1,16", help="other concurrency bounds for reverify passes ('' for none)")
    args = parser.parse_args()

    with (
        tempfile.TemporaryDirectory(prefix="vigil-bench-") as tmp,
        RegistryServer(workdir=Path(tmp) / "registry") as registry,
    ):
        config = RegistryConfig.from_mapping({registry.host: {"plain_http": True}})
        started = time.perf_counter()
        images = push_images(registry.host, config, args.images, args.repos)
        emit(
            bench="integrity_eval",
            phase="setup",
            images=len(images),
            repositories=args.repos,
            push_seconds=round(time.perf_counter() - started, 2),
        )

        svc = LiveService(Path(tmp) / "data", args.database_url).start()
        try:
            cluster_id, credential = svc.register("bench")
            response = post_batch(svc, credential, snapshot(cluster_id, images), gzipped=True)
            response.raise_for_status()
            import httpx

            httpx.put(
                f"{svc.url}/api/v1/policy/trust",
                json={"trusted": [registry.host]},
                headers={"Authorization": f"Bearer {svc.admin_token}"},
            ).raise_for_status()
            client = RegistryClient(
                config, tag_ttl=args.reverify_interval * TAG_TTL_FRACTION, content_cache_entries=65536
            )
            evaluator = IntegrityEvaluator(
                svc.engine,
                client,
                reverify_interval=args.reverify_interval,
                registry_concurrency=args.registry_concurrency,
            )
            store = "postgresql" if args.database_url and args.database_url.startswith("postgres") else "sqlite"

            def measure(name: str, **kw) -> None:
                before = client.stats.snapshot()
                report = evaluator.run_pass(**kw)
                after = client.stats.snapshot()
                by_kind = {
                    k: v - before["by_kind"].get(k, 0)
                    for k, v in after["by_kind"].items()
                    if v - before["by_kind"].get(k, 0)
                }
                emit(
                    bench="integrity_eval",
                    phase=name,
                    store=store,
                    registry_concurrency=evaluator.registry_concurrency,
                    images=len(images),
                    evaluated=report.evaluated,
                    statuses=dict(report.statuses),
                    seconds=round(report.seconds, 3),
                    verdict_seconds=round(report.verdict_seconds, 3),
                    requests=report.requests,
                    provenance_requests=report.provenance_requests,
                    requests_per_image=round(report.requests / len(images), 3),
                    requests_by_kind=by_kind,
                )

            measure("cold", force=True)
            measure("warm", force=True)
            client.tag_cache.clear()  # as when the TTL runs out at the next reverify interval
            measure("reverify", force=True)
            measure("idle")
            for bound in [int(b) for b in args.sweep.split(",") if b]:
                evaluator.registry_concurrency = bound
                client.tag_cache.clear()
                measure("reverify", force=True)
        finally:
            svc.stop()


if __name__ == "__main__":
    main()
