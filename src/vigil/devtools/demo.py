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
"""

from __future__ import annotations

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

import httpx
import uvicorn
import yaml

from vigil.devtools.kubeapi import KubeAPIServer
from vigil.devtools.net import wait_for_port
from vigil.devtools.oci import Image, build_image, delete_manifest, push, tar_layer
from vigil.devtools.registry_server import RegistryServer, find_registry_binary
from vigil.intel.loader import load_osv
from vigil.intel.store import AdvisoryStore
from vigil.registry.client import RegistryClient
from vigil.registry.config import RegistryConfig
from vigil.service.app import create_app
from vigil.service.settings import Settings
from vigil.service.store.tokens import has_admin, issue_token

CLUSTER = "demo"
EXPECTED_FINDINGS = (
    "tag_moved",
    "digest_mismatch",
    "artifact_missing",
    "untrusted_registry",
    "vulnerable_package",
    "malicious_package",
)


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


ADVISORIES = [
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
]


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

    # -- set-up -------------------------------------------------------------------------------

    def start(self, say: Callable[[str], None] = print) -> "Demo":
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
            trust_file=trust,
            registry_config=registries,
            integrity_background=True,
            contents_background=True,
            reverify_interval=60.0,
        )
        app = create_app(settings)
        with app.state.engine.begin() as conn:
            if not has_admin(conn):
                self.admin_token = issue_token(conn, role="admin", name="demo-admin").secret
            registration = issue_token(conn, role="registration", name="demo-controller").secret
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_config=None, access_log=False))
        t = threading.Thread(target=self.server.run, name="vigil-demo-service", daemon=True)
        t.start()
        self.threads.append(t)
        wait_for_port(self.port, 30)
        self.url = f"http://127.0.0.1:{self.port}"

        say("starting the test Kubernetes API server with the sample cluster")
        self.kube = KubeAPIServer().start()
        self._load_cluster(host, digests)
        kubeconfig = self.kube.write_kubeconfig(self.work / "kubeconfig")

        say("starting the controller")
        self.controller = subprocess.Popen(
            [
                sys.executable, "-m", "vigil.cli", "controller",
                "--service", self.url,
                "--registration-token", registration,
                "--cluster-name", CLUSTER,
                "--credential-file", str(self.work / "controller-credential.json"),
                "--kubeconfig", str(kubeconfig),
                "--log-level", "WARNING",
            ],
            stdout=subprocess.DEVNULL,
            stderr=open(self.work / "controller.log", "wb"),  # noqa: SIM115 - lives as long as the process
        )
        return self

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
        return d

    def _load_cluster(self, host: str, d: dict[str, str]) -> None:
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

        def deployment(ns: str, name: str, image: str, repo_digest: str | None, replicas: int = 2) -> None:
            dep = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": _meta(name, ns), "spec": {"replicas": replicas}}
            rs = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": _meta(f"{name}-5d8f7c", ns, dep), "spec": {"replicas": replicas}}
            store.create(dep)
            store.create(rs)
            for i in range(replicas):
                store.create(_pod(f"{name}-5d8f7c-{i}", ns, rs, ("node-a", "node-b")[i % 2], image, repo_digest))

        deployment("shop", "web", f"{host}/shop/web:1.0", f"{host}/shop/web@{d['web']}")
        deployment("shop", "api", f"{host}/shop/api:2.1", f"{host}/shop/api@{d['api']}")
        deployment("shop", "worker", f"{host}/shop/worker:3.0", f"{host}/shop/worker@{d['worker']}", replicas=1)
        deployment("edge", "miner", "quay.io/cryptominer/xmrig:6.21", "quay.io/cryptominer/xmrig@sha256:" + "e" * 64, replicas=1)
        cron = {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": _meta("report", "batch"), "spec": {"schedule": "0 * * * *"}}
        job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": _meta("report-29001", "batch", cron), "spec": {}}
        store.create(cron)
        store.create(job)
        store.create(_pod("report-29001-x7k2p", "batch", job, "node-a", f"{host}/batch/report:0.9", f"{host}/batch/report@{d['report']}"))

    # -- running ------------------------------------------------------------------------------

    def findings_by_type(self, token: str) -> dict[str, int]:
        resp = httpx.get(f"{self.url}/api/v1/findings", params={"status": "open", "limit": 1000}, headers={"Authorization": f"Bearer {token}"})
        resp.raise_for_status()
        out: dict[str, int] = {}
        for f in resp.json()["items"]:
            out[f["type"]] = out.get(f["type"], 0) + 1
        return out

    def wait_for_findings(self, token: str, timeout: float) -> dict[str, int]:
        deadline = time.monotonic() + timeout
        seen: dict[str, int] = {}
        while time.monotonic() < deadline:
            seen = self.findings_by_type(token)
            if all(t in seen for t in EXPECTED_FINDINGS):
                return seen
            if self.controller is not None and self.controller.poll() is not None:
                raise DemoError(f"the controller exited ({self.controller.returncode}); see {self.work / 'controller.log'}")
            time.sleep(1)
        missing = [t for t in EXPECTED_FINDINGS if t not in seen]
        raise DemoError(f"after {timeout:.0f}s these findings had not appeared: {', '.join(missing)} (have: {seen})")

    def stop(self) -> None:
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
