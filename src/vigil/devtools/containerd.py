"""Containers the way a kubelet leaves them, on this machine: a private containerd (Debian's
containerd + runc) with its own root, state and socket, containers placed under kubelet-style
cgroups (``kubepods/besteffort/pod<uid>/<container id>``), and the busybox-static image they run.

Shared by the sensor and runtime tests, their benchmarks and `vigil demo`. Everything goes
through the ``ctr`` command line, so what runs here is what an operator could type.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from vigil.devtools.oci import Image, LayerFile, build_image, tar_layer

BUSYBOX = Path("/bin/busybox")
TOOLS = ("containerd", "ctr", "runc")
APPLETS = ("sh", "true", "false", "sleep", "cat", "echo", "ls")
# The container's main process: a #! script (the kernel loads /bin/sh for it) that runs
# one program and then replaces itself with another, so both exec paths are exercised.
RUN_SCRIPT = b"#!/bin/sh\n/bin/echo started\nexec /bin/sleep 300\n"
CGROUP_ROOT = Path("/sys/fs/cgroup")
# A unix socket's path must fit sun_path (108 bytes with its NUL); the longest is the ttrpc one.
SOCKET_PATH_MAX = 100


class ContainerdError(RuntimeError):
    """containerd or a container did not do what was asked; the message says what and why."""


def missing_tools() -> list[str]:
    """What of containerd, ctr, runc and busybox-static this machine lacks (empty: nothing)."""
    return [t for t in TOOLS if shutil.which(t) is None] + (
        [] if BUSYBOX.exists() else ["busybox-static (/bin/busybox)"]
    )


@dataclass
class Containerd:
    base: Path
    proc: subprocess.Popen
    namespace: str = "vigiltest"
    sockets: Path | None = None  # where the sockets are, when not in ``base`` (too long a path)

    @property
    def socket(self) -> Path:
        return (self.sockets or self.base) / "containerd.sock"

    def ctr(self, *args: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["ctr", "--address", str(self.socket), "--namespace", self.namespace, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=check,
        )

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.sockets is not None:
            shutil.rmtree(self.sockets, ignore_errors=True)


def start_containerd(base: Path, namespace: str = "vigiltest") -> Containerd:
    """A containerd whose root, state, socket and log are all under ``base`` (CRI off: no kubelet
    here); the sockets go to a new short directory under the temp dir if ``base`` is too deep."""
    base.mkdir(parents=True, exist_ok=True)
    sockets = None
    if len(str(base / "containerd.sock.ttrpc")) > SOCKET_PATH_MAX:
        sockets = Path(tempfile.mkdtemp(prefix="vigil-ctd-"))
    where = sockets or base
    cfg = base / "config.toml"
    cfg.write_text(
        f"""version = 2
root = "{base}/root"
state = "{base}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "{where}/containerd.sock"
[ttrpc]
  address = "{where}/containerd.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "{base}/opt"
"""
    )
    with open(base / "containerd.log", "wb") as log:
        proc = subprocess.Popen(["containerd", "--config", str(cfg)], stdout=log, stderr=subprocess.STDOUT)
    c = Containerd(base, proc, namespace, sockets)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ContainerdError(f"containerd exited: {(base / 'containerd.log').read_text()[-2000:]}")
        if c.socket.exists() and c.ctr("version", check=False).returncode == 0:
            return c
        time.sleep(0.1)
    c.stop()
    raise ContainerdError(f"containerd did not come up within 30 s; see {base / 'containerd.log'}")


# -- the image the containers run ---------------------------------------------------------------


def busybox_image(
    extra: dict[str, bytes] | None = None,
    applets: tuple[str, ...] = APPLETS,
    labels: dict[str, str] | None = None,
    busybox: bytes | None = None,
) -> tuple[Image, dict[str, bytes]]:
    """A one-layer image: busybox-static (``busybox``: other bytes in its place) with applet
    symlinks, /app/run.sh as its command, and ``extra`` files (mode 0755). Returns the image and
    its regular files by absolute path."""
    regular = {
        "/bin/busybox": BUSYBOX.read_bytes() if busybox is None else busybox,
        "/app/run.sh": RUN_SCRIPT,
        **(extra or {}),
    }
    entries: dict[str, LayerFile] = {p.lstrip("/"): LayerFile(data, mode=0o755) for p, data in regular.items()}
    for applet in applets:
        entries[f"bin/{applet}"] = LayerFile(kind="symlink", linkname="busybox", mode=0o777)
    for d in ("proc", "dev", "sys", "etc"):
        entries[d] = LayerFile(kind="dir", mode=0o755)
    entries["tmp"] = LayerFile(kind="dir", mode=0o1777)
    image = build_image([tar_layer(entries)], cmd=["/app/run.sh"], env=["PATH=/bin"], labels=labels)
    return image, regular


# -- containers under kubelet-style cgroups -----------------------------------------------------


def kubelet_cgroup(pod_uid: str, container_id: str) -> str:
    return f"kubepods/besteffort/pod{pod_uid}/{container_id}"


def pull(containerd: Containerd, ref: str, digest: str | None = None) -> None:
    """`ctr images pull --plain-http` (loopback registries only); with ``digest``, check that the
    pulled tag resolved to it."""
    out = containerd.ctr("images", "pull", "--plain-http", ref, timeout=120)
    if digest is None:
        return
    listed = containerd.ctr("images", "ls").stdout
    line = next((x for x in listed.splitlines() if x.startswith(ref + " ")), None)
    if line is None or digest not in line:
        raise ContainerdError(f"pulled {ref} is not listed with {digest}: {out.stdout}{listed}")


def run_container(
    containerd: Containerd, ref: str, pod_uid: str, container_id: str, *args: str, exec_shm: bool = False
) -> int:
    """Start a detached container under a kubelet-style cgroup; returns its init's host pid.

    ``exec_shm``: mount /dev/shm without noexec (the OCI default has it, which would stop an
    exec from there before the kernel reports it)."""
    mounts = ["--mount", "type=tmpfs,src=shm,dst=/dev/shm,options=rw:nosuid:nodev:mode=1777"] if exec_shm else []
    containerd.ctr("run", "-d", "--cgroup", kubelet_cgroup(pod_uid, container_id), *mounts, ref, container_id, *args)
    for line in containerd.ctr("task", "ls").stdout.splitlines():
        parts = line.split()
        if parts and parts[0] == container_id:
            return int(parts[1])
    raise ContainerdError(f"task {container_id} not listed after ctr run")


def wait_for_cmdline(pid: int, argv: list[str], timeout: float = 10.0) -> None:
    """Wait, from the host, until a process runs ``argv`` (a container's init has exec'd)."""
    want = ("\0".join(argv) + "\0").encode()
    deadline = time.monotonic() + timeout
    while True:
        try:
            if Path(f"/proc/{pid}/cmdline").read_bytes() == want:
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"pid {pid} did not come to run {argv} within {timeout}s")
        time.sleep(0.05)


def exec_in(containerd: Containerd, container_id: str, exec_id: str, *argv: str) -> subprocess.CompletedProcess:
    """`ctr task exec`: a process entered into the container from outside, as kubectl exec does."""
    return containerd.ctr("task", "exec", "--exec-id", exec_id, container_id, *argv, check=False)


def put_file(init_pid: int, path: str, data: bytes, mode: int = 0o755) -> None:
    """Write a file into the container's filesystem from the host (through its init's root)."""
    target = Path(f"/proc/{init_pid}/root{path}")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_bytes(data)
    tmp.chmod(mode)
    tmp.replace(target)


def remove_container(containerd: Containerd, container_id: str, pod_uid: str) -> None:
    """Kill the task, delete it and the container, and the pod's cgroup directories."""
    containerd.ctr("task", "kill", "-s", "9", container_id, check=False)
    for _ in range(50):
        if containerd.ctr("task", "delete", container_id, check=False).returncode == 0:
            break
        time.sleep(0.1)
    containerd.ctr("containers", "rm", container_id, check=False)
    cleanup_pod_cgroups(pod_uid)


def cleanup_pod_cgroups(pod_uid: str, root: Path = CGROUP_ROOT) -> None:
    """runc leaves the kubepods/.../pod<uid> parents behind in every hierarchy: remove them
    (deepest first; a directory still in use stays, as rmdir refuses it)."""
    for hier in root.iterdir():
        if not hier.is_dir():
            continue
        for d in sorted(hier.glob(f"**/pod{pod_uid}"), key=lambda p: -len(p.parts)):
            for sub in sorted(d.rglob("*"), key=lambda p: -len(p.parts)):
                if sub.is_dir():
                    try:
                        os.rmdir(sub)
                    except OSError:
                        pass
            try:
                os.rmdir(d)
            except OSError:
                pass
