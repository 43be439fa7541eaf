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

``seconds`` is the pass (every verdict and finding committed); provenance (the config blob per new digest;
its manifest came with the pass's GET) is recorded after it by the evaluator's provenance recorder, and
``provenance_seconds`` / ``provenance_requests`` are what that took (the bench waits for it before the
next pass). ``registry_cpu_seconds`` is the registry process's CPU in the phase, ``bench_cpu_seconds``
this process's (client, evaluator and the service's store).

``--baseline-src DIR`` (a ``src`` folder of an earlier commit: ``git archive <commit> src | tar -x -C
/tmp/old``) runs the cold, warm and reverify passes of that code and of this one in child processes
against the same registry, ``--rounds`` times alternated, prints each and the ratios old/new of the
medians, and checks that both stored the same verdicts and provenance.

Each line of output is one JSON object. Aims: cold pass < 5 s, warm pass < 0.5 s, <= 1 request per
image per interval.

    .venv/bin/python bench/integrity_eval.py [--images 2000] [--repos 20] [--registry-concurrency 8] \\
        [--sweep 1,16] [--database-url postgresql://...] [--baseline-src /tmp/old/src --rounds 2]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sqlalchemy import text

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


def process_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stored_results(engine) -> dict:
    """sha256s of what the passes stored: per image digest its verdict, and every provenance row."""
    with engine.connect() as conn:
        verdicts = sorted(
            conn.execute(
                text(
                    "SELECT i.digest, ii.status, ii.verdict, COALESCE(ii.registry_digest, '') FROM image_integrity ii"
                    " JOIN images i ON i.id = ii.image_pk"
                )
            ).all()
        )
        provenance = sorted(
            (
                r[0],
                r[1] or "",
                r[2] or "",
                r[3] or "",
                json.dumps(r[4], sort_keys=True) if not isinstance(r[4], str) else r[4],
            )
            for r in conn.execute(text("SELECT digest, source, revision, version, labels FROM image_provenance"))
        )

    def sha(rows) -> str:
        return hashlib.sha256(json.dumps([list(r) for r in rows]).encode()).hexdigest()[:16]

    return {
        "verdicts": len(verdicts),
        "verdicts_sha": sha(verdicts),
        "provenance": len(provenance),
        "provenance_sha": sha(provenance),
    }


def passes(args, host: str, registry_pid: int, images: list[tuple[str, str]], tmp: Path, **tags) -> dict:
    """A fresh service on this registry's images, then the cold, warm, reverify and idle passes (and the sweep)."""
    config = RegistryConfig.from_mapping({host: {"plain_http": True}})
    svc = LiveService(tmp / "data", args.database_url).start()
    try:
        cluster_id, credential = svc.register("bench")
        response = post_batch(svc, credential, snapshot(cluster_id, images), gzipped=True)
        response.raise_for_status()
        import httpx

        httpx.put(
            f"{svc.url}/api/v1/policy/trust",
            json={"trusted": [host]},
            headers={"Authorization": f"Bearer {svc.admin_token}"},
        ).raise_for_status()
        client = RegistryClient(config, tag_ttl=args.reverify_interval * TAG_TTL_FRACTION, content_cache_entries=65536)
        evaluator = IntegrityEvaluator(
            svc.engine,
            client,
            reverify_interval=args.reverify_interval,
            registry_concurrency=args.registry_concurrency,
        )
        # An earlier commit fetched provenance inside the pass and has no recorder.
        recorder = getattr(evaluator, "provenance", None)
        store = "postgresql" if args.database_url and args.database_url.startswith("postgres") else "sqlite"
        out: dict = {}

        def measure(name: str, **kw) -> None:
            before = client.stats.snapshot()
            reg0, cpu0 = process_cpu(registry_pid), time.process_time()
            report = evaluator.run_pass(**kw)
            prov_started = time.perf_counter()
            prov_requests = recorder.stats.requests if recorder else 0
            if recorder is not None:
                assert recorder.wait(600), "provenance recorder did not finish"
            prov_seconds = time.perf_counter() - prov_started if recorder else 0.0
            prov_requests = (recorder.stats.requests - prov_requests) if recorder else report.provenance_requests
            after = client.stats.snapshot()
            by_kind = {
                k: v - before["by_kind"].get(k, 0)
                for k, v in after["by_kind"].items()
                if v - before["by_kind"].get(k, 0)
            }
            line = dict(
                bench="integrity_eval",
                phase=name,
                **tags,
                store=store,
                registry_concurrency=evaluator.registry_concurrency,
                images=len(images),
                evaluated=report.evaluated,
                statuses=dict(report.statuses),
                seconds=round(report.seconds, 3),
                verdict_seconds=round(report.verdict_seconds, 3),
                provenance_seconds=round(prov_seconds, 3),
                until_provenance_seconds=round(report.seconds + prov_seconds, 3),
                requests=after["requests"] - before["requests"],
                provenance_requests=prov_requests,
                requests_per_image=round((after["requests"] - before["requests"]) / len(images), 3),
                requests_by_kind=by_kind,
                registry_cpu_seconds=round(process_cpu(registry_pid) - reg0, 2),
                bench_cpu_seconds=round(time.process_time() - cpu0, 2),
            )
            emit(**line)
            out.setdefault(name, line)

        measure("cold", force=True)
        measure("warm", force=True)
        client.tag_cache.clear()  # as when the TTL runs out at the next reverify interval
        measure("reverify", force=True)
        measure("idle")
        for bound in [int(b) for b in args.sweep.split(",") if b]:
            evaluator.registry_concurrency = bound
            client.tag_cache.clear()
            measure(f"reverify_{bound}", force=True)
        out["stored"] = stored_results(svc.engine)
        emit(bench="integrity_eval", phase="stored", **tags, **out["stored"])
        evaluator.stop()
        return out
    finally:
        svc.stop()


def paired(args, host: str, registry_pid: int, images: list[tuple[str, str]], tmp: Path) -> None:
    """This code and ``--baseline-src``'s, each in a child process, alternated; ratios of the medians."""
    images_file = tmp / "images.json"
    images_file.write_text(json.dumps(images))
    here = Path(__file__).resolve().parents[1] / "src"
    codes = {"old": Path(args.baseline_src).resolve(), "new": here}
    got: dict[str, list[dict]] = {"old": [], "new": []}
    for round_ in range(args.rounds):
        for code in ("old", "new") if round_ % 2 == 0 else ("new", "old"):
            env = {**os.environ, "PYTHONPATH": str(codes[code])}
            cmd = [
                sys.executable,
                __file__,
                "--child",
                host,
                str(registry_pid),
                str(images_file),
                code,
                "--registry-concurrency",
                str(args.registry_concurrency),
                "--sweep",
                "",
                "--reverify-interval",
                str(args.reverify_interval),
            ]
            if args.database_url:
                cmd += ["--database-url", args.database_url]
            done = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
            lines = [json.loads(x) for x in done.stdout.splitlines() if x.startswith("{")]
            for line in lines:
                print(json.dumps({**line, "round": round_}), flush=True)
            got[code].append({x["phase"]: x for x in lines})
    keys = ("verdicts", "verdicts_sha", "provenance", "provenance_sha")
    old_stored = {tuple(r["stored"][k] for k in keys) for r in got["old"]}
    new_stored = {tuple(r["stored"][k] for k in keys) for r in got["new"]}
    assert old_stored == new_stored and len(new_stored) == 1, f"stored results differ: {old_stored} vs {new_stored}"

    def median(code: str, phase: str, field: str) -> float:
        return statistics.median(r[phase][field] for r in got[code])

    ratios = {}
    for phase, field in [
        ("cold", "seconds"),
        ("cold", "until_provenance_seconds"),
        ("cold", "requests"),
        ("cold", "registry_cpu_seconds"),
        ("cold", "bench_cpu_seconds"),
        ("warm", "seconds"),
        ("reverify", "seconds"),
    ]:
        old, new = median("old", phase, field), median("new", phase, field)
        ratios[f"{phase}_{field}"] = {"old": old, "new": new, "old_over_new": round(old / new, 2) if new else None}
    emit(bench="integrity_eval", phase="ratios", rounds=args.rounds, same_results=True, **ratios)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--repos", type=int, default=20)
    parser.add_argument("--reverify-interval", type=float, default=300.0)
    parser.add_argument("--database-url", default=None, help="default: SQLite in a temp dir")
    parser.add_argument("--registry-concurrency", type=int, default=8)
    parser.add_argument("--sweep", default="1,16", help="other concurrency bounds for reverify passes ('' for none)")
    parser.add_argument("--baseline-src", default=None, help="src folder of an earlier commit, run in the same run")
    parser.add_argument("--rounds", type=int, default=2, help="alternated rounds per code with --baseline-src")
    parser.add_argument("--child", nargs=4, metavar=("HOST", "PID", "IMAGES", "CODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        host, pid, images_file, code = args.child
        with tempfile.TemporaryDirectory(prefix="vigil-bench-") as tmp:
            images = [tuple(x) for x in json.loads(Path(images_file).read_text())]
            passes(args, host, int(pid), images, Path(tmp), code=code)
        return

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
        assert registry._process is not None
        if args.baseline_src:
            paired(args, registry.host, registry._process.pid, images, Path(tmp))
        else:
            passes(args, registry.host, registry._process.pid, images, Path(tmp))


if __name__ == "__main__":
    main()
