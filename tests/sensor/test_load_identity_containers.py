"""Package loads matched by file identity in the kernel, in real containers (containerd + runc) traced by the real
sensor: the load watch's paths resolved to (device, inode) per container cgroup, so a watched file opened through
a hard link or another bind mount is still one package_load, named by its watched path; repeats by the same
executable counted in the kernel and shipped as one activity with an exact count."""

from __future__ import annotations

import os
import sys
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bpf_support import bpf_unavailable
from containerd_harness import IMAGE_NAME, missing_tools, start_containerd, write_busybox_image
from ingest_server import IngestServer
from sensor_e2e import wait_for
from test_containers import _cleanup_pod_cgroups

from vigil.sensor.agent import AgentSettings, SensorAgent
from vigil.sensor.attribution import Attribution
from vigil.sensor.cgroups import CgroupResolver
from vigil.sensor.hashing import FileHasher
from vigil.sensor.load_identities import LoadIdentities, load_key
from vigil.sensor.load_watch import LoadWatch
from vigil.sensor.loader import ProcessTracer
from vigil.sensor.pipeline import EventPipeline, Resolved
from vigil.sensor.shipper import Shipper
from vigil.sensor.spool import Spool
from vigil.wire.prevention import ContainerLoadWatch, NodeRuntimePolicy

_skip = bpf_unavailable() or (f"missing {', '.join(missing_tools())}" if missing_tools() else None)
pytestmark = pytest.mark.skipif(_skip is not None, reason=str(_skip))
TOKEN = "cluster-cred-1"
DP = "/usr/lib/python3/dist-packages"
OTHER = "containerd://" + "e" * 64  # a container of the node that watches PyYAML; never running here


@pytest.fixture(scope="module")
def containerd(tmp_path_factory):
    base = tmp_path_factory.mktemp("ctd-ident")
    c = start_containerd(base / "c")
    c.ctr("images", "import", str(write_busybox_image(base)))
    yield c
    c.stop()


@pytest.fixture
def packages(tmp_path: Path) -> Path:
    """Host files bind-mounted into the container: the packages, and an alias directory holding a hard link to
    jinja2/util.py and a file of no package."""
    pkgs = tmp_path / "pkgs"
    for rel, text in (("jinja2/__init__.py", "from .util import *\n"), ("jinja2/util.py", "V = 1\n")):
        (pkgs / rel).parent.mkdir(parents=True, exist_ok=True)
        (pkgs / rel).write_text(text)
    (pkgs / "yaml").mkdir()
    (pkgs / "yaml" / "__init__.py").write_text("Y = 1\n")
    alias = tmp_path / "alias"
    alias.mkdir()
    os.link(pkgs / "jinja2" / "util.py", alias / "j.py")
    (alias / "plain.txt").write_text("not a package\n")
    return tmp_path


def policy(cid: str | None, paths: list[str]) -> NodeRuntimePolicy:
    """The node's policy: this container's load watch (none when cid is None) and another container's."""
    mine = [ContainerLoadWatch(container_id=f"containerd://{cid}", paths=paths)] if cid else []
    return NodeRuntimePolicy(
        revision=f"ident-{cid is not None}-{len(paths)}",
        node_name="node-a",
        generated_at=datetime(2026, 1, 1, tzinfo=UTC),
        load_watch=[*mine, ContainerLoadWatch(container_id=OTHER, paths=[f"{DP}/yaml/"])],
    )


class CountingPipeline(EventPipeline):
    """The sensor's pipeline, counting the package loads that reached user space as events."""

    loads = 0

    def resolve(self, records: list[bytes]) -> Resolved:
        out = super().resolve(records)
        self.loads += sum(a.event.kind == "package_load" for a in out.activities)
        return out


@dataclass
class Sensor:
    tracer: ProcessTracer
    identities: LoadIdentities
    load_watch: LoadWatch
    pipeline: CountingPipeline
    agent: SensorAgent
    server: IngestServer

    def activities(self, ref: str) -> list[dict]:
        return [a for b in self.server.batches for a in b.get("activities", []) if a["container_id"] == ref]


@contextmanager
def sensor(tmp_path: Path, batch_interval: float, proc: Path = Path("/proc")) -> Iterator[Sensor]:
    server = IngestServer(token=TOKEN)
    spool = Spool(tmp_path / "spool")
    shipper = Shipper(server.url, TOKEN, spool)
    try:
        with ProcessTracer(include_host=False) as tracer:
            resolver = CgroupResolver()
            identities = LoadIdentities(tracer, resolver.root, proc=proc)
            load_watch = LoadWatch(tracer, identities=identities)

            def seen(cgroup_id: int, who: Attribution) -> None:
                load_watch.note_container(cgroup_id, who)

            pipeline = CountingPipeline(
                resolver, FileHasher(), skip_cgroup=tracer.skip_cgroup, load_watch=load_watch, on_container=seen
            )
            agent = SensorAgent(
                AgentSettings(cluster_id="c1", node_name="node-a", batch_interval_s=batch_interval, poll_timeout_ms=20),
                tracer,
                pipeline,
                spool=spool,
                shipper=shipper,
            )
            stop = threading.Event()
            runner = threading.Thread(target=agent.run, args=(stop,))
            runner.start()
            try:
                yield Sensor(tracer, identities, load_watch, pipeline, agent, server)
            finally:
                stop.set()
                runner.join(30)
                identities.close()
    finally:
        server.stop()
        shipper.close()


@contextmanager
def container(containerd, packages: Path, setup: str = "", cid: str | None = None) -> Iterator[tuple[str, str]]:
    """A running busybox container with the packages at DP and again at /mnt/again, the alias directory at
    /opt/alias; yields (container id, pod uid)."""
    pod, cid = str(uuid.uuid4()), cid or uuid.uuid4().hex + uuid.uuid4().hex
    mounts = [
        f"type=bind,src={packages / 'pkgs'},dst={DP},options=rbind:ro",
        f"type=bind,src={packages / 'pkgs'},dst=/mnt/again,options=rbind:ro",
        f"type=bind,src={packages / 'alias'},dst=/opt/alias,options=rbind:ro",
    ]
    args = [a for m in mounts for a in ("--mount", m)]
    containerd.ctr(
        "run", "-d", *args, "--cgroup", f"kubepods/besteffort/pod{pod}/{cid}", IMAGE_NAME, cid, "/bin/sleep", "120"
    )
    try:
        if setup:
            containerd.ctr("task", "exec", "--exec-id", "setup", cid, "/bin/sh", "-c", setup)
        yield cid, pod
    finally:
        containerd.ctr("task", "kill", "-s", "9", cid, check=False)
        wait_for("the task to stop", lambda: "RUNNING" not in containerd.ctr("task", "ls", check=False).stdout)
        containerd.ctr("containers", "rm", cid, check=False)
        _cleanup_pod_cgroups(pod)


def cgroup_of(pod: str, cid: str) -> int:
    """The container's cgroup id: its directory's inode in the unified hierarchy."""
    root = CgroupResolver().root
    assert root is not None
    return os.stat(root / "kubepods" / "besteffort" / f"pod{pod}" / cid).st_ino


SETUP = "/bin/busybox mkdir -p /app && echo 'M = 1' > /app/mod.py && /bin/busybox ln /app/mod.py /tmp/mod-link.py"


def test_a_watched_file_opened_by_a_hard_link_or_another_mount_is_one_package_load_by_its_watched_path(
    containerd, packages: Path, tmp_path: Path
) -> None:
    with container(containerd, packages, SETUP) as (cid, pod), sensor(tmp_path, batch_interval=60) as s:
        ref, cg = f"containerd://{cid}", cgroup_of(pod, cid)
        s.load_watch.apply(policy(cid, [f"{DP}/jinja2/", "/app/mod.py"]))
        assert s.identities.settle()
        util = os.stat(packages / "pkgs" / "jinja2" / "util.py")
        init = os.stat(packages / "pkgs" / "jinja2" / "__init__.py")
        # The container's three package files, by identity in its cgroup (the overlay file through the container's
        # own root); the other container's PyYAML is no file of this cgroup.
        entries = s.identities.entries()
        assert sorted(entries[cg].values()) == ["/app/mod.py", f"{DP}/jinja2/__init__.py", f"{DP}/jinja2/util.py"]
        assert s.tracer.is_load_file(load_key(cg, (util.st_dev, util.st_ino)))
        assert s.tracer.is_load_file(load_key(cg, (init.st_dev, init.st_ino)))
        assert list(entries) == [cg]
        for i, path in enumerate(
            ["/opt/alias/j.py", "/mnt/again/jinja2/__init__.py", "/tmp/mod-link.py", f"{DP}/yaml/__init__.py"]
            + ["/opt/alias/plain.txt", "/mnt/again/yaml/__init__.py"]
        ):
            containerd.ctr("task", "exec", "--exec-id", f"r{i}", cid, "/bin/cat", path)
        wait_for("the sensor to drain", lambda: s.agent.step(0) == 0)
        s.agent.flush_batch()
        s.agent.shipper.ship(force=True)  # type: ignore[union-attr]
        loads = s.pipeline.loads
    mine = {(a["kind"], a["target"]): a for a in s.activities(ref)}
    assert sorted(mine) == [
        ("package_load", "/app/mod.py"),
        ("package_load", f"{DP}/jinja2/__init__.py"),
        ("package_load", f"{DP}/jinja2/util.py"),
    ]
    assert {k[1]: (a["count"], a["detail"]) for k, a in mine.items()} == {
        "/app/mod.py": (1, {"opened_as": "/tmp/mod-link.py"}),
        f"{DP}/jinja2/__init__.py": (1, {"opened_as": "/mnt/again/jinja2/__init__.py"}),
        f"{DP}/jinja2/util.py": (1, {"opened_as": "/opt/alias/j.py"}),
    }
    sample = mine[("package_load", f"{DP}/jinja2/util.py")]["samples"][0]
    assert (sample["comm"], sample["argv"]) == ("cat", ["/bin/cat", "/opt/alias/j.py"])
    assert loads == 3


def test_repeated_opens_by_one_executable_are_counted_in_the_kernel_and_shipped_exactly(
    containerd, packages: Path, tmp_path: Path
) -> None:
    loop = f"i=0; while [ $i -lt 199 ]; do /bin/cat {DP}/jinja2/__init__.py > /dev/null; i=$((i+1)); done"
    with container(containerd, packages) as (cid, pod), sensor(tmp_path, batch_interval=2) as s:
        ref = f"containerd://{cid}"
        s.load_watch.apply(policy(cid, [f"{DP}/jinja2/"]))
        assert s.identities.settle()
        before = s.tracer.counters()["load_aggregated"]
        # The first open reaches user space, which then enters the file in the kernel's known map; opens racing
        # ahead of that would reach user space too, so the loop starts once it is known.
        containerd.ctr("task", "exec", "--exec-id", "first", cid, "/bin/cat", f"{DP}/jinja2/__init__.py")
        wait_for("the first open to be known", lambda: s.agent.step(0) == 0 and s.pipeline.loads == 1)
        first_epoch = s.tracer.epoch
        containerd.ctr("task", "exec", "--exec-id", "loop", cid, "/bin/sh", "-c", loop)
        wait_for("the sensor to drain", lambda: s.agent.step(0) == 0)
        wait_for("the counts to be shipped", lambda: sum(a["count"] for a in s.activities(ref)) >= 200, timeout=10)
        counted = s.tracer.counters()["load_aggregated"] - before
        loads, windows = s.pipeline.loads, s.tracer.epoch - first_epoch + 1
    records = s.activities(ref)
    assert {(a["kind"], a["target"]) for a in records} == {("package_load", f"{DP}/jinja2/__init__.py")}
    assert sum(a["count"] for a in records) == 200
    # Every open is either an event that reached user space or a repeat counted in the kernel, never both.
    assert loads + counted == 200
    print(f"200 opens over {windows} windows: {loads} events reached user space, {counted} counted in the kernel")
    # Once known, one open per batch window reaches user space (it carries the window's sample); the loop's length
    # in windows depends on the machine's load, the bound per window does not.
    assert loads <= 1 + windows, (loads, counted, windows)
    assert counted >= 150, (loads, counted, windows)
    assert all(a["first_seen"] <= a["last_seen"] for a in records)


def test_before_identities_are_known_the_path_matches_and_teaches_the_kernel_the_files_identity(
    containerd, packages: Path, tmp_path: Path
) -> None:
    # A /proc without processes: the container's files cannot be read through any of them.
    nowhere = tmp_path / "no-proc"
    nowhere.mkdir()
    with container(containerd, packages) as (cid, pod), sensor(tmp_path, batch_interval=60, proc=nowhere) as s:
        ref, cg = f"containerd://{cid}", cgroup_of(pod, cid)
        s.load_watch.apply(policy(cid, [f"{DP}/jinja2/"]))
        assert s.identities.settle()
        assert s.identities.entries().get(cg, {}) == {}
        # Only by path: the open by another mount is not seen, the open by the watched path is.
        containerd.ctr("task", "exec", "--exec-id", "r0", cid, "/bin/cat", "/mnt/again/jinja2/__init__.py")
        containerd.ctr("task", "exec", "--exec-id", "r1", cid, "/bin/cat", f"{DP}/jinja2/__init__.py")
        init = os.stat(packages / "pkgs" / "jinja2" / "__init__.py")
        key = load_key(cg, (init.st_dev, init.st_ino))
        wait_for("the kernel to hold the identity the path match reported", lambda: s.tracer.is_load_file(key))
        assert s.identities.entries()[cg] == {(init.st_dev, init.st_ino): f"{DP}/jinja2/__init__.py"}
        containerd.ctr("task", "exec", "--exec-id", "r2", cid, "/bin/cat", "/mnt/again/jinja2/__init__.py")
        wait_for("the sensor to drain", lambda: s.agent.step(0) == 0)
        s.agent.flush_batch()
        s.agent.shipper.ship(force=True)  # type: ignore[union-attr]
    (record,) = s.activities(ref)
    assert (record["kind"], record["target"], record["count"]) == ("package_load", f"{DP}/jinja2/__init__.py", 2)
    argv = [x["argv"][-1] for x in record["samples"]]
    assert argv == [f"{DP}/jinja2/__init__.py", "/mnt/again/jinja2/__init__.py"]


def test_a_container_started_after_the_policy_gets_its_identities_and_loses_them_with_its_load_watch(
    containerd, packages: Path, tmp_path: Path
) -> None:
    cid = uuid.uuid4().hex + uuid.uuid4().hex
    ref = f"containerd://{cid}"
    with sensor(tmp_path, batch_interval=60) as s:
        s.load_watch.apply(policy(cid, [f"{DP}/jinja2/"]))
        assert s.identities.settle() and s.identities.entries() == {}
        with container(containerd, packages, cid=cid) as (_, pod):
            cg = cgroup_of(pod, cid)
            # Its first events make the sensor resolve its files through its process.
            got = wait_for("the container's identities", lambda: s.identities.entries().get(cg), timeout=30)
            assert sorted(got.values()) == [f"{DP}/jinja2/__init__.py", f"{DP}/jinja2/util.py"]
            keys = [load_key(cg, ident) for ident in got]
            assert all(s.tracer.is_load_file(k) for k in keys)
            # Its findings resolved: the next policy watches nothing of it, and its entries leave the kernel.
            s.load_watch.apply(policy(None, []))
            assert s.identities.settle()
            assert s.identities.entries() == {} and not any(s.tracer.is_load_file(k) for k in keys)
            containerd.ctr("task", "exec", "--exec-id", "r0", cid, "/bin/cat", "/opt/alias/j.py")
            containerd.ctr("task", "exec", "--exec-id", "r1", cid, "/bin/cat", f"{DP}/jinja2/util.py")
            wait_for("the sensor to drain", lambda: s.agent.step(0) == 0)
            s.agent.flush_batch()
            s.agent.shipper.ship(force=True)  # type: ignore[union-attr]
            assert s.pipeline.loads == 0
    assert s.activities(ref) == []
