"""Benchmark: what one `vigil` call costs before it does its work (wall time and peak RSS per process).

Workload: the installed console script (`<venv>/bin/vigil`) run as its own process, N times per
command, output to /dev/null:

- `vigil --version`
- `vigil get clusters -o json` against a running service on loopback (SQLite; 5 clusters, each
  with a synthetic snapshot of 3 nodes and 20 pods), a viewer token in VIGIL_TOKEN
- `vigil image check --help`
- baseline: `python -c pass` with the same interpreter, so the figures read as ratios

Each command runs once untimed first (and its output is checked), then N timed runs; the figures are
the median and max wall time (spawn to reaped), the median CPU time (user + system, which a busy
machine inflates less than wall time) and the largest peak RSS.
Each line of output is one JSON object. Aim: `vigil get clusters -o json` under 500 ms and 60 MB.

    .venv/bin/python bench/cli_startup.py [--runs 11]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from vigil.devtools.inventory import synthetic_snapshot
from vigil.devtools.service import LiveService

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.service.helpers import post_batch

CLUSTERS = 5
TIME = "/usr/bin/time"
TARGET_MS, TARGET_RSS_MB = 500, 60


def emit(**fields) -> None:
    print(json.dumps(fields), flush=True)


def run_once(argv: list[str], env: dict[str, str]) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds, peak RSS in MB) of one process, from spawn to reaped.

    GNU time starts the process and reports its own peak RSS: a child forked from this (large)
    benchmark process would count the parent's pages until it execs. The CPU time is what
    ``os.wait4`` reports for time and the process it waited for (microseconds; time's %U is
    in hundredths).
    """
    with tempfile.NamedTemporaryFile("r") as report:
        null = os.open(os.devnull, os.O_WRONLY)
        try:
            quiet = [(os.POSIX_SPAWN_DUP2, null, 1), (os.POSIX_SPAWN_DUP2, null, 2)]
            start = time.perf_counter()
            pid = os.posix_spawn(TIME, [TIME, "-f", "%M", "-o", report.name, *argv], env, file_actions=quiet)
            _, status, usage = os.wait4(pid, 0)
            wall = time.perf_counter() - start
        finally:
            os.close(null)
        if os.waitstatus_to_exitcode(status) != 0:
            raise RuntimeError(f"{argv} exited {os.waitstatus_to_exitcode(status)}")
        return wall, usage.ru_utime + usage.ru_stime, int(report.read().split()[-1]) / 1024  # kB


def seed(svc: LiveService) -> None:
    for i in range(CLUSTERS):
        cid, cred = svc.register(f"bench-{i}")
        post_batch(svc, cred, synthetic_snapshot(cid, nodes=3, pods=20, images=4)).raise_for_status()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=11, help="timed runs per command")
    args = ap.parse_args()
    vigil = str(Path(sys.executable).with_name("vigil"))
    with tempfile.TemporaryDirectory() as d:
        svc = LiveService(Path(d) / "data").start()
        try:
            seed(svc)
            env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
            env.update(VIGIL_URL=svc.url, VIGIL_TOKEN=svc.token("viewer"))
            commands = {
                "python -c pass": [sys.executable, "-c", "pass"],
                "vigil --version": [vigil, "--version"],
                "vigil get clusters -o json": [vigil, "get", "clusters", "-o", "json"],
                "vigil image check --help": [vigil, "image", "check", "--help"],
            }
            listed = subprocess.run(commands["vigil get clusters -o json"], env=env, capture_output=True, check=True)
            assert len(json.loads(listed.stdout)) == CLUSTERS, listed.stdout[:300]
            baseline: dict[str, float] = {}
            within = True
            for name, argv in commands.items():
                run_once(argv, env)
                runs = [run_once(argv, env) for _ in range(args.runs)]
                walls = [w * 1000 for w, _, _ in runs]
                figures = {
                    "wall": statistics.median(walls),
                    "cpu": statistics.median(c * 1000 for _, c, _ in runs),
                    "rss": max(r for _, _, r in runs),
                }
                baseline = baseline or figures
                line = {
                    "bench": "cli_startup",
                    "command": name,
                    "median_ms": round(figures["wall"], 1),
                    "max_ms": round(max(walls), 1),
                    "median_cpu_ms": round(figures["cpu"], 1),
                    "peak_rss_mb": round(figures["rss"], 1),
                    "vs_python": {k: round(v / max(baseline[k], 1e-9), 1) for k, v in figures.items()},
                    "runs": args.runs,
                }
                if name.startswith("vigil get"):
                    line.update(target_ms=TARGET_MS, target_rss_mb=TARGET_RSS_MB)
                    within = figures["wall"] < TARGET_MS and figures["rss"] < TARGET_RSS_MB
                emit(**line)
            emit(bench="cli_startup", load_average=round(os.getloadavg()[0], 1), within_target=within)
        finally:
            svc.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
