"""Benchmark: import all of ../shared/data/osv, then match 10,000 packages.

Workload: every OSV record under shared/data/osv (PyPI YAML, Go and crates.io
JSON, samples) is parsed and indexed; the advisory database is written to and
read back from its SQLite file; then 10,000 (ecosystem, name, version)
queries are matched: 8,000 drawn (seeded) from the advisories' own packages and
the versions their records mention, 2,000 names that no advisory names. The
first matching pass compiles each package's ranges on first use (cold); the
second pass is warm; the same two passes run first through ``match_many`` (one
batch, the cyclic GC paused) on another fresh index. Wall and CPU seconds are both
printed: on a shared machine wall time includes waiting for a core. Baseline, same
run: a linear scan over every advisory for 200 of the same queries (what matching
costs without the per-package index), scaled to 10,000.

Prints JSON lines {"bench": "match", ...}. Run: .venv/bin/python bench/match.py
"""

from __future__ import annotations

import json
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

from vigil.intel.loader import load_osv
from vigil.intel.matching import AdvisoryIndex
from vigil.intel.store import AdvisoryStore

OSV = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "osv"
QUERIES = 10_000


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def emit(**fields) -> None:
    print(json.dumps({"bench": "match", **fields}), flush=True)


def draw_queries(advisories, n: int, seed: int = 5) -> list[tuple[str, str, str]]:
    rng = random.Random(seed)
    pool = []
    for adv in advisories:
        for aff in adv.affected:
            versions = [e.version for r in aff.ranges if r.type != "GIT" for e in r.events if e.version != "0"]
            versions += list(aff.versions)
            for v in versions:
                pool.append((aff.ecosystem, aff.name, v))
    pool.sort()
    known = rng.sample(pool, n * 8 // 10)
    ecosystems = sorted({q[0] for q in pool})
    unknown = [(rng.choice(ecosystems), f"not-an-advised-package-{i}", "1.0.0") for i in range(n - len(known))]
    queries = known + unknown
    rng.shuffle(queries)
    return queries


def main() -> int:
    if not OSV.exists():
        print(f"shared data {OSV} is missing", file=sys.stderr)
        return 1
    t0 = time.perf_counter()
    advisories, report = load_osv([OSV])
    t_load = time.perf_counter() - t0
    emit(
        stage="import",
        seconds=round(t_load, 3),
        files=report.files,
        advisories=len(advisories),
        rejected=len(report.rejected),
        peak_rss_mb=round(peak_rss_mb(), 1),
    )

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        with AdvisoryStore(Path(tmp) / "intel.db") as store:
            store.upsert(advisories)
        t_write = time.perf_counter() - t0
        size = (Path(tmp) / "intel.db").stat().st_size
        t0 = time.perf_counter()
        with AdvisoryStore(Path(tmp) / "intel.db") as store:
            index, _ = store.load_index()
        t_read = time.perf_counter() - t0
    emit(
        stage="database",
        write_seconds=round(t_write, 3),
        load_index_seconds=round(t_read, 3),
        db_mb=round(size / 1e6, 1),
        indexed=len(index),
        withdrawn=len(index.withdrawn),
    )

    t0 = time.perf_counter()
    index = AdvisoryIndex.from_advisories(advisories)
    t_index = time.perf_counter() - t0
    emit(stage="index", seconds=round(t_index, 3), packages=len(list(index.packages())))

    queries = draw_queries(advisories, QUERIES)
    # The queries through match_many (what a scan does: one batch per image,
    # the cyclic GC paused for the batch), first, so no cache it fills helps it;
    # then one call per package on a fresh index (cold, warm), as `vigil intel
    # query` does.
    batch_index = AdvisoryIndex.from_advisories(advisories)
    for label in ("cold", "warm"):
        t0, c0 = time.perf_counter(), time.process_time()
        results = batch_index.match_many(queries)
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
        emit(
            stage=f"match_many_{label}",
            packages=len(queries),
            seconds=round(elapsed, 3),
            cpu_seconds=round(cpu, 3),
            packages_per_s=round(len(queries) / elapsed),
            with_matches=sum(1 for r in results if isinstance(r, list) and r),
            errors=sum(1 for r in results if isinstance(r, ValueError)),
            peak_rss_mb=round(peak_rss_mb(), 1),
        )

    for label in ("cold", "warm"):
        matched = 0
        errors = 0
        t0, c0 = time.perf_counter(), time.process_time()
        for eco, name, version in queries:
            try:
                matched += bool(index.match(eco, name, version))
            except ValueError:
                errors += 1
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
        emit(
            stage=f"match_{label}",
            packages=len(queries),
            seconds=round(elapsed, 3),
            cpu_seconds=round(cpu, 3),
            packages_per_s=round(len(queries) / elapsed),
            with_matches=matched,
            errors=errors,
            peak_rss_mb=round(peak_rss_mb(), 1),
        )
    # Baseline: no per-package index, every advisory checked for every query.
    sample = queries[:200]
    entries = [(a, aff) for a in advisories if not a.is_withdrawn for aff in a.affected]
    t0 = time.perf_counter()
    for eco, name, version in sample:
        single = AdvisoryIndex()
        for a, aff in entries:
            if aff.name == name and aff.ecosystem == eco and a.id not in single.advisories:
                single.add(a)
        try:
            single.match(eco, name, version)
        except ValueError:
            pass
    elapsed = time.perf_counter() - t0
    emit(
        stage="baseline_linear_scan",
        packages=len(sample),
        seconds=round(elapsed, 3),
        estimated_seconds_for_10000=round(elapsed * QUERIES / len(sample), 1),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
