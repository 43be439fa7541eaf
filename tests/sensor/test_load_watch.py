"""Package loads in the sensor: the node policy's load watch in the real kernel's watched-path table, and
reads of those files told apart per container in user space."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bpf_support import bpf_unavailable

from vigil.sensor.activity import Activity, ProcessInfo
from vigil.sensor.attribution import Attribution
from vigil.sensor.events import ActivityEvent, ProcessHeader
from vigil.sensor.load_watch import LoadWatch, watches
from vigil.sensor.watch import WATCH_READ, WATCH_WRITE
from vigil.wire.prevention import ContainerLoadWatch, NodeRuntimePolicy

T0 = datetime(2026, 1, 1, tzinfo=UTC)
POD = "0b7f2a4e-1111-4222-8333-444455556666"
A, B = "a" * 64, "b" * 64
JINJA = "/usr/lib/python3/dist-packages/jinja2/"
SIX = "/app/six.py"


def policy(revision: str, *watched: tuple[str, list[str]]) -> NodeRuntimePolicy:
    return NodeRuntimePolicy(
        revision=revision,
        node_name="node-a",
        generated_at=T0,
        load_watch=[ContainerLoadWatch(container_id=f"containerd://{c}", paths=p) for c, p in watched],
    )


def read(container: str, path: str) -> Activity:
    proc = ProcessHeader(7, 7, 1, 0, 0, 1234, 0, 0, 1, 1, "python3")
    ev = ActivityEvent(proc, "file_read", 3, 0, 0, path, "", "", False, False, False)
    who = Attribution("kubelet-cgroupfs", "containerd", container, POD)
    return Activity(ev, who, T0, path, {}, ProcessInfo("/usr/bin/python3", ["python3", "-c", "import jinja2"], []))


def test_watches_covers_prefixes_and_exact_paths() -> None:
    paths = frozenset({JINJA, SIX})
    assert watches(JINJA + "sandbox.py", paths) and watches(SIX, paths)
    assert not watches("/app/six.pyc", paths) and not watches("/usr/lib/python3/dist-packages/jinja2x/a.py", paths)


@pytest.mark.skipif(bpf_unavailable() is not None, reason=str(bpf_unavailable()))
def test_load_watch_fills_and_empties_the_kernel_table_and_filters_per_container() -> None:
    from vigil.sensor.loader import ProcessTracer

    with ProcessTracer(exec_aggregation=False) as tracer:
        tables = []
        watch = LoadWatch(tracer, on_table=tables.append)
        assert tracer.watch_value(JINJA + "__init__.py") == (WATCH_WRITE, 0, "/usr/lib/")
        watch.apply(policy("r1", (A, [JINJA, SIX]), (B, ["/srv/node_modules/lodash/"])))
        # Under write-watched /usr/lib/: the entry keeps its write flag beside the read one.
        assert tracer.watch_value(JINJA + "__init__.py") == (WATCH_WRITE | WATCH_READ, 0, JINJA)
        assert tracer.watch_value(SIX) == (0, WATCH_READ, SIX)
        assert tracer.watch_value("/srv/node_modules/lodash/lodash.js") == (WATCH_READ, 0, "/srv/node_modules/lodash/")
        assert tracer.watch_value("/etc/shadow") == (WATCH_WRITE, WATCH_READ, "/etc/shadow")
        assert {e.path for e in tables[-1]} >= {JINJA, SIX, "/etc/shadow"}
        loaded = watch.classify(read(A, JINJA + "__init__.py"))
        assert loaded is not None and loaded.event.kind == "package_load" and loaded.target == JINJA + "__init__.py"
        assert watch.classify(read(B, JINJA + "__init__.py")) is None  # another container's package
        kept = watch.classify(read(B, "/etc/shadow"))
        assert kept is not None and kept.event.kind == "file_read"  # a built-in read-watched path
        # The next policy drops A's paths: out of the kernel's table, and A's reads are no loads any more.
        watch.apply(policy("r2", (B, ["/srv/node_modules/lodash/"])))
        assert tracer.watch_value(SIX) is None
        assert tracer.watch_value(JINJA + "__init__.py") == (WATCH_WRITE, 0, "/usr/lib/")
        assert watch.classify(read(A, JINJA + "__init__.py")) is None


@pytest.mark.skipif(bpf_unavailable() is not None, reason=str(bpf_unavailable()))
def test_the_node_cap_leaves_paths_out_and_counts_them() -> None:
    from vigil.sensor.loader import ProcessTracer

    with ProcessTracer(exec_aggregation=False) as tracer:
        watch = LoadWatch(tracer, max_paths=2)
        watch.apply(policy("r1", (A, ["/a/x.py", "/a/y.py", "/a/z.py"])))
        assert watch.left_out == 1
        assert [tracer.watch_value(p) for p in ("/a/x.py", "/a/y.py", "/a/z.py")] == [
            (0, WATCH_READ, "/a/x.py"),
            (0, WATCH_READ, "/a/y.py"),
            None,
        ]
        assert watch.classify(read(A, "/a/z.py")) is None
