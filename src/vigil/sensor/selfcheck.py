"""`vigil sensor --enforce-test`: does the in-kernel kill work on this node?

It loads the sensor's BPF programs, makes a throwaway cgroup (the shape a container has: its own
cgroup v2 directory, its own mount namespace), drops a copy of a shell into a fresh directory and
runs it there twice: once with no rule (it must run and write its marker), then with the file's
identity on the deny list under an enforced rule (it must die by SIGKILL without writing the
marker, and the kernel must report the prevention). Nothing else on the node is put under a rule.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from vigil.sensor.cgroups import unified_mount
from vigil.sensor.events import EVENT_PREVENTED, PreventedEvent, decode_event
from vigil.sensor.hashing import identity_of
from vigil.sensor.loader import ProcessTracer, SensorLoadError
from vigil.sensor.prevention import RULE_BITS, file_key
from vigil.wire.prevention import PreventionRule

_CLONE_NEWNS = 0x00020000
_DENY = RULE_BITS[PreventionRule.DENY_LISTED]


@dataclass(frozen=True)
class SelfCheck:
    works: bool
    message: str


def _enter(procs: Path) -> None:
    """In the child before exec: into the throwaway cgroup and a mount namespace of its own (an
    exec in the host's mount namespace is the runtime's helper, which the kernel never stops)."""
    procs.write_text(str(os.getpid()))
    if ctypes.CDLL(None, use_errno=True).unshare(_CLONE_NEWNS) != 0:
        os._exit(120)


def _run(binary: Path, marker: Path, procs: Path) -> int:
    proc = subprocess.Popen(
        [str(binary), "-c", f"echo ran > {marker}"],
        preexec_fn=lambda: _enter(procs),  # noqa: PLW1509 - no threads run in this process yet
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return proc.wait(10)


def _prevented(tracer: ProcessTracer, cgroup_id: int, timeout_s: float = 2.0) -> PreventedEvent | None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for raw in tracer.poll(100):
            if int.from_bytes(raw[:4], "little") != EVENT_PREVENTED:
                continue
            ev = decode_event(raw)
            if isinstance(ev, PreventedEvent) and ev.proc.cgroup_id == cgroup_id:
                return ev
    return None


def enforce_test(shell: Path = Path("/bin/sh")) -> SelfCheck:
    root = unified_mount(Path("/proc/self/mountinfo").read_text())
    if root is None:
        return SelfCheck(False, "no cgroup v2 hierarchy is mounted: the sensor keys its rules by cgroup v2 id")
    try:
        tracer = ProcessTracer(activities=False, exec_aggregation=False)
    except SensorLoadError as exc:
        return SelfCheck(False, f"the sensor's BPF programs do not load: {exc}")
    work = Path(tempfile.mkdtemp(prefix="vigil-enforce-test-"))
    cgroup = root / f"vigil-enforce-test-{os.getpid()}"
    try:
        cgroup.mkdir()
        cgroup_id = os.stat(cgroup).st_ino
        binary = work / "dropped"
        shutil.copy2(shell, binary)
        binary.chmod(0o755)
        marker = work / "marker"
        procs = cgroup / "cgroup.procs"
        tracer.set_cgroup_rules(cgroup_id, _DENY, 0)
        code = _run(binary, marker, procs)
        if code != 0 or not marker.exists():
            return SelfCheck(False, f"the dropped binary did not run in the test cgroup without a rule (exit {code})")
        marker.unlink()
        tracer.deny_file(file_key(identity_of(os.stat(binary))))
        code = _run(binary, marker, procs)
        event = _prevented(tracer, cgroup_id)
        if code != -signal.SIGKILL:
            return SelfCheck(False, f"the deny-listed exec was not killed: it exited with {code}, not SIGKILL")
        if marker.exists():
            return SelfCheck(False, "the deny-listed exec was killed, but only after it ran (it wrote its marker)")
        if event is None or not event.killed:
            return SelfCheck(False, "the deny-listed exec was killed but the kernel reported no prevention")
        return SelfCheck(
            True,
            "enforcement works on this kernel: a dropped binary exec'd in a test cgroup under an enforced rule "
            "was killed by SIGKILL from the exec tracepoint before its first instruction (no marker written), "
            "and the kernel reported the prevention",
        )
    except OSError as exc:
        return SelfCheck(False, f"the self-check could not set up its test cgroup or binary: {exc}")
    finally:
        tracer.close()
        for _ in range(50):
            try:
                cgroup.rmdir()
                break
            except FileNotFoundError:
                break
            except OSError:
                time.sleep(0.05)  # the killed child is still leaving the cgroup
        shutil.rmtree(work, ignore_errors=True)
