"""What the eBPF sensor costs a node, and whether it keeps up.

Everything is real: a loopback docker-registry holding an image built here (busybox-static plus a
static `spawnbench` helper compiled here), a private containerd that pulls it with --plain-http and
runs it under a kubelet-style cgroup, the service (LiveService, SQLite), and `vigil sensor` as its
own process shipping to it. Figures (JSON lines on stdout, one per measurement):

* exec_overhead: N sequential posix_spawn+waitpid of /bin/true, timed by the spawner itself, inside
  the container (busybox-static `true`) and on the host (coreutils `true`), with no sensor vs a
  sensor attached and shipping (host tracing off, as deployed; and with --include-host). Conditions
  alternate in rotated order each round; the overhead is the median of the per-round paired ratios.
  Two measures: wall time per spawn (swings with other load on a shared machine), and CPU time,
  which does not: the spawner's user+sys (self + children, from getrusage inside spawnbench; the
  kernel's BPF work on an exec is sys time of the exec'ing task) per spawn plus the sensor's CPU
  (/proc/<pid> schedstat or utime+stime delta over the loop and a settle wait for its last
  shipment) per exec; cpu overhead = total_on / total_off - 1.
* sensor_cpu: the sensor's CPU (utime+stime from /proc/<pid>/stat) idle and at a paced exec rate
  (default 500/s) in the container, as % of one core.
* flood: several spawners at their maximum rate in the container; execs/s achieved, events drained
  per second by the sensor (from its 1 s heartbeats), events lost in the kernel, and whether the
  service's count for /bin/true equals the number of spawns exactly.
* file_workload: extracting a 20,000-file tree (busybox tar) inside the container and reading
  every file back (find -exec cat), with no sensor vs a sensor attached (file and kernel activity
  on, as deployed), paired and alternated per round: wall time and the container cgroup's CPU
  (cpu.stat usage_usec) plus the sensor's CPU.
* open_flood: several openers at their maximum rate inside the container, on a path no table
  watches (filtered in the kernel) and on a read-watched one (/etc/shadow: each open queued):
  opens/s, events queued, filtered and lost in the kernel.
* enforcement: the exec cost of runtime prevention. One sensor (shipping, --runtime-policy FILE)
  whose policy file alternates between listing the container with every rule in enforce mode
  (drift, memfd_exec, deleted_exec, tmp_exec, deny_listed with one digest, escape) and not listing
  it; each round runs N spawns of the image's own /bin/true (allowed: every exec pays the rule
  checks, including the path walk of tmp_exec, and none is killed) in each state, in alternating
  order; the overhead is the median of the per-round ratios on/off, wall and spawner CPU.
* sensor_rss: peak RSS (VmHWM) of each sensor process.

Since in-kernel exec aggregation, exec_overhead measures the shipping sensor with repeat execs
counted in the kernel: the container's 5,000 spawns of /bin/true cost one decode and one hash.

Run as root on a kernel with BTF: `.venv/bin/python bench/sensor_overhead.py [--rounds 4]`.
Needs Debian containerd, runc, docker-registry, busybox-static, gcc and libc6-dev.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from vigil.devtools.registry_server import RegistryServer
from vigil.devtools.service import LiveService

# The sensor's test harness is not a package: it is importable only once its folder is on the path.
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "sensor"))

from containerd_harness import start_containerd  # noqa: E402
from sensor_e2e import (  # noqa: E402
    SensorProcess,
    inventory_snapshot,
    new_container_ids,
    node_sensor,
    post_inventory,
    processes,
    pull,
    push_image,
    remove_container,
    run_container,
    wait_for,
    web_pod,
)

NODE = "bench-node"
SPAWNBENCH_C = r"""
#define _GNU_SOURCE
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
extern char **environ;
static long long tv_us(struct timeval t) { return t.tv_sec * 1000000LL + t.tv_usec; }
static long long now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000LL + t.tv_nsec;
}
/* spawnbench COUNT RATE PATH [ARG...]: COUNT sequential posix_spawn+waitpid of PATH,
 * paced at RATE per second (0: as fast as possible); prints one JSON line with the wall time and
 * the CPU time (user, sys) of this process and of its reaped children, read inside the process
 * because in a container it is not ours to wait for. The kernel-side cost of each exec, BPF
 * programs included, is charged as sys time to the exec'ing child. */
int main(int argc, char **argv) {
    if (argc < 4) { fprintf(stderr, "usage: spawnbench COUNT RATE PATH [ARG...]\n"); return 2; }
    long n = atol(argv[1]);
    double rate = atof(argv[2]);
    long long t0 = now_ns(), failures = 0;
    for (long i = 0; i < n; i++) {
        if (rate > 0) {
            long long due = t0 + (long long)(i * 1e9 / rate), now;
            while ((now = now_ns()) < due) {
                struct timespec s = {(due - now) / 1000000000LL, (due - now) % 1000000000LL};
                nanosleep(&s, 0);
            }
        }
        pid_t pid;
        int st;
        if (posix_spawn(&pid, argv[3], 0, 0, &argv[3], environ) != 0) { failures++; continue; }
        if (waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) failures++;
    }
    long long elapsed = now_ns() - t0;
    struct rusage self, kids;
    getrusage(RUSAGE_SELF, &self);
    getrusage(RUSAGE_CHILDREN, &kids);
    printf("{\"spawns\":%ld,\"failures\":%lld,\"elapsed_ns\":%lld,"
           "\"self_user_us\":%lld,\"self_sys_us\":%lld,\"children_user_us\":%lld,\"children_sys_us\":%lld}\n",
           n, failures, elapsed, tv_us(self.ru_utime), tv_us(self.ru_stime),
           tv_us(kids.ru_utime), tv_us(kids.ru_stime));
    return failures ? 1 : 0;
}
"""


# openflood COUNT PATH: COUNT open(O_RDONLY)+close of PATH; prints opens and elapsed ns.
OPENFLOOD_C = r"""
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: openflood COUNT PATH\n"); return 2; }
    long n = atol(argv[1]), failures = 0;
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (long i = 0; i < n; i++) {
        int fd = open(argv[2], O_RDONLY);
        if (fd < 0) failures++; else close(fd);
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    printf("{\"opens\":%ld,\"failures\":%ld,\"elapsed_ns\":%lld}\n", n, failures,
           (b.tv_sec - a.tv_sec) * 1000000000LL + (b.tv_nsec - a.tv_nsec));
    return failures ? 1 : 0;
}
"""
TREE_FILES = 20_000


def tree_tar(files: int = TREE_FILES) -> bytes:
    """A tar of `files` small files in 200 directories (what an image layer or a checkout looks like)."""
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for d in range(200):
            ti = tarfile.TarInfo(f"tree/d{d:03}")
            ti.type, ti.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(ti)
        for i in range(files):
            data = f"file {i}\n".encode() * 8
            ti = tarfile.TarInfo(f"tree/d{i % 200:03}/f{i:05}.txt")
            ti.size, ti.mode = len(data), 0o644
            tar.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def emit(doc: dict) -> None:
    print(json.dumps(doc), flush=True)


def build_static(workdir: Path, name: str, source: str) -> Path:
    src = workdir / f"{name}.c"
    src.write_text(source)
    out = workdir / name
    subprocess.run(["gcc", "-static", "-O2", "-o", str(out), str(src)], check=True)
    return out


def build_spawnbench(workdir: Path) -> Path:
    return build_static(workdir, "spawnbench", SPAWNBENCH_C)


def cpu_ticks(pid: int) -> int:
    """utime + stime of a process, in clock ticks."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[11]) + int(fields[12])


def cpu_ns(pid: int) -> tuple[int, int, frozenset[str]]:
    """A process's CPU time two ways: (sum of its live threads' on-CPU ns from schedstat, utime +
    stime in ns at clock-tick resolution, the set of thread ids). schedstat is ns-precise but
    forgets threads that exited; utime+stime counts them but in 10 ms steps."""
    tids = frozenset(os.listdir(f"/proc/{pid}/task"))
    run_ns = 0
    for tid in tids:
        try:
            run_ns += int(Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()[0])
        except FileNotFoundError:  # the thread exited between listing and reading
            pass
    return run_ns, cpu_ticks(pid) * 1_000_000_000 // os.sysconf("SC_CLK_TCK"), tids


def cpu_delta_ns(a: tuple[int, int, frozenset[str]], b: tuple[int, int, frozenset[str]]) -> int:
    """CPU used between two cpu_ns samples: the precise schedstat sum while the same threads lived
    throughout, else the tick-resolution utime+stime (which keeps exited threads' time)."""
    return b[0] - a[0] if a[2] == b[2] else b[1] - a[1]


def kernel_counters(sensor: SensorProcess) -> dict:
    for line in reversed(sensor.log().splitlines()):
        if line.startswith("vigil sensor: kernel counters "):
            return json.loads(line.split("kernel counters ", 1)[1])
    raise RuntimeError(f"sensor printed no kernel counters: {sensor.log()[-2000:]}")


def vm_hwm_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmHWM for pid {pid}")


def final_counters(sensor: SensorProcess) -> dict:
    for line in reversed(sensor.log().splitlines()):
        if line.startswith("vigil sensor: final counters "):
            return json.loads(line.split("final counters ", 1)[1])
    raise RuntimeError(f"sensor printed no final counters: {sensor.log()[-2000:]}")


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path):
        self.args = args
        self.workdir = workdir
        self.spawnbench = build_spawnbench(workdir)
        self.registry = RegistryServer(workdir=workdir / "registry").start()
        self.openflood = build_static(workdir, "openflood", OPENFLOOD_C)
        self.image = push_image(
            self.registry,
            extra={
                "/bin/spawnbench": self.spawnbench.read_bytes(),
                "/bin/openflood": self.openflood.read_bytes(),
                "/tree.tar": tree_tar(),
                "/etc/shadow": b"root:*:1:0:99999:7:::\n",
                "/tmp/plain": b"not watched\n",
            },
        )
        self.ctd = start_containerd(workdir / "ctd")
        pull(self.ctd, self.image)
        self.svc = LiveService(workdir / "service").start()
        self.cluster_id, self.credential = self.svc.register("bench")
        self.pod, self.cid = new_container_ids()
        post_inventory(
            self.svc,
            self.credential,
            inventory_snapshot(self.cluster_id, NODE, pods=[web_pod(self.pod, NODE, self.cid, self.image)]),
        )
        run_container(self.ctd, self.image, self.pod, self.cid, "/bin/sleep", "100000")
        self.sensors = 0
        self.peak_rss_kib = 0

    def close(self) -> None:
        remove_container(self.ctd, self.cid, self.pod)
        self.ctd.stop()
        self.svc.stop()
        self.registry.close()

    # -- workloads -----------------------------------------------------------------------------
    def spawn(self, scope: str, count: int, rate: float = 0) -> dict:
        """Run spawnbench on the host or inside the container; its own figures."""
        if scope == "host":
            out = subprocess.run(
                [str(self.spawnbench), str(count), str(rate), "/bin/true"], capture_output=True, text=True, check=True
            ).stdout
        else:
            out = self.ctd.ctr(
                "task",
                "exec",
                "--exec-id",
                f"sb-{uuid.uuid4().hex[:12]}",
                self.cid,
                "/bin/spawnbench",
                str(count),
                str(rate),
                "/bin/true",
                timeout=600,
            ).stdout
        doc = json.loads(out)
        if doc["failures"]:
            raise RuntimeError(f"spawnbench in {scope}: {doc['failures']} failed spawns")
        return doc

    def in_container(self, *argv: str) -> str:
        return self.ctd.ctr(
            "task", "exec", "--exec-id", f"b-{uuid.uuid4().hex[:12]}", self.cid, *argv, timeout=600
        ).stdout

    def container_cpu_us(self) -> int:
        """The container cgroup's CPU time: cgroup v2 cpu.stat, or v1 cpuacct.usage on hybrid hosts."""
        rel = f"kubepods/besteffort/pod{self.pod}/{self.cid}"
        v2 = Path(f"/sys/fs/cgroup/{rel}/cpu.stat")
        if v2.exists():
            stat = v2.read_text()
            return next(int(line.split()[1]) for line in stat.splitlines() if line.startswith("usage_usec "))
        return int(Path(f"/sys/fs/cgroup/cpuacct/{rel}/cpuacct.usage").read_text()) // 1000

    def true_count(self) -> int:
        """The service's count of /bin/true executions in the container."""
        return sum(
            p["count"]
            for p in processes(self.svc, self.cluster_id, container_id=f"containerd://{self.cid}")
            if p["kind"] == "executable" and p["path"] == "/bin/true"
        )

    # -- the sensor ----------------------------------------------------------------------------
    def start_sensor(self, *extra: str, module: bool = False) -> SensorProcess:
        self.sensors += 1
        before = (node_sensor(self.svc, self.cluster_id, NODE) or {}).get("last_heartbeat_at")
        sensor = SensorProcess.start(
            self.svc.url,
            self.credential,
            self.cluster_id,
            NODE,
            self.workdir / f"sensor{self.sensors}",
            "--batch-interval",
            "1",
            "--heartbeat-interval",
            "1",
            *extra,
            module=module,
        )
        # Attached once it has sent its first heartbeat (sent right after the programs attach).
        wait_for(
            "the sensor's first heartbeat",
            lambda: (
                sensor.proc.poll() is None
                and node_sensor(self.svc, self.cluster_id, NODE)["last_heartbeat_at"] != before
                or sensor.proc.poll() is not None
            ),
            timeout=60,
        )
        if sensor.proc.poll() is not None:
            raise RuntimeError(f"sensor exited: {sensor.log()[-2000:]}")
        return sensor

    def stop_sensor(self, sensor: SensorProcess) -> dict:
        self.peak_rss_kib = max(self.peak_rss_kib, vm_hwm_kib(sensor.proc.pid))
        hwm = vm_hwm_kib(sensor.proc.pid)
        rc = sensor.stop()
        if rc != 0:
            raise RuntimeError(f"sensor exited with {rc}: {sensor.log()[-2000:]}")
        counters = final_counters(sensor)
        counters["vm_hwm_kib"] = hwm
        warnings = [x for x in sensor.log().splitlines() if " WARNING " in x or " ERROR " in x]
        if warnings:  # kept on stderr: the sensor's own account of what went wrong
            print(
                f"sensor {self.sensors}: {len(warnings)} warnings, last: " + "\n".join(warnings[-5:]), file=sys.stderr
            )
        return counters

    # -- measurements --------------------------------------------------------------------------
    def overhead(self) -> None:
        n, rounds = self.args.spawns, self.args.rounds
        conditions = {"off": None, "sensor": (), "sensor_include_host": ("--include-host",)}
        times: dict[tuple[str, str], list[float]] = {}
        # CPU per spawn: the spawner's own (self + reaped children, user + sys, as it reports it)
        # and the sensor's per exec over the same window. Unlike wall time, CPU time does not grow
        # when other work on the machine holds the cores.
        spawner_cpu: dict[tuple[str, str], list[float]] = {}
        sensor_cpu: dict[tuple[str, str], list[float]] = {}
        exact: list[dict] = []
        for r in range(rounds):
            names = list(conditions)
            names = names[r % len(names) :] + names[: r % len(names)]  # rotate the order each round
            for name in names:
                sensor = self.start_sensor(*conditions[name]) if conditions[name] is not None else None
                before = self.true_count()
                # The order of scopes alternates too.
                for scope in ("container", "host") if r % 2 == 0 else ("host", "container"):
                    c0 = cpu_ns(sensor.proc.pid) if sensor is not None else None
                    doc = self.spawn(scope, n)
                    if sensor is not None:
                        # The sensor ships once a second: wait for the batch holding the last
                        # execs so its cost lands in this window (idle cost of the wait included).
                        time.sleep(self.args.settle)
                        sensor_us = cpu_delta_ns(c0, cpu_ns(sensor.proc.pid)) / 1000
                    else:
                        sensor_us = 0.0
                    times.setdefault((scope, name), []).append(doc["elapsed_ns"] / n / 1000)
                    spawner_cpu.setdefault((scope, name), []).append(
                        (doc["self_user_us"] + doc["self_sys_us"] + doc["children_user_us"] + doc["children_sys_us"])
                        / n
                    )
                    sensor_cpu.setdefault((scope, name), []).append(sensor_us / n)
                if sensor is not None:
                    counters = self.stop_sensor(sensor)
                    exact.append(
                        {
                            "condition": name,
                            "round": r,
                            "container_spawns": n,
                            "service_count_delta": self.true_count() - before,
                            "events_lost": counters["events_lost"],
                        }
                    )
        for scope in ("container", "host"):
            base = times[(scope, "off")]
            for name in ("sensor", "sensor_include_host"):
                on = times[(scope, name)]
                ratios = [b / a - 1 for a, b in zip(base, on, strict=True)]
                sp_off, sp_on = spawner_cpu[(scope, "off")], spawner_cpu[(scope, name)]
                se_on = sensor_cpu[(scope, name)]
                tot_off, tot_on = sp_off, [a + b for a, b in zip(sp_on, se_on, strict=True)]
                cpu_ratios = [b / a - 1 for a, b in zip(tot_off, tot_on, strict=True)]
                emit(
                    {
                        "bench": "sensor_overhead",
                        "metric": "exec_overhead",
                        "scope": scope,
                        "condition": name,
                        "workload": f"{n} sequential posix_spawn+waitpid of /bin/true "
                        + (
                            "(busybox-static) inside a containerd container under kubepods/besteffort"
                            if scope == "container"
                            else "(coreutils, dynamic) on the host"
                        )
                        + f"; {rounds} rounds, conditions off/sensor/sensor_include_host in rotated order",
                        "us_per_spawn_off": [round(x, 1) for x in base],
                        "us_per_spawn_on": [round(x, 1) for x in on],
                        "overhead_pct_per_round": [round(100 * x, 2) for x in ratios],
                        "overhead_pct_median": round(100 * statistics.median(ratios), 2),
                        # Less sensitive to one round disturbed by other load on a shared machine:
                        "overhead_pct_of_medians": round(
                            100 * (statistics.median(on) / statistics.median(base) - 1), 2
                        ),
                        # CPU time, robust to other load: spawner user+sys (self + children) per spawn,
                        # plus the sensor's CPU (schedstat / utime+stime) per exec over the same window.
                        "cpu_us_per_spawn_spawner_off": [round(x, 1) for x in sp_off],
                        "cpu_us_per_spawn_spawner_on": [round(x, 1) for x in sp_on],
                        "cpu_us_per_exec_sensor_on": [round(x, 1) for x in se_on],
                        "cpu_us_per_spawn_total_off": [round(x, 1) for x in tot_off],
                        "cpu_us_per_spawn_total_on": [round(x, 1) for x in tot_on],
                        "cpu_overhead_pct_per_round": [round(100 * x, 2) for x in cpu_ratios],
                        "cpu_overhead_pct_median": round(100 * statistics.median(cpu_ratios), 2),
                        # The sensor's own share alone, a floor for the overhead that does not rest on
                        # the difference of two spawner figures (each moves ~10% with co-tenant load):
                        "sensor_cpu_pct_of_spawn_median": round(
                            100 * statistics.median([b / a for a, b in zip(sp_off, se_on, strict=True)]), 2
                        ),
                        "spawner_cpu_overhead_pct_median": round(
                            100 * statistics.median([b / a - 1 for a, b in zip(sp_off, sp_on, strict=True)]), 2
                        ),
                        "loadavg_now": os.getloadavg()[0],
                        "aim_pct": 2.0,
                    }
                )
        emit(
            {
                "bench": "sensor_overhead",
                "metric": "exactness_overhead_runs",
                "workload": "service's /bin/true count delta per sensor session vs spawns in the container",
                "sessions": exact,
                "all_exact": all(e["service_count_delta"] == e["container_spawns"] for e in exact),
            }
        )

    def file_workload(self) -> None:
        rounds = self.args.rounds
        script = (
            "/bin/busybox rm -rf /tmp/x && /bin/busybox mkdir /tmp/x && /bin/busybox tar -xf /tree.tar -C /tmp/x"
            " && /bin/busybox find /tmp/x -type f -exec /bin/busybox cat {} + > /dev/null"
        )
        wall: dict[str, list[float]] = {"off": [], "sensor": []}
        cpu: dict[str, list[float]] = {"off": [], "sensor": []}
        sensor_cpu: list[float] = []
        counters: list[dict] = []
        self.in_container("/bin/sh", "-c", script)  # warm the page cache
        for r in range(rounds):
            for name in ("off", "sensor") if r % 2 == 0 else ("sensor", "off"):
                sensor = self.start_sensor() if name == "sensor" else None
                s0 = cpu_ns(sensor.proc.pid) if sensor is not None else None
                c0, t0 = self.container_cpu_us(), time.monotonic()
                self.in_container("/bin/sh", "-c", script)
                wall[name].append(time.monotonic() - t0)
                container_us = self.container_cpu_us() - c0
                if sensor is not None:
                    time.sleep(self.args.settle)
                    sensor_us = cpu_delta_ns(s0, cpu_ns(sensor.proc.pid)) / 1000
                    sensor_cpu.append(sensor_us / 1e6)
                    cpu[name].append((container_us + sensor_us) / 1e6)
                    counters.append(self.stop_sensor(sensor))
                else:
                    cpu[name].append(container_us / 1e6)
        wall_ratios = [b / a - 1 for a, b in zip(wall["off"], wall["sensor"], strict=True)]
        cpu_ratios = [b / a - 1 for a, b in zip(cpu["off"], cpu["sensor"], strict=True)]
        emit(
            {
                "bench": "sensor_overhead",
                "metric": "file_workload",
                "workload": f"busybox tar -x of {TREE_FILES} files in 200 dirs + find -exec cat of all of them, "
                f"inside the container; {rounds} rounds, off/sensor alternated",
                "wall_s_off": [round(x, 3) for x in wall["off"]],
                "wall_s_on": [round(x, 3) for x in wall["sensor"]],
                "wall_overhead_pct_median": round(100 * statistics.median(wall_ratios), 2),
                "cpu_s_off": [round(x, 3) for x in cpu["off"]],
                "cpu_s_on_container_plus_sensor": [round(x, 3) for x in cpu["sensor"]],
                "sensor_cpu_s": [round(x, 3) for x in sensor_cpu],
                "cpu_overhead_pct_median": round(100 * statistics.median(cpu_ratios), 2),
                "events_lost": sum(c["events_lost"] for c in counters),
                "aim_pct": 5.0,
            }
        )

    def open_flood(self) -> None:
        k, n = self.args.flood_spawners, self.args.flood_opens
        for path in ("/tmp/plain", "/etc/shadow"):
            sensor = self.start_sensor()
            results: list[dict] = []

            def opener(path: str = path, results: list[dict] = results) -> None:
                results.append(json.loads(self.in_container("/bin/openflood", str(n), path)))

            threads = [threading.Thread(target=opener) for _ in range(k)]
            t0 = time.monotonic()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            elapsed = time.monotonic() - t0
            time.sleep(self.args.settle)
            self.stop_sensor(sensor)
            kernel = kernel_counters(sensor)
            emit(
                {
                    "bench": "sensor_overhead",
                    "metric": "open_flood",
                    "workload": f"{k} concurrent openers x {n} open+close of {path} at max rate inside the container",
                    "watched": path == "/etc/shadow",
                    "opens": k * n,
                    "opens_per_s": round(k * n / elapsed, 1),
                    "activity_events_queued": kernel.get("activity"),
                    "filtered_by_path_in_kernel": kernel.get("path_filtered"),
                    "events_lost": kernel.get("lost"),
                }
            )

    def enforcement(self) -> None:
        from datetime import UTC, datetime

        from vigil.wire.prevention import ContainerPrevention, NodeRuntimePolicy, PreventionRule

        n, rounds = self.args.spawns, self.args.rounds
        policy_file = self.workdir / "runtime-policy.json"

        def write(revision: str, listed: bool) -> None:
            rules = {rule: "enforce" for rule in PreventionRule}
            containers = [ContainerPrevention(container_id=f"containerd://{self.cid}", rules=rules)] if listed else []
            doc = NodeRuntimePolicy(
                revision=revision,
                node_name=NODE,
                generated_at=datetime.now(UTC),
                containers=containers,
                deny_sha256=["0" * 64],
            )
            tmp = policy_file.with_suffix(".tmp")
            tmp.write_text(doc.model_dump_json())
            tmp.replace(policy_file)

        write("off-0", False)
        sensor = self.start_sensor("--runtime-policy", str(policy_file))
        wall: dict[str, list[float]] = {"off": [], "on": []}
        cpu: dict[str, list[float]] = {"off": [], "on": []}
        try:
            for r in range(rounds):
                for state in ("off", "on") if r % 2 == 0 else ("on", "off"):
                    revision = f"{state}-{r}"
                    write(revision, state == "on")
                    wait_for(
                        f"the sensor to load {revision}",
                        lambda rev=revision: f"runtime policy {rev} in the kernel" in sensor.log(),
                        timeout=10,
                    )
                    doc = self.spawn("container", n)
                    wall[state].append(doc["elapsed_ns"] / n / 1000)
                    cpu[state].append(
                        (doc["self_user_us"] + doc["self_sys_us"] + doc["children_user_us"] + doc["children_sys_us"])
                        / n
                    )
        finally:
            counters = self.stop_sensor(sensor)
        kernel = kernel_counters(sensor)
        ratios = [b / a - 1 for a, b in zip(wall["off"], wall["on"], strict=True)]
        cpu_ratios = [b / a - 1 for a, b in zip(cpu["off"], cpu["on"], strict=True)]
        emit(
            {
                "bench": "sensor_overhead",
                "metric": "enforcement_exec_overhead",
                "workload": f"{n} sequential posix_spawn+waitpid of the image's /bin/true (busybox-static) inside a "
                "containerd container, one shipping sensor whose --runtime-policy file lists the container with all "
                f"six rules in enforce mode (on) or not at all (off); {rounds} rounds, order alternating",
                "us_per_spawn_off": [round(x, 1) for x in wall["off"]],
                "us_per_spawn_on": [round(x, 1) for x in wall["on"]],
                "overhead_pct_per_round": [round(100 * x, 2) for x in ratios],
                "overhead_pct_median": round(100 * statistics.median(ratios), 2),
                "cpu_us_per_spawn_off": [round(x, 1) for x in cpu["off"]],
                "cpu_us_per_spawn_on": [round(x, 1) for x in cpu["on"]],
                "cpu_overhead_pct_per_round": [round(100 * x, 2) for x in cpu_ratios],
                "cpu_overhead_pct_median": round(100 * statistics.median(cpu_ratios), 2),
                # Spread of the baseline itself: how large a difference the noise alone makes here.
                "baseline_spread_pct": round(100 * (max(wall["off"]) / min(wall["off"]) - 1), 2),
                # Every spawn ran an image file: nothing may have been killed or audited.
                "kernel_prevented": kernel["prevented"],
                "kernel_audited": kernel["audited"],
                "events_lost": counters["events_lost"],
            }
        )

    def cpu(self, module: bool = False) -> None:
        rate, seconds = self.args.cpu_rate, self.args.cpu_seconds
        sensor = self.start_sensor(module=module)
        pid, hz = sensor.proc.pid, os.sysconf("SC_CLK_TCK")
        before = self.true_count()
        t0, c0 = time.monotonic(), cpu_ticks(pid)
        time.sleep(seconds / 2)
        idle = (cpu_ticks(pid) - c0) / hz / (time.monotonic() - t0)
        t0, c0 = time.monotonic(), cpu_ticks(pid)
        count = int(rate * seconds)
        got = self.spawn("container", count, rate)
        busy = (cpu_ticks(pid) - c0) / hz / (time.monotonic() - t0)
        counters = self.stop_sensor(sensor)
        emit(
            {
                "bench": "sensor_overhead",
                "metric": "sensor_cpu",
                "sensor_command": "python -m vigil.sensor" if module else "vigil sensor",
                "workload": f"{count} posix_spawns of /bin/true paced at {rate}/s inside the container; "
                "sensor shipping every 1 s",
                "achieved_execs_per_s": round(count / (got["elapsed_ns"] / 1e9), 1),
                "sensor_cpu_pct_of_core_idle": round(100 * idle, 2),
                "sensor_cpu_pct_of_core": round(100 * busy, 2),
                "aim_pct": 5.0,
                "events_lost": counters["events_lost"],
                "service_count_delta": self.true_count() - before,
                "spawns": count,
                "vm_hwm_kib": counters["vm_hwm_kib"],
            }
        )

    def flood(self) -> None:
        k, n = self.args.flood_spawners, self.args.flood_spawns
        sensor = self.start_sensor()
        pid, hz = sensor.proc.pid, os.sysconf("SC_CLK_TCK")
        before = self.true_count()
        samples: list[tuple[float, int]] = []
        done = threading.Event()

        def watch() -> None:  # the sensor's events_seen, from the heartbeats the service stores
            while not done.is_set():
                s = node_sensor(self.svc, self.cluster_id, NODE)
                if s and s["events_seen"] is not None and (not samples or samples[-1][1] != s["events_seen"]):
                    samples.append((time.monotonic(), s["events_seen"]))
                done.wait(0.25)

        watcher = threading.Thread(target=watch)
        watcher.start()
        results: list[dict] = []
        threads = [threading.Thread(target=lambda: results.append(self.spawn("container", n))) for _ in range(k)]
        t0, c0 = time.monotonic(), cpu_ticks(pid)
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.monotonic() - t0
        cpu = (cpu_ticks(pid) - c0) / hz / wall
        time.sleep(3)  # let the last heartbeats land
        done.set()
        watcher.join()
        counters = self.stop_sensor(sensor)
        total = k * n
        delta = self.true_count() - before
        rates = [(b[1] - a[1]) / (b[0] - a[0]) for a, b in zip(samples, samples[1:], strict=False) if b[0] > a[0]]
        emit(
            {
                "bench": "sensor_overhead",
                "metric": "flood",
                "workload": f"{k} concurrent spawners x {n} posix_spawns of /bin/true at max rate inside the container",
                "execs": total,
                "wall_s": round(wall, 2),
                "execs_per_s": round(total / wall, 1),
                "events_seen": counters["events_seen"],
                "events_drained_per_s_peak": round(max(rates), 1) if rates else None,
                "events_drained_per_s_mean": round(counters["events_seen"] / wall, 1),
                "events_lost": counters["events_lost"],
                "service_count_delta": delta,
                "no_lost_execs": delta == total and counters["events_lost"] == 0,
                "sensor_cpu_pct_of_core": round(100 * cpu, 1),
                "vm_hwm_kib": counters["vm_hwm_kib"],
            }
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--spawns", type=int, default=5000)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument(
        "--settle",
        type=float,
        default=1.5,
        help="seconds to wait after each spawn loop before reading the sensor's CPU (it ships every 1 s)",
    )
    ap.add_argument("--cpu-rate", type=float, default=500)
    ap.add_argument("--cpu-seconds", type=float, default=10)
    ap.add_argument("--flood-spawners", type=int, default=4)
    ap.add_argument("--flood-spawns", type=int, default=5000)
    ap.add_argument("--flood-opens", type=int, default=200_000)
    ap.add_argument(
        "--only",
        default="overhead,cpu,flood,files,openflood,enforcement",
        help="comma-separated: overhead, cpu, flood, files, openflood, enforcement",
    )
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("sensor_overhead: run as root (BPF, containerd)")
    parts = set(args.only.split(","))
    with tempfile.TemporaryDirectory(prefix="vigil-sensor-bench-") as d:
        bench = Bench(args, Path(d))
        try:
            emit(
                {
                    "bench": "sensor_overhead",
                    "metric": "machine",
                    "cpus": os.cpu_count(),
                    "kernel": os.uname().release,
                    "loadavg_at_start": os.getloadavg(),
                }
            )
            if "overhead" in parts:
                bench.overhead()
            if "cpu" in parts:
                bench.cpu()
                bench.cpu(module=True)
            if "flood" in parts:
                bench.flood()
            if "files" in parts:
                bench.file_workload()
            if "openflood" in parts:
                bench.open_flood()
            if "enforcement" in parts:
                bench.enforcement()
            emit(
                {
                    "bench": "sensor_overhead",
                    "metric": "sensor_rss",
                    "peak_vm_hwm_kib": bench.peak_rss_kib,
                    "sensor_processes": bench.sensors,
                }
            )
        finally:
            bench.close()


if __name__ == "__main__":
    main()
