"""Package loads: what watching the files of vulnerable packages costs, how big the watch is, how fast a load is seen.

Everything is real: a loopback docker-registry holding an image built here (busybox-static, this machine's
Debian python3.11 with its standard library, the real Jinja2 and MarkupSafe distributions from the venv, and
500 small PyPI distributions ``vpkg000``..``vpkg499`` with RECORD files), scanned by the service's real scanner;
OSV advisories written here make Jinja2 and every vpkg a vulnerable_package; a containerd container (runc,
kubelet-style cgroup) runs the image; `vigil sensor` ships to the service (SQLite, runtime analyzer running)
and holds the node's runtime policy from its long poll, whose load watch is that container's interest set
(the package directories of its vulnerable packages, at most 256 a container: Jinja2 and vpkg000..vpkg254).
Figures, one JSON line each, with the load average (`uptime`) when measured:

* ``overhead``: ``--starts`` sequential starts of python3 in the container (posix_spawn+waitpid by the
  static ``spawnbench`` of bench/sensor_overhead.py, timed inside), each importing a set of standard-library
  modules and Jinja2 (the watched vulnerable package; every start opens its files), with the sensor holding
  the interest set vs the same sensor with ``--no-activity-tracing`` (no file tracing at all). The two
  conditions alternate, first one then the other, each round with a sensor started afresh; overhead is the
  median of the per-round ratios, wall time and CPU (the pythons' user+sys plus the sensor's CPU over the
  loop and a settle wait for its last batch). Events lost are the sensor's final counters (kernel ring).
* ``interest_set``: for the image with 500 vulnerable packages, the service's interest set (paths kept,
  left out, bytes in the policy, kernel entries and their bytes) and the time to compute it
  (vigil.service.store.load_watch.node_load_watch, and the whole node policy, compute_node_policy, on the
  service's database); then the time the sensor's LoadWatch takes to put it in the real kernel table of a
  ProcessTracer loaded here, to apply it again unchanged, and to take it out (a policy with no load watch).
* ``first_import_latency``: ``--events`` first imports, each ``python3 -c "import vpkgNNN"`` of a package never
  imported before in that container, entered with `ctr task exec`; latency = the moment the running_vulnerability
  for that package arrives on GET /api/v1/findings/stream minus the moment `ctr task exec` was started (so it
  includes ctr, runc and the interpreter's start), and the parts: exec start to the open's kernel time (the
  activity sample), the open to the finding stored (first_seen_at: the sensor's batch window, shipping,
  ingest, analysis) and stored to the stream.

Run as root on a kernel with BTF: `.venv/bin/python bench/package_load.py [--starts 1000] [--rounds 4]
[--events 200] [--batch-interval 0.1] [--only overhead,interest_set,first_import_latency]`.
Needs Debian containerd, runc, docker-registry, busybox-static, gcc, libc6-dev and python3.11.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# The runtime tests' harness and the other benches are plain modules in their folders, not packages.
sys.path.insert(0, str(REPO / "tests" / "runtime"))
sys.path.insert(0, str(REPO / "bench"))

import jinja2  # noqa: E402
import runtime_e2e as h  # noqa: E402
from containerd_harness import start_containerd  # noqa: E402
from detection_latency import percentile  # noqa: E402
from sensor_e2e import run_container  # noqa: E402
from sensor_overhead import build_spawnbench, cpu_delta_ns, cpu_ns, final_counters  # noqa: E402
from test_package_load_e2e import DP, HIGH, debian_python3, dist, osv, python_unavailable  # noqa: E402

from vigil.sensor.load_watch import LoadWatch  # noqa: E402
from vigil.sensor.loader import ProcessTracer  # noqa: E402
from vigil.sensor.watch import PATH_LEN  # noqa: E402
from vigil.service.store.load_watch import node_load_watch  # noqa: E402
from vigil.service.store.prevention import compute_node_policy  # noqa: E402

NODE = "bench-load-node"
STDLIB = Path("/usr/lib/python3.11")
SITE = Path(jinja2.__file__).resolve().parents[1]  # the site-packages Jinja2 is installed in (the venv)
# Not imported by the workload, and large: left out of the image.
STDLIB_LEFT_OUT = {"test", "idlelib", "tkinter", "turtledemo", "lib2to3", "ensurepip", "pydoc_data", "site-packages"}
IMPORTS = "json, re, collections, dataclasses, typing, pathlib, logging, argparse, datetime, textwrap, enum, string"
WORKLOAD_PY = f"import {IMPORTS}; import jinja2"
PACKAGES = 500


def emit(doc: dict) -> None:
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout
    doc["load_average"] = uptime.strip().split("average: ")[-1]
    print(json.dumps(doc), flush=True)


def vpkg(i: int) -> str:
    return f"vpkg{i:03}"


def linked_libraries(path: Path) -> dict[str, bytes]:
    """The shared libraries ``path`` links, from ldd, as image files at their host paths."""
    out = subprocess.run(["ldd", str(path)], capture_output=True, text=True, check=True).stdout
    files = {}
    for line in out.splitlines():
        parts = line.split()
        lib = parts[2] if len(parts) >= 3 and parts[1] == "=>" else (parts[0] if parts else "")
        if lib.startswith("/"):
            files[lib] = Path(lib).read_bytes()
    return files


def python_files() -> dict[str, bytes]:
    """Debian's python3.11 with its standard library (sources and C extensions, with the libraries they link),
    and the venv's Jinja2 and MarkupSafe distributions under dist-packages."""
    files = debian_python3()
    for f in STDLIB.rglob("*"):
        rel = f.relative_to(STDLIB)
        if rel.parts[0] in STDLIB_LEFT_OUT or rel.parts[0].startswith("config-") or "__pycache__" in rel.parts:
            continue
        if f.is_file() and not f.is_symlink():
            files[str(f)] = f.read_bytes()
            if f.suffix == ".so":
                files.update(linked_libraries(f))
    for top in ("jinja2", "markupsafe"):
        for d in [SITE / top, *SITE.glob(f"{top}-*.dist-info")]:
            for f in d.rglob("*"):
                if f.is_file() and "__pycache__" not in f.parts:
                    files[f"{DP}/{f.relative_to(SITE)}"] = f.read_bytes()
    return files


def jinja2_version() -> str:
    (info,) = SITE.glob("jinja2-*.dist-info")
    return info.name.removeprefix("jinja2-").removesuffix(".dist-info")


class FindingsWatcher:
    """Reads the findings stream; remembers when each running_vulnerability arrived, by package name."""

    def __init__(self, url: str, token: str) -> None:
        self.arrived: dict[str, tuple[float, dict]] = {}
        self.cond = threading.Condition()
        self.thread = threading.Thread(target=self._run, args=(url, token), daemon=True)
        self.thread.start()

    def _run(self, url: str, token: str) -> None:
        import httpx

        headers = {"Authorization": f"Bearer {token}"}
        params = {"type": "running_vulnerability"}
        with httpx.stream("GET", f"{url}/api/v1/findings/stream", params=params, headers=headers, timeout=None) as r:
            for line in r.iter_lines():
                if not line.startswith("data:"):
                    continue
                now = time.time()
                body = json.loads(line[5:])
                finding = body.get("finding") or {}
                name = ((finding.get("evidence") or {}).get("package") or {}).get("name")
                if name and body["event"]["kind"] == "opened":
                    with self.cond:
                        self.arrived.setdefault(name, (now, finding))
                        self.cond.notify_all()

    def wait(self, name: str, timeout: float = 30.0) -> tuple[float, dict]:
        deadline = time.monotonic() + timeout
        with self.cond:
            while name not in self.arrived:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no running_vulnerability for {name} within {timeout}s")
                self.cond.wait(left)
            return self.arrived[name]


def ms_summary(values: list[float], prefix: str) -> dict:
    return {
        f"{prefix}p50_ms": round(statistics.median(values), 1),
        f"{prefix}p99_ms": round(percentile(values, 0.99), 1),
        f"{prefix}max_ms": round(max(values), 1),
    }


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.registry = h.RegistryServer(workdir=workdir / "registry").start()
        self.ctd = start_containerd(workdir / "ctd")
        self.svc = None
        self.sensors = 0
        extra = python_files()
        extra["/bin/spawnbench"] = build_spawnbench(workdir).read_bytes()
        for i in range(PACKAGES):
            extra.update(dist(vpkg(i), "1.0", vpkg(i)))
        self.image = h.push_image(self.registry, tag="pkgload", extra=extra)
        self.ctd.ctr("images", "pull", "--plain-http", self.image.ref, timeout=300)
        self.svc = h.runtime_service(workdir / "data", self.registry)
        records = [osv("PYSEC-TEST-JINJA2", "jinja2", "99.0", HIGH)]
        records += [osv(f"PYSEC-TEST-{vpkg(i).upper()}", vpkg(i), "1.0.1", HIGH) for i in range(PACKAGES)]
        h.import_advisories(self.svc, records, workdir / "osv")
        self.cluster_id, self.credential = self.svc.register("package-load")
        self.pod, self.cid = h.new_container_ids()
        snapshot = h.inventory_snapshot(self.cluster_id, NODE, pods=[h.web_pod(self.pod, NODE, self.cid, self.image)])
        h.post_inventory(self.svc, self.credential, snapshot)
        t0 = time.monotonic()
        h.scan_and_match(self.svc)
        self.scan_s = time.monotonic() - t0
        vulnerable = self.svc.list_all("/api/v1/findings", cluster=self.cluster_id, type="vulnerable_package")
        if len(vulnerable) != PACKAGES + 1:
            raise RuntimeError(f"{len(vulnerable)} vulnerable_package findings, expected {PACKAGES + 1}")
        # Its init outlives the bench (the harness's default sleeps 300 s, and the container's processes die with it).
        self.init = run_container(self.ctd, self.image, self.pod, self.cid, "/bin/sleep", "1000000")
        h.wait_for_cmdline(self.init, ["/bin/sleep", "1000000"])
        # The first starts write the standard library's bytecode into the container's layer: before any figure.
        warm = self.in_container("/usr/bin/python3", "-c", f"{WORKLOAD_PY}; print(jinja2.__version__)")
        if warm.returncode != 0 or warm.stdout.strip() != jinja2_version():
            raise RuntimeError(f"python3 in the container cannot run the workload: {warm.stdout} {warm.stderr}")
        self.in_container("/usr/bin/python3", "-c", WORKLOAD_PY)

    def close(self) -> None:
        if self.svc is not None:
            h.remove_container(self.ctd, self.cid, self.pod)
            self.svc.stop()
        self.ctd.stop()
        self.registry.close()

    def in_container(self, *argv: str) -> subprocess.CompletedProcess:
        return h.exec_in(self.ctd, self.cid, f"b-{uuid.uuid4().hex[:12]}", *argv)

    def workload(self) -> str:
        return (
            f"1 containerd container of an image with python3.11 (Debian), its standard library, Jinja2 "
            f"{jinja2_version()} and {PACKAGES} small vpkg distributions, all {PACKAGES + 1} vulnerable "
            f"(OSV records written here); the service on SQLite"
        )

    # -- the sensor ----------------------------------------------------------------------------
    def start_sensor(self, batch_interval: float, *extra: str) -> h.SensorProcess:
        """A shipping sensor, returned once it has put the node's load watch in its kernel table."""
        self.sensors += 1
        sensor = h.SensorProcess.start(
            self.svc.url,
            self.credential,
            self.cluster_id,
            NODE,
            self.workdir / f"sensor{self.sensors}",
            "--batch-interval",
            str(batch_interval),
            "--heartbeat-interval",
            "1",
            *extra,
        )

        def holds_policy() -> bool:
            if sensor.proc.poll() is not None:
                raise RuntimeError(f"sensor exited: {sensor.log()[-2000:]}")
            return any("load watch of policy" in x and "in the kernel" in x for x in sensor.log().splitlines())

        try:
            h.wait_for("the sensor holding the node's load watch", holds_policy, 60, every=0.05)
        except BaseException:
            sensor.stop()
            raise
        return sensor

    def stop_sensor(self, sensor: h.SensorProcess) -> dict:
        rc = sensor.stop()
        if rc != 0:
            raise RuntimeError(f"sensor exited with {rc}: {sensor.log()[-2000:]}")
        return final_counters(sensor)

    def package_loads(self) -> int:
        """The service's count of package_load activities in the container (each window's count summed)."""
        items = self.svc.list_all("/api/v1/runtime/activities", cluster=self.cluster_id, kind="package_load")
        return sum(a.get("count", 1) for a in items)

    # -- measurements --------------------------------------------------------------------------
    def interest_set(self) -> None:
        with self.svc.engine.connect() as conn:
            compute, whole = [], []
            for _ in range(5):
                t0 = time.perf_counter()
                watch = node_load_watch(conn, self.cluster_id, NODE)
                compute.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                policy = compute_node_policy(conn, self.cluster_id, NODE)
                whole.append(time.perf_counter() - t0)
        (mine,) = watch
        paths = list(mine.paths)
        with ProcessTracer(exec_aggregation=True) as tracer:
            loads = LoadWatch(tracer)
            t0 = time.perf_counter()
            loads.apply(policy)
            fill = time.perf_counter() - t0
            t0 = time.perf_counter()
            loads.apply(policy)
            again = time.perf_counter() - t0
            t0 = time.perf_counter()
            loads.apply(policy.model_copy(update={"load_watch": []}))
            empty = time.perf_counter() - t0
        entry_bytes = 4 + PATH_LEN + 16  # struct watch_key (prefix length, path) + struct watch_value
        emit(
            {
                "bench": "package_load",
                "metric": "interest_set",
                "workload": self.workload()
                + f"; 1 container running it; {PACKAGES} package directories under {DP} wanted",
                "vulnerable_packages": PACKAGES + 1,
                "paths_kept": len(paths),
                "paths_left_out": mine.left_out,
                "policy_load_watch_bytes": len(mine.model_dump_json()),
                "policy_bytes": len(policy.model_dump_json()),
                "kernel_entries_added": len(paths),
                "kernel_entry_bytes": entry_bytes,
                "kernel_bytes_added": len(paths) * entry_bytes,
                "service_interest_set_ms_median": round(1000 * statistics.median(compute), 1),
                "service_interest_set_ms_runs": [round(1000 * x, 1) for x in compute],
                "service_node_policy_ms_median": round(1000 * statistics.median(whole), 1),
                "sensor_fill_kernel_table_ms": round(1000 * fill, 1),
                "sensor_apply_unchanged_ms": round(1000 * again, 1),
                "sensor_empty_kernel_table_ms": round(1000 * empty, 1),
                "scan_and_match_s": round(self.scan_s, 1),
            }
        )

    def condition_args(self) -> dict[str, tuple[str, ...]]:
        """The sensors compared: no file tracing at all; file tracing with the node's policy but no load watch
        (the same policy from a file, its load watch emptied: every open pays the tracepoints, none is a
        package load); and the service's policy with the container's interest set."""
        with self.svc.engine.connect() as conn:
            policy = compute_node_policy(conn, self.cluster_id, NODE)
        no_watch = self.workdir / "policy-without-load-watch.json"
        no_watch.write_text(policy.model_copy(update={"load_watch": []}).model_dump_json())
        return {
            "no_activity_tracing": ("--no-activity-tracing",),
            "file_tracing_no_interest_set": ("--runtime-policy", str(no_watch)),
            "interest_set": (),
        }

    def overhead(self) -> None:
        n, rounds = self.args.starts, self.args.rounds
        conditions = {k: v for k, v in self.condition_args().items() if k in self.args.conditions.split(",")}
        wall: dict[str, list[float]] = {c: [] for c in conditions}
        cpu: dict[str, list[float]] = {c: [] for c in conditions}
        sensor_cpu: dict[str, list[float]] = {c: [] for c in conditions}
        seen: dict[str, list[int]] = {c: [] for c in conditions}
        lost: dict[str, list[int]] = {c: [] for c in conditions}
        loads: list[int] = []
        for r in range(rounds):
            names = list(conditions)
            names = names[r % len(names) :] + names[: r % len(names)]  # rotate the order each round
            for name in names:
                sensor = self.start_sensor(1.0, *conditions[name])
                before = self.package_loads()
                c0 = cpu_ns(sensor.proc.pid)
                out = self.ctd.ctr(
                    "task",
                    "exec",
                    "--exec-id",
                    f"sb-{uuid.uuid4().hex[:12]}",
                    self.cid,
                    "/bin/spawnbench",
                    str(n),
                    "0",
                    "/usr/bin/python3",
                    "-c",
                    WORKLOAD_PY,
                    check=False,
                    timeout=3600,  # a loaded machine: python3 starts of a second and more
                )
                if out.returncode != 0:
                    raise RuntimeError(
                        f"spawnbench of python3 under {name}: exit {out.returncode}, {out.stdout} {out.stderr}; "
                        f"sensor: {sensor.log()[-1500:]}"
                    )
                doc = json.loads(out.stdout)
                time.sleep(self.args.settle)  # the last batch shipped: the sensor's cost of it in this window
                used = cpu_delta_ns(c0, cpu_ns(sensor.proc.pid)) / 1000
                counters = self.stop_sensor(sensor)
                if name == "interest_set":
                    loads.append(self.package_loads() - before)
                wall[name].append(doc["elapsed_ns"] / n / 1000)
                pythons = doc["children_user_us"] + doc["children_sys_us"] + doc["self_user_us"] + doc["self_sys_us"]
                cpu[name].append((pythons + used) / n)
                sensor_cpu[name].append(used / n)
                seen[name].append(counters["events_seen"])
                lost[name].append(counters["events_lost"])

        def ratios(off: str, on: str) -> dict:
            w = [b / a - 1 for a, b in zip(wall[off], wall[on], strict=True)]
            c = [b / a - 1 for a, b in zip(cpu[off], cpu[on], strict=True)]
            return {
                "wall_overhead_pct_per_round": [round(100 * x, 2) for x in w],
                "wall_overhead_pct_median": round(100 * statistics.median(w), 2),
                "cpu_overhead_pct_per_round": [round(100 * x, 2) for x in c],
                "cpu_overhead_pct_median": round(100 * statistics.median(c), 2),
            }

        pairs = list(itertools.combinations(conditions, 2))
        emit(
            {
                "bench": "package_load",
                "metric": "overhead",
                "workload": self.workload()
                + f"; {n} sequential starts of python3 -c '{WORKLOAD_PY}' in it (posix_spawn+waitpid), "
                f"{rounds} rounds of sensors (--batch-interval 1) {', '.join(conditions)} in rotated order, "
                "each started afresh",
                "us_per_start": {c: [round(x) for x in v] for c, v in wall.items()},
                "cpu_us_per_start": {c: [round(x) for x in v] for c, v in cpu.items()},
                "sensor_cpu_us_per_start": {c: [round(x, 1) for x in v] for c, v in sensor_cpu.items()},
                **{f"{on}_vs_{off}": ratios(off, on) for off, on in pairs},
                "aim_wall_overhead_pct": 3,
                "package_loads_counted_by_service_per_round": loads,
                "events_seen": seen,
                "events_lost": lost,
                "events_lost_total": sum(sum(v) for v in lost.values()),
            }
        )

    def first_import_latency(self) -> None:
        events = self.args.events
        sensor = self.start_sensor(self.args.batch_interval)
        watcher = FindingsWatcher(self.svc.url, self.svc.token("viewer", "bench-loads"))
        time.sleep(0.5)
        total, to_open, to_stored, to_stream = [], [], [], []
        try:
            for i in range(events):
                name = vpkg(i)
                started = time.time()
                done = self.in_container("/usr/bin/python3", "-c", f"import {name}")
                if done.returncode != 0:
                    raise RuntimeError(f"import {name} in the container: {done.stderr}")
                received, finding = watcher.wait(name)
                opened = datetime.fromisoformat(finding["evidence"]["process"]["samples"][0]["time"]).timestamp()
                stored = datetime.fromisoformat(finding["first_seen_at"]).timestamp()
                total.append(1000 * (received - started))
                to_open.append(1000 * (opened - started))
                to_stored.append(1000 * (stored - opened))
                to_stream.append(1000 * (received - stored))
        finally:
            counters = self.stop_sensor(sensor)
        emit(
            {
                "bench": "package_load",
                "metric": "first_import_latency",
                "workload": self.workload()
                + f"; {events} sequential `ctr task exec` of python3 -c 'import vpkgNNN', each package imported "
                f"for the first time; sensor --batch-interval {self.args.batch_interval}; latency from starting "
                "ctr task exec to the running_vulnerability on GET /api/v1/findings/stream",
                "events": events,
                **ms_summary(total, ""),
                **ms_summary(to_open, "exec_to_open_"),
                **ms_summary(to_stored, "open_to_stored_"),
                **ms_summary(to_stream, "stored_to_stream_"),
                "aim_p99_ms": 1000,
                "events_lost": counters["events_lost"],
            }
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--starts", type=int, default=1000, help="python3 starts per condition and round")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--settle", type=float, default=2.0, help="seconds for the sensor's last batch after a loop")
    ap.add_argument("--events", type=int, default=200, help="first imports (at most 255: the watched vpkgs)")
    ap.add_argument("--batch-interval", type=float, default=0.1, help="the sensor's --batch-interval for latency")
    ap.add_argument(
        "--conditions",
        default="no_activity_tracing,file_tracing_no_interest_set,interest_set",
        help="overhead's sensors, compared pairwise in this order",
    )
    ap.add_argument("--only", default="interest_set,overhead,first_import_latency")
    args = ap.parse_args()
    if not 0 < args.events <= 255:
        ap.error(f"--events {args.events}: between 1 and 255 (the container's load watch keeps 256 paths)")
    only = set(args.only.split(","))
    why = h.e2e_unavailable() or python_unavailable()
    if why:
        print(json.dumps({"bench": "package_load", "skipped": why}))
        return
    with tempfile.TemporaryDirectory(prefix="vigil-pkgload-") as d:
        bench = Bench(args, Path(d))
        try:
            for metric in ("interest_set", "overhead", "first_import_latency"):
                if metric in only:
                    getattr(bench, metric)()
        finally:
            bench.close()


if __name__ == "__main__":
    main()
