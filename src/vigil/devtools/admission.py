"""A real `vigil admission` process on loopback, for tests, benchmarks and the demo.

It runs the webhook as a cluster runs it (its own process, HTTPS with a serving certificate from a
throwaway CA, the admission credential in a file), against a service the caller started.
"""

from __future__ import annotations

import signal
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx

from vigil.devtools.kubeapi.tls import make_serving_cert
from vigil.devtools.net import free_port


class WebhookProcess:
    def __init__(
        self,
        work_dir: Path,
        service_url: str,
        cluster_id: str,
        credential: str,
        *,
        registry_config: Path | None = None,
        kubeconfig: Path | None = None,
        cold_budget: float = 0.8,
        port: int | None = None,
        hosts: tuple[str, ...] = (),
    ) -> None:
        self.work_dir = work_dir
        work_dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        # Extra hosts: the Service names kube-apiserver checks when it calls through clientConfig.service.
        cert = make_serving_cert(["127.0.0.1", "localhost", *hosts])
        self.ca_pem = cert.ca_pem
        self.ca_file = work_dir / "ca.crt"
        self.ca_file.write_bytes(cert.ca_pem)
        (work_dir / "tls.crt").write_bytes(cert.cert_pem + cert.ca_pem)
        key = work_dir / "tls.key"
        key.touch(0o600)
        key.write_bytes(cert.key_pem)
        self.credential_file = work_dir / "credential"
        self.credential_file.touch(0o600)
        self.credential_file.write_text(credential)
        self.args = [
            sys.executable,
            "-m",
            "vigil.cli",
            "admission",
            "--service",
            service_url,
            "--cluster-id",
            cluster_id,
            "--credential-file",
            str(self.credential_file),
            "--listen",
            f"127.0.0.1:{self.port}",
            "--tls-cert",
            str(work_dir / "tls.crt"),
            "--tls-key",
            str(key),
            "--cold-budget",
            str(cold_budget),
        ]
        if registry_config is not None:
            self.args += ["--registry-config", str(registry_config)]
        if kubeconfig is not None:
            self.args += ["--kubeconfig", str(kubeconfig)]
        self.log = work_dir / "webhook.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cadata=self.ca_pem.decode())

    def start(self, timeout: float = 20.0) -> WebhookProcess:
        with self.log.open("ab") as out:
            self._proc = subprocess.Popen(self.args, stdout=out, stderr=subprocess.STDOUT)
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        last = "not started"
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise RuntimeError(f"vigil admission exited {self._proc.returncode}: {self.log_tail()}")
            try:
                resp = httpx.get(f"{self.url}/readyz", verify=self.ssl_context(), timeout=2)
                if resp.status_code == 200:
                    return
                last = resp.text
            except httpx.HTTPError as exc:
                last = str(exc)
            time.sleep(0.1)
        raise TimeoutError(f"vigil admission not ready after {timeout}s: {last}; log: {self.log_tail()}")

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None

    def __enter__(self) -> WebhookProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
