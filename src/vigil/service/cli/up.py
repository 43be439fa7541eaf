"""`vigil up`: the service, with this host's sensor and a kubeconfig's controller as child processes.

The sensor and the controller run as `vigil sensor` and `vigil controller` children, each in its own
process group (a terminal's Ctrl-C reaches only this process, which stops them in order) and with
a parent-death signal (they stop if this process is killed). Their credentials are minted here, in
the store, and reach them by a 0600 file or the environment, never the command line, which `ps`
shows to every user. The service listens before either starts, and stops after both did, so the
sensor's last window is delivered.
"""

from __future__ import annotations

import ctypes
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import IO, Any

import uvicorn
import yaml
from pydantic import ValidationError
from sqlalchemy import Engine

from vigil.service.cli.local_parts import (
    BTF_PATH,
    KubeTarget,
    PartUnavailable,
    architecture,
    chosen_kubeconfig,
    cluster_name,
    kube_target,
    os_image,
    sensor_blocker,
)
from vigil.service.settings import Settings
from vigil.service.store.clusters import cluster_name as stored_cluster_name
from vigil.service.store.clusters import ensure_cluster
from vigil.service.store.credentials import enrol_sensor
from vigil.service.store.inventory import apply_snapshot
from vigil.service.store.policy import load_policy
from vigil.service.store.tokens import TokenRejected, authenticate, issue_token
from vigil.wire.inventory import InventorySnapshot, Node

Say = Callable[[str], None]
_PR_SET_PDEATHSIG = 1
# Seconds a part has to stop after SIGTERM before it is killed: the sensor drains, closes its window
# and ships it; the controller only cancels its tasks.
SENSOR_STOP_S = 30.0
CONTROLLER_STOP_S = 10.0
KUBE_CONNECT_TIMEOUT_S = 3.0


@dataclass(frozen=True)
class LocalParts:
    """What `vigil up`'s own options ask for beyond the service."""

    sensor: bool = True
    include_host: bool = False
    sensor_cluster: str | None = None
    kubeconfig: str | None = None
    cluster_name: str | None = None


@dataclass
class Child:
    """One part run as a child process, its output in a log file."""

    part: str  # sensor, controller
    what: str  # for whom it runs, as `vigil up` says it
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    stop_timeout: float
    process: subprocess.Popen[bytes] | None = None
    reported: bool = False
    _log: IO[bytes] | None = field(default=None, repr=False)

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - kept open as long as the child runs
        self.process = subprocess.Popen(
            self.argv,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            process_group=0,
            preexec_fn=_die_with_parent(),
        )

    def exit_status(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def last_line(self) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "(no log)"
        return lines[-1][:300] if lines else "(no output)"

    def stop(self) -> int | None:
        proc = self.process
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
        return None if proc is None else proc.returncode


def _die_with_parent() -> Callable[[], None]:
    """A pre-exec hook that has the kernel SIGTERM the child when this process dies (even by SIGKILL)."""
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before the fork, not in the child

    def hook() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)

    return hook


def service_url(config: uvicorn.Config) -> str:
    """Where the children reach the service: its address, or loopback when it listens on every one."""
    host = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(config.host, config.host)
    scheme = "https" if config.ssl_certfile else "http"
    return f"{scheme}://{f'[{host}]' if ':' in host else host}:{config.port}"


def _write_secret(path: Path, text: str) -> None:
    """Write ``text`` to a file created 0600 (never briefly readable by others), atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


def _still_valid(engine: Engine, secret: str, name: str) -> str | None:
    """The cluster id of ``secret`` when it is still a credential of the cluster called ``name``."""
    with engine.connect() as conn:
        try:
            who = authenticate(conn, secret)
        except TokenRejected:
            return None
    return who.cluster_id if who.role == "cluster" and who.name == f"cluster:{name}" else None


def _kept_sensor(engine: Engine, secret: str, name: str, node: str) -> str | None:
    """The cluster id of ``secret`` when it is still the sensor credential of ``node`` in cluster ``name``."""
    with engine.connect() as conn:
        try:
            who = authenticate(conn, secret)
        except TokenRejected:
            return None
        if who.role != "sensor" or who.node_name != node or who.cluster_id is None:
            return None
        return who.cluster_id if stored_cluster_name(conn, who.cluster_id) == name else None


def sensor_credential(engine: Engine, name: str, node: str, path: Path) -> str:
    """A sensor credential for this host as node ``node`` of cluster ``name`` (the one kept in ``path``
    while the store accepts it, else a new one), written to ``path``; the cluster's id. The sensor gets
    its node's credential, not the cluster's: it writes its node's runtime records and heartbeats only."""
    if path.is_file():
        kept = _kept_sensor(engine, path.read_text().strip(), name, node)
        if kept is not None:
            return kept
    with engine.begin() as conn:
        cluster_id = ensure_cluster(conn, name)
        credential, _ = enrol_sensor(conn, cluster_id, node)
    _write_secret(path, credential.secret + "\n")
    return cluster_id


def record_host_node(engine: Engine, cluster_id: str, node: str) -> None:
    """This host as the one node of its sensor's cluster, so the sensor's status shows where nodes are
    listed (`GET /api/v1/nodes`, the console), as a controller's inventory would show it."""
    try:
        release = Path("/etc/os-release").read_text()
    except OSError:
        release = ""
    try:
        host = Node(
            name=node,
            kernel_version=platform.release(),
            os_image=os_image(release),
            architecture=architecture(platform.machine()),
        )
    except ValidationError:  # a host name that is no Kubernetes node name: the sensor reports all the same
        return
    snapshot = InventorySnapshot(
        kind="snapshot", batch_id=f"vigil-up-{uuid.uuid4().hex}", cluster_id=cluster_id, nodes=[host]
    )
    with engine.begin() as conn:
        apply_snapshot(conn, snapshot)


def controller_registration(engine: Engine, name: str, credential_file: Path) -> str | None:
    """A one-use registration token for the controller, or None when its credential file still holds.

    The file is the controller's (JSON with ``credential``); one the store no longer accepts (another
    database, a revoked credential) is removed so that the controller registers again.
    """
    if credential_file.is_file():
        try:
            kept = json.loads(credential_file.read_text()).get("credential")
        except (OSError, ValueError, AttributeError):
            kept = None
        if isinstance(kept, str) and _still_valid(engine, kept, name) is not None:
            return None
        credential_file.unlink()
    with engine.begin() as conn:
        token = issue_token(conn, role="registration", name=f"vigil-up:{name}", ttl=timedelta(hours=1), max_uses=1)
    return token.secret


def reachable_kube(kubeconfig: str | None) -> KubeTarget:
    """The kubeconfig's API server, when it accepts a connection; PartUnavailable says why not."""
    path = chosen_kubeconfig(kubeconfig)
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise PartUnavailable(f"kubeconfig {path} cannot be read: {exc.__class__.__name__}") from None
    target = kube_target(path, doc)
    try:
        socket.create_connection((target.host, target.port), timeout=KUBE_CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        reason = exc.strerror or exc.__class__.__name__
        raise PartUnavailable(f"kubeconfig {path}: API server {target.server} unreachable ({reason})") from None
    return target


def _flat(options: dict[str, str]) -> list[str]:
    return [word for option, value in options.items() for word in (option, value)]


def _child_env(extra: dict[str, str]) -> dict[str, str]:
    # What this process was given for itself must not reach a child (a registration token, a KUBECONFIG
    # list): each child gets its settings as options, and its secret as ``extra``.
    env = {k: v for k, v in os.environ.items() if k not in ("VIGIL_REGISTRATION_TOKEN", "KUBECONFIG")}
    return {**env, **extra}


def plan_sensor(engine: Engine, settings: Settings, url: str, parts: LocalParts, tls_cert: Path | None) -> Child:
    node = (platform.node() or "localhost").lower()
    name = cluster_name(parts.sensor_cluster or node)
    parts_dir = settings.data_dir / "parts"
    credential = parts_dir / "sensor-credential"
    cluster_id = sensor_credential(engine, name, node, credential)
    record_host_node(engine, cluster_id, node)
    options = {
        "--service": url,
        "--credential-file": str(credential),
        "--cluster-id": cluster_id,
        "--node-name": node,
        "--spool-dir": str(settings.data_dir / "sensor-spool"),
    }
    if tls_cert:
        options["--service-ca"] = str(tls_cert)
    argv = [sys.executable, "-m", "vigil.sensor", *_flat(options)]
    if parts.include_host:
        argv.append("--include-host")
    env = _child_env({})
    what = f"for node {node} in cluster {name}" + (" (host processes too)" if parts.include_host else "")
    return Child("sensor", what, argv, env, settings.data_dir / "logs" / "sensor.log", SENSOR_STOP_S)


def plan_controller(
    engine: Engine, settings: Settings, url: str, target: KubeTarget, name: str, tls_cert: Path | None
) -> Child:
    credential_file = settings.data_dir / "parts" / f"controller-{name}.json"
    credential_file.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(credential_file.parent, 0o700)
    token = controller_registration(engine, name, credential_file)
    options = {
        "--service": url,
        "--credential-file": str(credential_file),
        "--cluster-name": name,
        "--kubeconfig": str(target.kubeconfig),
        "--context": target.context,
    }
    if tls_cert:
        options["--service-ca"] = str(tls_cert)
    argv = [sys.executable, "-m", "vigil.cli", "controller", *_flat(options)]
    env = _child_env({"VIGIL_REGISTRATION_TOKEN": token} if token else {})
    what = f"for cluster {name} (context {target.context}, {target.server})"
    log = settings.data_dir / "logs" / f"controller-{name}.log"
    return Child("controller", what, argv, env, log, CONTROLLER_STOP_S)


def start_parts(
    engine: Engine, settings: Settings, config: uvicorn.Config, parts: LocalParts, say: Say, children: list[Child]
) -> None:
    """Decide, prepare and start the sensor and the controller, each added to ``children`` as it starts;
    one line for each, started or why not."""
    tls_cert = Path(config.ssl_certfile) if config.ssl_certfile else None
    url = service_url(config)
    say(
        "scanner: in this process"
        if settings.contents.scanner_inprocess
        else "scanner: not in this process (--no-scanner; run `vigil scanner` workers)"
    )
    if settings.integrity.trust_file is None:
        with engine.connect() as conn:
            unset = not load_policy(conn).configured
        if unset:
            say(
                "scanner: no trust policy yet, so no registry is contacted and no image scanned: "
                "`vigil trust add REGISTRY` (or --trust-file)"
            )

    def start(child: Child) -> None:
        child.start()
        children.append(child)
        say(f"{child.part}: started {child.what}; log: {child.log_path}")

    why = sensor_blocker(parts.sensor, os.geteuid(), BTF_PATH.exists())
    if why is None:
        start(plan_sensor(engine, settings, url, parts, tls_cert))
    else:
        say(f"sensor: not started: {why}")
    try:
        target = reachable_kube(parts.kubeconfig)
    except PartUnavailable as exc:
        say(f"controller: not started: {exc}")
    else:
        name = cluster_name(parts.cluster_name or target.context, fallback="kubernetes")
        start(plan_controller(engine, settings, url, target, name, tls_cert))


def run_here(config: uvicorn.Config, engine: Engine, settings: Settings, parts: LocalParts, say: Say) -> int:
    """Serve, run the parts that can start, and stop them all on SIGINT or SIGTERM; the exit status."""
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    # Bound before the children start, so they find it listening; the server runs in a thread (and
    # leaves the signals to this one).
    sock = config.bind_socket()
    server = uvicorn.Server(config)
    children: list[Child] = []
    serving = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="vigil-service")
    try:
        start_parts(engine, settings, config, parts, say, children)
        serving.start()
        while not stop.wait(0.5):
            if not serving.is_alive():
                say("service: stopped unexpectedly; stopping the other parts")
                return 1
            for child in children:
                status = child.exit_status()
                if status is not None and not child.reported:
                    child.reported = True
                    say(f"{child.part}: exited with status {status}: {child.last_line()}")
        return 0
    finally:
        for child in children:  # the sensor first: it ships its last window while the service still listens
            child.stop()
        server.should_exit = True
        if serving.is_alive():
            serving.join(30)
        sock.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
