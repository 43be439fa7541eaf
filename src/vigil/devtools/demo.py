"""`vigil demo`: the whole pipeline on this machine, with real parts, and findings of every kind it can show.

What runs: a loopback `docker-registry` (Debian package) holding images built on
the fly; the test Kubernetes API server with a sample cluster whose pods run those
images; the service with its integrity evaluator, scanner and matcher; and the
controller as its own process, registering with a registration token. Nothing is
inserted into the findings: each one is computed by the pipeline from what the
registry holds, what the pods run and what the advisories (written here, in OSV
format) say.

The sample cluster is set up so that:
- shop/web runs exactly what its tag points at                -> verified
- shop/api runs 2.1 while the tag was pushed again since      -> tag_moved
- shop/worker runs a digest the registry never received       -> digest_mismatch
- batch/report runs an image whose manifest was deleted       -> artifact_missing
- edge/miner runs from a registry that is not trusted         -> untrusted_registry
- web ships Jinja2 2.10 (demo advisory VIGIL-DEMO-0001)       -> vulnerable_package
- api 2.1 ships the npm package evil-demo-pkg (MAL-DEMO-0001) -> malicious_package
- shop/toolbox (busybox-static, catalogued as the apk package
  busybox 1.35.0-r29, VIGIL-DEMO-0002)                       -> vulnerable_package

The runtime part, where the machine allows it (root, the sensor's BPF prerequisites,
containerd, ctr, runc, busybox-static; otherwise one line says what is missing and the
demo goes on without it): a private containerd pulls the toolbox image from the demo
registry and runs it as the toolbox pod's container (its pod uid and container id, under a
kubelet-style cgroup), `vigil sensor` traces it and ships to the service, and inside it:
- the entry point and `ls` run image binaries (busybox)     -> running_vulnerability
- a binary copied in and run                                -> runtime_drift
- a copy of busybox run from /dev/shm                       -> suspicious_exec (high)
- `ctr task exec ... sh -c id`, a shell from outside        -> suspicious_exec (medium)
"""

from __future__ import annotations

import ctypes.util
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn
import yaml

from vigil.controller.credentials import load_credential
from vigil.devtools import containerd as ctd
from vigil.devtools.kubeapi import KubeAPIServer
from vigil.devtools.net import wait_for_port
from vigil.devtools.oci import Image, build_image, delete_manifest, push, tar_layer
from vigil.devtools.registry_server import RegistryServer, find_registry_binary
from vigil.intel.loader import load_osv
from vigil.intel.store import AdvisoryStore
from vigil.model.findings import FindingType
from vigil.registry.client import RegistryClient
from vigil.registry.config import RegistryConfig
from vigil.sensor.loader import BPF_OBJECT, SensorLoadError, preflight
from vigil.service.app import create_app
from vigil.service.settings import IntegritySettings, Settings
from vigil.service.store.tokens import has_admin, issue_token

CLUSTER = "demo"
# What the sample cluster shows, by finding type (see the module docstring for which is which).
EXPECTED_FINDINGS: dict[str, int] = {
    FindingType.TAG_MOVED: 1,
    FindingType.DIGEST_MISMATCH: 1,
    FindingType.ARTIFACT_MISSING: 1,
    FindingType.UNTRUSTED_REGISTRY: 1,
    FindingType.VULNERABLE_PACKAGE: 2,
    FindingType.MALICIOUS_PACKAGE: 1,
}
# ... and what the runtime part adds (each once: findings are deduplicated per workload, image and subject).
RUNTIME_FINDINGS: dict[str, int] = {
    FindingType.RUNTIME_DRIFT: 1,
    FindingType.SUSPICIOUS_EXEC: 2,
    FindingType.RUNNING_VULNERABILITY: 1,
}
SENSOR_NODE = "node-a"  # where the toolbox pod is scheduled, so the sensor is that node's
TOOLBOX_APPLETS = (*ctd.APPLETS, "id")
# A file written into the running container and executed: busybox with other bytes appended,
# so it runs (as `true`) but its sha256 is nowhere in the image.
DRIFT_PATH = "/usr/local/bin/true"
MARKER_EXEC_ID, MARKER_PATH = "ls", "/bin/ls"
APK_INSTALLED = b"""P:busybox
V:1.35.0-r29
A:x86_64
o:busybox
F:bin
R:busybox
R:sh
R:ls
R:id
R:true
R:sleep
R:echo
R:cat
R:false

"""


class DemoError(RuntimeError):
    """A part the demo needs is missing; the message says which and how to get it."""


def _python_package(name: str, version: str) -> dict[str, bytes]:
    base = f"usr/lib/python3/dist-packages/{name}-{version}.dist-info"
    init = f"usr/lib/python3/dist-packages/{name.lower()}/__init__.py"
    return {
        f"{base}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{base}/RECORD": f"{init},,\n{base}/METADATA,,\n{base}/RECORD,,\n".encode(),
        init: b"__version__ = '" + version.encode() + b"'\n",
    }


def _npm_package(name: str, version: str) -> dict[str, bytes]:
    return {f"app/node_modules/{name}/package.json": json.dumps({"name": name, "version": version}).encode()}


def _image(app: str, version: str, extra: dict[str, bytes] | None = None) -> Image:
    files = {
        "etc/os-release": b'ID=debian\nVERSION_ID="12"\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n',
        f"app/{app}": f"#!/bin/sh\necho {app} {version}\n".encode(),
        **(extra or {}),
    }
    return build_image(
        [tar_layer(files)],
        labels={
            "org.opencontainers.image.source": f"https://git.example.com/shop/{app}",
            "org.opencontainers.image.version": version,
            "org.opencontainers.image.authors": "demo@vigil.dev",
        },
        cmd=[f"/app/{app}"],
    )


ADVISORIES: list[dict[str, Any]] = [
    {
        "schema_version": "1.6.0",
        "id": "VIGIL-DEMO-0001",
        "modified": "2026-01-01T00:00:00Z",
        "published": "2019-04-06T00:00:00Z",
        "aliases": ["CVE-2019-10906"],
        "summary": "Jinja2 sandbox escape through str.format_map (demo record)",
        "details": "A record written by `vigil demo` in OSV format, so the demo needs no download.",
        "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:N/A:N"}],
        "affected": [
            {
                "package": {"ecosystem": "PyPI", "name": "jinja2"},
                "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "2.10.1"}]}],
            }
        ],
        "references": [{"type": "ADVISORY", "url": "https://nvd.nist.gov/vuln/detail/CVE-2019-10906"}],
    },
    {
        "schema_version": "1.6.0",
        "id": "MAL-DEMO-0001",
        "modified": "2026-01-01T00:00:00Z",
        "summary": "Malicious code in evil-demo-pkg (npm) (demo record)",
        "details": "A malicious-package record in the shape the OpenSSF malicious-packages project publishes.",
        "affected": [{"package": {"ecosystem": "npm", "name": "evil-demo-pkg"}, "versions": ["1.0.0"]}],
        "database_specific": {"malicious-packages-origins": [{"source": "vigil-demo"}]},
    },
    {
        "schema_version": "1.6.0",
        "id": "VIGIL-DEMO-0002",
        "modified": "2026-01-01T00:00:00Z",
        "published": "2026-01-01T00:00:00Z",
        "summary": "busybox denial of service (demo record)",
        "details": (
            "A record written by `vigil demo`, so that the toolbox image's busybox is vulnerable and running it shows."
        ),
        "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H"}],
        "affected": [
            {
                "package": {"ecosystem": "Alpine:v3.17", "name": "busybox"},
                "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1.35.0-r31"}]}],
            }
        ],
    },
]


def _toolbox_image() -> Image:
    """busybox-static catalogued as Alpine's busybox package (an apk database owns /bin/busybox).
    Without busybox-static on this machine a stand-in takes its place: the image's static
    findings stay the same, and the runtime part, which needs the real one, is off anyway."""
    busybox = None if ctd.BUSYBOX.exists() else b"#!/bin/sh\n# stand-in: busybox-static was not installed\n"
    image, _ = ctd.busybox_image(
        {
            "/etc/os-release": b'NAME="Alpine Linux"\nID=alpine\nVERSION_ID=3.17.7\n',
            "/lib/apk/db/installed": APK_INSTALLED,
        },
        applets=TOOLBOX_APPLETS,
        labels={
            "org.opencontainers.image.source": "https://git.example.com/shop/toolbox",
            "org.opencontainers.image.version": "1.0",
        },
        busybox=busybox,
    )
    return image


def runtime_unavailable() -> str | None:
    """Why the runtime part cannot run on this machine, or None."""
    if os.geteuid() != 0:
        return "not running as root (containers under kubelet cgroups and the eBPF sensor need root)"
    missing = ctd.missing_tools()
    if missing:
        return f"missing {', '.join(missing)} (apt-get install containerd runc busybox-static)"
    try:
        preflight()
    except SensorLoadError as exc:
        return str(exc)
    if ctypes.util.find_library("bpf") is None:
        return "libbpf.so.1 missing (apt-get install libbpf1)"
    if not BPF_OBJECT.is_file():
        return f"the sensor's BPF object {BPF_OBJECT} is missing (run scripts/build-bpf)"
    return None


def _meta(name: str, namespace: str, owner: dict | None = None, labels: dict | None = None) -> dict:
    meta = {"name": name, "namespace": namespace, "uid": str(uuid.uuid4()), "labels": labels or {"app": name}}
    if owner is not None:
        meta["ownerReferences"] = [
            {
                "apiVersion": owner["apiVersion"],
                "kind": owner["kind"],
                "name": owner["metadata"]["name"],
                "uid": owner["metadata"]["uid"],
                "controller": True,
            }
        ]
    return meta


def _pod(name: str, namespace: str, owner: dict | None, node: str, image: str, repo_digest: str | None) -> dict:
    status = {
        "name": "app",
        "image": image,
        "imageID": repo_digest or "",
        "containerID": "containerd://" + uuid.uuid4().hex + uuid.uuid4().hex,
        "restartCount": 0,
        "ready": True,
        "state": {"running": {"startedAt": "2026-11-27T08:00:00Z"}},
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": _meta(name, namespace, owner),
        "spec": {"nodeName": node, "serviceAccountName": "default", "containers": [{"name": "app", "image": image}]},
        "status": {"phase": "Running", "containerStatuses": [status]},
    }


@dataclass
class RuntimePart:
    """A private containerd running the toolbox pod's container, and `vigil sensor` tracing it."""

    work: Path
    service_url: str
    admin_token: str
    image_ref: str
    image_digest: str
    pod_uid: str
    container_id: str  # 64 hex, as in the pod's containerID after "containerd://"
    containerd: ctd.Containerd | None = None
    sensor: subprocess.Popen | None = None
    started_container: bool = False
    cluster_id: str = ""

    def start(self, cluster_id: str, credential: str, say: Callable[[str], None]) -> None:
        self.cluster_id = cluster_id
        say("runtime: starting a private containerd and pulling the toolbox image from the demo registry")
        self.containerd = ctd.start_containerd(self.work / "containerd", namespace="vigil-demo")
        ctd.pull(self.containerd, self.image_ref, self.image_digest)
        say(f"runtime: starting the sensor for {SENSOR_NODE}")
        cred = self.work / "sensor-credential"
        cred.touch(mode=0o600)
        cred.chmod(0o600)  # before the secret goes in
        cred.write_text(credential + "\n")
        self.sensor = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "vigil.cli",
                "sensor",
                "--service",
                self.service_url,
                "--credential-file",
                str(cred),
                "--cluster-id",
                cluster_id,
                "--node-name",
                SENSOR_NODE,
                "--spool-dir",
                str(self.work / "sensor-spool"),
                "--batch-interval",
                "1",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=open(self.work / "sensor.log", "wb"),  # noqa: SIM115 - lives as long as the process
        )
        # Its programs must be attached before the container starts, or its first execs go unseen.
        self._wait_for_heartbeat(cluster_id, timeout=90)
        say("runtime: running the toolbox container and acting inside it")
        self.exercise()

    def _wait_for_heartbeat(self, cluster_id: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        headers = {"Authorization": f"Bearer {self.admin_token}"}
        sensor = self.sensor
        if sensor is None:
            raise DemoError("the sensor was not started")
        while time.monotonic() < deadline:
            if sensor.poll() is not None:
                raise DemoError(f"the sensor exited ({sensor.returncode}): {self.sensor_log_tail()}")
            resp = httpx.get(
                f"{self.service_url}/api/v1/nodes", params={"cluster": cluster_id}, headers=headers, timeout=10
            )
            if resp.status_code == 200:
                node = next((n for n in resp.json()["items"] if n["name"] == SENSOR_NODE), None)
                if node is not None and (node.get("sensor") or {}).get("last_heartbeat_at"):
                    return
            time.sleep(0.5)
        raise DemoError(f"the sensor did not report within {timeout:.0f}s: {self.sensor_log_tail()}")

    def settled(self) -> bool:
        """The service holds the last step's record and has analysed every record it holds."""
        headers = {"Authorization": f"Bearer {self.admin_token}"}
        procs = httpx.get(
            f"{self.service_url}/api/v1/processes",
            params={"cluster": self.cluster_id, "limit": 1000},
            headers=headers,
            timeout=10,
        )
        procs.raise_for_status()
        if not any(p["path"] == MARKER_PATH for p in procs.json()["items"]):
            return False
        status = httpx.get(f"{self.service_url}/api/v1/runtime/status", headers=headers, timeout=10)
        status.raise_for_status()
        return sum(status.json()["pending"].values()) == 0

    def sensor_log_tail(self) -> str:
        lines = (self.work / "sensor.log").read_text(errors="replace").strip().splitlines()
        return lines[-1] if lines else "(no output)"

    def exercise(self) -> None:
        c, cid = self.containerd, self.container_id
        if c is None:
            raise DemoError("containerd was not started")
        init = ctd.run_container(c, self.image_ref, self.pod_uid, cid, exec_shm=True)
        self.started_container = True
        ctd.wait_for_cmdline(init, ["/bin/sleep", "300"])
        busybox = ctd.BUSYBOX.read_bytes()
        steps = [
            ("drift", [DRIFT_PATH], (DRIFT_PATH, busybox + b"\0vigil-demo: not from the image")),
            ("shm", ["/dev/shm/true"], ("/dev/shm/true", busybox)),  # the image's bytes, from a scratch dir
            ("shell", ["sh", "-c", "id"], None),  # a shell entered from outside, as kubectl exec does
            # Last, as the marker that the sensor shipped every step (it ships in order):
            (MARKER_EXEC_ID, [MARKER_PATH, "/app"], None),  # an image binary: what the image promised
        ]
        for exec_id, argv, drop in steps:
            if drop is not None:
                ctd.put_file(init, *drop)
            done = ctd.exec_in(c, cid, exec_id, *argv)
            if done.returncode != 0:
                raise DemoError(
                    f"ctr task exec {' '.join(argv)} in the toolbox container failed ({done.returncode}): "
                    f"{done.stderr.strip()}"
                )

    def stop(self) -> None:
        if self.sensor is not None and self.sensor.poll() is None:
            self.sensor.terminate()
            try:
                self.sensor.wait(30)
            except subprocess.TimeoutExpired:
                self.sensor.kill()
                self.sensor.wait()
        if self.containerd is not None:
            if self.started_container:
                ctd.remove_container(self.containerd, self.container_id, self.pod_uid)
            self.containerd.stop()
        # runc may have made the pod's cgroups even when `ctr run` failed later on.
        ctd.cleanup_pod_cgroups(self.pod_uid)


@dataclass
class Demo:
    """The running demo: its parts, the console URL and the admin token."""

    work: Path
    port: int
    registry: RegistryServer | None = None
    kube: KubeAPIServer | None = None
    server: uvicorn.Server | None = None
    controller: subprocess.Popen | None = None
    url: str = ""
    admin_token: str = ""
    threads: list[threading.Thread] = field(default_factory=list)
    runtime: RuntimePart | None = None
    runtime_off: str | None = None  # why the runtime part did not run; None while it does
    toolbox: dict[str, str] = field(default_factory=dict)  # the toolbox pod: pod_uid, container_id

    # -- set-up -------------------------------------------------------------------------------

    def start(self, say: Callable[[str], None] = print) -> Demo:
        if find_registry_binary() is None:
            raise DemoError("the demo needs Debian's docker-registry: apt-get install docker-registry")
        self.work.mkdir(parents=True, exist_ok=True)
        say("starting a loopback docker-registry")
        self.registry = RegistryServer(workdir=self.work / "registry").start()
        host = self.registry.host
        registries = self.work / "registries.yaml"
        registries.write_text(yaml.safe_dump({host: {"plain_http": True}}))
        trust = self.work / "trust.yaml"
        trust.write_text(yaml.safe_dump({"trusted": [host], "mirrors": []}))

        say("building and pushing images")
        digests = self._push_images(host, RegistryConfig.load(registries, environ={}))

        say("writing demo advisories")
        osv_dir = self.work / "osv"
        osv_dir.mkdir(exist_ok=True)
        for record in ADVISORIES:
            (osv_dir / f"{record['id']}.json").write_text(json.dumps(record, indent=2))
        advisories, report = load_osv([osv_dir])
        if report.rejected:
            raise DemoError(f"demo advisories rejected: {report.rejected}")
        data = self.work / "data"
        with AdvisoryStore(data / "intel.db") as store:
            store.upsert(advisories)

        say("starting the service")
        settings = Settings(
            data_dir=data,
            port=self.port,
            registry_config=registries,
            integrity=IntegritySettings(trust_file=trust, reverify_interval=60.0),
        ).all_in_background()
        app = create_app(settings)
        with app.state.engine.begin() as conn:
            if not has_admin(conn):
                self.admin_token = issue_token(conn, role="admin", name="demo-admin").secret
            registration = issue_token(conn, role="registration", name="demo-controller").secret
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_config=None, access_log=False)
        )
        t = threading.Thread(target=self.server.run, name="vigil-demo-service", daemon=True)
        t.start()
        self.threads.append(t)
        wait_for_port(self.port, 30)
        self.url = f"http://127.0.0.1:{self.port}"

        say("starting the test Kubernetes API server with the sample cluster")
        self.kube = KubeAPIServer().start()
        self._load_cluster(host, digests)
        kubeconfig = self.kube.write_kubeconfig(self.work / "kubeconfig")

        self.runtime_off = runtime_unavailable()
        if self.runtime_off is not None:
            say(f"runtime part off: {self.runtime_off}; continuing without runtime findings")

        say("starting the controller")
        credential_file = self.work / "controller-credential.json"
        self.controller = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "vigil.cli",
                "controller",
                "--service",
                self.url,
                "--cluster-name",
                CLUSTER,
                "--credential-file",
                str(credential_file),
                "--kubeconfig",
                str(kubeconfig),
                "--log-level",
                "WARNING",
            ],
            # The token goes by environment: a command line is readable by every user through ps.
            env={**os.environ, "VIGIL_REGISTRATION_TOKEN": registration},
            stdout=subprocess.DEVNULL,
            stderr=open(self.work / "controller.log", "wb"),  # noqa: SIM115 - lives as long as the process
        )
        if self.runtime_off is None:
            # The sensor reports with the cluster's credential, as the controller hands it to sensors in
            # a cluster (an unbound registration token registers a cluster once).
            self._start_runtime(host, digests["toolbox"], *self._controller_credential(credential_file), say)
        return self

    def _controller_credential(self, path: Path) -> tuple[str, str]:
        """(cluster id, credential) from the file the controller writes once it has registered."""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            cred = load_credential(path) if path.exists() else None
            if cred is not None:
                return cred.cluster_id, cred.credential
            if self.controller is not None and self.controller.poll() is not None:
                break
            time.sleep(0.2)
        log = (self.work / "controller.log").read_text(errors="replace")[-500:]
        raise DemoError(
            f"the controller did not register cluster {CLUSTER!r} (see {self.work / 'controller.log'}): {log}"
        )

    def _start_runtime(
        self, host: str, digest: str, cluster_id: str, credential: str, say: Callable[[str], None]
    ) -> None:
        """Run the runtime part; if a part of it fails here, say why and go on without it."""
        self.runtime = RuntimePart(
            work=self.work / "runtime",
            service_url=self.url,
            admin_token=self.admin_token,
            image_ref=f"{host}/shop/toolbox:1.0",
            image_digest=digest,
            pod_uid=self.toolbox["pod_uid"],
            container_id=self.toolbox["container_id"],
        )
        self.runtime.work.mkdir(parents=True, exist_ok=True)
        try:
            self.runtime.start(cluster_id, credential, say)
        except (
            DemoError,
            ctd.ContainerdError,
            TimeoutError,
            OSError,
            subprocess.SubprocessError,
            httpx.HTTPError,
        ) as exc:
            detail = exc.stderr.strip() if isinstance(exc, subprocess.CalledProcessError) and exc.stderr else ""
            self.runtime_off = f"{exc}{': ' + detail if detail else ''}".strip()
            say(f"runtime part failed: {self.runtime_off}; continuing without runtime findings")
            self.runtime.stop()
            self.runtime = None

    def expected_findings(self) -> dict[str, int]:
        return {**EXPECTED_FINDINGS, **(RUNTIME_FINDINGS if self.runtime is not None else {})}

    def _push_images(self, host: str, config: RegistryConfig) -> dict[str, str]:
        client = RegistryClient(config)
        d: dict[str, str] = {}
        web = _image("web", "1.0", _python_package("Jinja2", "2.10"))
        d["web"] = push(client, f"{host}/shop/web:1.0", web)
        # api: the pods run 2.1 as first pushed (with a malicious npm dependency); the tag has
        # been pushed again since.
        d["api"] = push(client, f"{host}/shop/api:2.1", _image("api", "2.1", _npm_package("evil-demo-pkg", "1.0.0")))
        push(client, f"{host}/shop/api:2.1", _image("api", "2.1-hotfix"))
        # worker: the tag exists, but the pods run a build that was never pushed.
        push(client, f"{host}/shop/worker:3.0", _image("worker", "3.0"))
        d["worker"] = _image("worker", "3.0-local").digest
        # report: pushed, running, then deleted from the registry.
        d["report"] = push(client, f"{host}/batch/report:0.9", _image("report", "0.9"))
        delete_manifest(client, f"{host}/batch/report:0.9", d["report"])
        # toolbox: busybox with an apk database; the runtime part runs it as the toolbox pod.
        d["toolbox"] = push(client, f"{host}/shop/toolbox:1.0", _toolbox_image())
        return d

    def _load_cluster(self, host: str, d: dict[str, str]) -> None:
        if self.kube is None:
            raise DemoError("the test Kubernetes API server was not started")
        store = self.kube.store
        for n in ("node-a", "node-b"):
            store.create(
                {
                    "apiVersion": "v1",
                    "kind": "Node",
                    "metadata": {"name": n, "uid": str(uuid.uuid4()), "labels": {"kubernetes.io/arch": "amd64"}},
                    "status": {
                        "nodeInfo": {
                            "kernelVersion": os.uname().release,
                            "osImage": "Debian GNU/Linux 12 (bookworm)",
                            "containerRuntimeVersion": "containerd://1.6.20",
                            "architecture": "amd64",
                            "kubeletVersion": "v1.29.2",
                        },
                        "conditions": [{"type": "Ready", "status": "True"}],
                    },
                }
            )
        for ns in ("shop", "batch", "edge"):
            store.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "uid": str(uuid.uuid4())}})

        def deployment(ns: str, name: str, image: str, repo_digest: str | None, replicas: int = 2) -> list[dict]:
            dep = {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": _meta(name, ns),
                "spec": {"replicas": replicas},
            }
            rs = {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "metadata": _meta(f"{name}-5d8f7c", ns, dep),
                "spec": {"replicas": replicas},
            }
            store.create(dep)
            store.create(rs)
            pods = [
                _pod(f"{name}-5d8f7c-{i}", ns, rs, ("node-a", "node-b")[i % 2], image, repo_digest)
                for i in range(replicas)
            ]
            for pod in pods:
                store.create(pod)
            return pods

        deployment("shop", "web", f"{host}/shop/web:1.0", f"{host}/shop/web@{d['web']}")
        deployment("shop", "api", f"{host}/shop/api:2.1", f"{host}/shop/api@{d['api']}")
        deployment("shop", "worker", f"{host}/shop/worker:3.0", f"{host}/shop/worker@{d['worker']}", replicas=1)
        (toolbox,) = deployment(
            "shop", "toolbox", f"{host}/shop/toolbox:1.0", f"{host}/shop/toolbox@{d['toolbox']}", replicas=1
        )
        self.toolbox = {
            "pod_uid": toolbox["metadata"]["uid"],
            "container_id": toolbox["status"]["containerStatuses"][0]["containerID"].removeprefix("containerd://"),
        }
        deployment(
            "edge",
            "miner",
            "quay.io/cryptominer/xmrig:6.21",
            "quay.io/cryptominer/xmrig@sha256:" + "e" * 64,
            replicas=1,
        )
        cron = {
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "metadata": _meta("report", "batch"),
            "spec": {"schedule": "0 * * * *"},
        }
        job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": _meta("report-29001", "batch", cron), "spec": {}}
        store.create(cron)
        store.create(job)
        store.create(
            _pod(
                "report-29001-x7k2p",
                "batch",
                job,
                "node-a",
                f"{host}/batch/report:0.9",
                f"{host}/batch/report@{d['report']}",
            )
        )

    # -- running ------------------------------------------------------------------------------

    def findings_by_type(self, token: str) -> dict[str, int]:
        resp = httpx.get(
            f"{self.url}/api/v1/findings",
            params={"status": "open", "limit": 1000},
            headers={"Authorization": f"Bearer {token}"},
        )
        resp.raise_for_status()
        out: dict[str, int] = {}
        for f in resp.json()["items"]:
            out[f["type"]] = out.get(f["type"], 0) + 1
        return out

    def wait_for_findings(self, token: str, timeout: float) -> dict[str, int]:
        deadline = time.monotonic() + timeout
        seen: dict[str, int] = {}
        expected = self.expected_findings()
        while time.monotonic() < deadline:
            seen = self.findings_by_type(token)
            if all(seen.get(t, 0) >= n for t, n in expected.items()) and (
                self.runtime is None or self.runtime.settled()
            ):
                return seen
            if self.controller is not None and self.controller.poll() is not None:
                raise DemoError(
                    f"the controller exited ({self.controller.returncode}); see {self.work / 'controller.log'}"
                )
            runtime = self.runtime
            if runtime is not None and runtime.sensor is not None and runtime.sensor.poll() is not None:
                raise DemoError(f"the sensor exited ({runtime.sensor.returncode}): {runtime.sensor_log_tail()}")
            time.sleep(1)
        missing = [f"{t} ({seen.get(t, 0)} of {n})" for t, n in expected.items() if seen.get(t, 0) < n]
        if not missing:
            missing = ["the runtime records' analysis (the service had not analysed every step)"]
        raise DemoError(f"after {timeout:.0f}s these findings had not appeared: {', '.join(missing)} (have: {seen})")

    def stop(self) -> None:
        if self.runtime is not None:
            self.runtime.stop()
        if self.controller is not None and self.controller.poll() is None:
            self.controller.terminate()
            try:
                self.controller.wait(10)
            except subprocess.TimeoutExpired:
                self.controller.kill()
        if self.server is not None:
            self.server.should_exit = True
        for t in self.threads:
            t.join(15)
        if self.kube is not None:
            self.kube.stop()
        if self.registry is not None:
            self.registry.close()
