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

``--baseline-src DIR`` (the ``src`` folder of an earlier commit: ``git archive <commit> src | tar -x
-C /tmp/old``) then runs the matching stages of that code and of this one in child processes on the
database written above (``--rounds`` times, alternated), checks that both return the same matches for
every query, and prints the ratios old/new of the median CPU seconds.

Prints JSON lines {"bench": "match", ...}. Run: .venv/bin/python bench/match.py [--baseline-src DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import resource
import statistics
import subprocess
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


def results_sha(results) -> str:
    """One sha256 over every query's matches (ids, package, range types, listed, fixed versions) or error."""
    doc = [
        [(x.id, x.affected.name, [r.type for r in x.ranges], x.in_versions_list, list(x.fixed_versions)) for x in r]
        if isinstance(r, list)
        else f"{type(r).__name__}: {r}"
        for r in results
    ]
    return hashlib.sha256(json.dumps(doc).encode()).hexdigest()[:16]


def child(db: str, code: str) -> None:
    """The matching stages on the index loaded from ``db``, with whichever vigil is on the path."""
    with AdvisoryStore(Path(db)) as store:
        loaded, _ = store.load_index()
    advisories = list(loaded.advisories.values())
    queries = draw_queries(advisories, QUERIES)
    out = {}
    index = AdvisoryIndex.from_advisories(advisories)
    for label in ("cold", "warm"):
        c0 = time.process_time()
        results = index.match_many(queries)
        out[f"match_many_{label}_cpu"] = round(time.process_time() - c0, 3)
    out["results_sha"] = results_sha(results)
    index = AdvisoryIndex.from_advisories(advisories)
    for label in ("cold", "warm"):
        c0 = time.process_time()
        for eco, name, version in queries:
            try:
                index.match(eco, name, version)
            except ValueError:
                pass
        out[f"match_{label}_cpu"] = round(time.process_time() - c0, 3)
    emit(stage="child", code=code, packages=len(queries), **out)


def paired(db: Path, baseline_src: str, rounds: int) -> None:
    codes = {"old": str(Path(baseline_src).resolve()), "new": str(Path(__file__).resolve().parents[1] / "src")}
    got: dict[str, list[dict]] = {"old": [], "new": []}
    for round_ in range(rounds):
        for code in ("old", "new") if round_ % 2 == 0 else ("new", "old"):
            done = subprocess.run(
                [sys.executable, __file__, "--child", str(db), code],
                env={**os.environ, "PYTHONPATH": codes[code]},
                check=True,
                capture_output=True,
                text=True,
            )
            [line] = [json.loads(x) for x in done.stdout.splitlines() if x.startswith("{")]
            print(json.dumps({**line, "round": round_}), flush=True)
            got[code].append(line)
    shas = {r["results_sha"] for rs in got.values() for r in rs}
    assert len(shas) == 1, f"old and new code matched differently: {shas}"
    ratios = {}
    for field in ("match_many_cold_cpu", "match_many_warm_cpu", "match_cold_cpu", "match_warm_cpu"):
        old = statistics.median(r[field] for r in got["old"])
        new = statistics.median(r[field] for r in got["new"])
        ratios[field] = {"old": old, "new": new, "old_over_new": round(old / new, 2) if new else None}
    emit(stage="ratios", rounds=rounds, same_results=True, **ratios)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline-src", default=None, help="src folder of an earlier commit, run in the same run")
    parser.add_argument("--rounds", type=int, default=3, help="alternated rounds per code with --baseline-src")
    parser.add_argument("--child", nargs=2, metavar=("DB", "CODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return 0
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
        if args.baseline_src:
            paired(Path(tmp) / "intel.db", args.baseline_src, args.rounds)
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
