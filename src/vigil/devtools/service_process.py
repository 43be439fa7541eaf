"""A real `vigil service` in a child process, for tests and benchmarks of several replicas.

Unlike ``LiveService`` (uvicorn in a thread of the test's process) each one is its own process
with its own background workers, so it can be killed (SIGKILL) like a crashed replica. Its JSON log
lines (stderr) are kept in a file so a test can read what it did.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import httpx

from vigil.devtools.net import free_port


class ServiceProcess:
    def __init__(
        self,
        data_dir: Path,
        database_url: str | None = None,
        *,
        env: Mapping[str, str] | None = None,
        args: tuple[str, ...] = (),
    ) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = data_dir.parent / f"{data_dir.name}.log"
        argv = [sys.executable, "-m", "vigil.cli", "service", "--data-dir", str(data_dir), "--port", str(self.port)]
        if database_url:
            argv += ["--database-url", database_url]
        self.argv = [*argv, "--log-level", "info", *args]
        self.env = {**os.environ, **(env or {})}
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, timeout: float = 60.0) -> ServiceProcess:
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                self.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=self.env
            )
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"vigil service did not start ({self.argv}):\n{self.output()[-4000:]}")
            time.sleep(0.2)

    def run_to_exit(self, timeout: float = 60.0) -> tuple[int, str]:
        """Run the command expecting it to end (a refused start): its exit status and output."""
        done = subprocess.run(self.argv, capture_output=True, env=self.env, timeout=timeout, check=False)
        return done.returncode, (done.stdout + done.stderr).decode(errors="replace")

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_records(self) -> list[dict]:
        """The JSON log lines the service wrote so far (other lines skipped)."""
        records = []
        for line in self.output().splitlines():
            if line.startswith("{"):
                try:
                    records.append(json.loads(line))
                except ValueError:
                    continue
        return records

    def kill(self) -> None:
        """SIGKILL: the replica dies as in a crash, holding its leases."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self, timeout: float = 30.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
