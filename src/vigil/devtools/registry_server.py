"""A throwaway OCI registry for tests: Debian's ``docker-registry`` (distribution 2.8) on loopback.

It always runs with its own config file written to a temp dir (never Debian's
``/etc/docker/registry/config.yml``, which listens on every interface):
``127.0.0.1:<free port>``, filesystem storage in the temp dir, deletes enabled,
and optionally htpasswd basic auth (bcrypt hashes made here) and TLS.

    with RegistryServer() as registry:            # anonymous, plain HTTP
        registry.host   # "127.0.0.1:41234", the name in image references
        registry.url    # "http://127.0.0.1:41234"

    with RegistryServer(users={"alice": "s3cret"}) as registry: ...

In pytest (skips, naming what is missing, when the binary is absent)::

    @pytest.fixture
    def registry(tmp_path):
        with RegistryServer.for_pytest(tmp_path) as server:
            yield server

Install: ``apt-get install docker-registry`` and ``pip install bcrypt``.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

import httpx
import yaml

BINARY_NAMES = ("docker-registry", "registry")


class RegistryServerError(RuntimeError):
    """The registry process would not start or answer; the message carries its log tail."""


def find_registry_binary() -> str | None:
    for name in BINARY_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def htpasswd_lines(users: Mapping[str, str], rounds: int = 5) -> str:
    """An htpasswd file body with bcrypt hashes, the only scheme distribution accepts.

    ``rounds`` is low on purpose: the registry checks the hash on every request
    and tests make many requests; this is never a production password file.
    """
    import bcrypt

    lines = []
    for user, password in users.items():
        if ":" in user or "\n" in user:
            raise ValueError(f"htpasswd user {user!r} cannot contain ':' or a newline")
        hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=rounds)).decode()
        lines.append(f"{user}:{hashed}")
    return "\n".join(lines) + "\n"


class RegistryServer:
    """One registry process; ``stop()``/``start()`` keep port and storage, ``close()`` removes them."""

    def __init__(
        self,
        *,
        users: Mapping[str, str] | None = None,
        tls_cert: str | os.PathLike | None = None,
        tls_key: str | os.PathLike | None = None,
        workdir: str | os.PathLike | None = None,
        port: int | None = None,
        binary: str | None = None,
        startup_timeout: float = 15.0,
    ) -> None:
        found = binary or find_registry_binary()
        if found is None:
            raise RegistryServerError("docker-registry binary not found (apt-get install docker-registry)")
        self.binary: str = found
        if (tls_cert is None) != (tls_key is None):
            raise ValueError("tls_cert and tls_key must be given together")
        self._own_workdir = workdir is None
        self.workdir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="vigil-registry-"))
        self.users = dict(users or {})
        self.tls = (Path(tls_cert), Path(tls_key)) if tls_cert and tls_key else None
        self.port = port or free_port()
        self.startup_timeout = startup_timeout
        self.storage_dir = self.workdir / "storage"
        self.config_path = self.workdir / "config.yml"
        self.log_path = self.workdir / "registry.log"
        self._process: subprocess.Popen | None = None
        self._write_config()

    def __repr__(self) -> str:
        return f"RegistryServer(url={self.url!r}, auth={'htpasswd' if self.users else 'none'}, running={self.running})"

    @property
    def host(self) -> str:
        """The registry as it appears in image references: ``127.0.0.1:<port>``."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def _write_config(self) -> None:
        self.storage_dir.mkdir(parents=True, exist_ok=True)
        config: dict = {
            "version": 0.1,
            "log": {"level": "info", "accesslog": {"disabled": False}, "formatter": "text"},
            "storage": {
                "filesystem": {"rootdirectory": str(self.storage_dir)},
                "delete": {"enabled": True},
                "maintenance": {"uploadpurging": {"enabled": False}},
            },
            "http": {
                "addr": f"127.0.0.1:{self.port}",
                "secret": secrets.token_hex(16),
                "headers": {"X-Content-Type-Options": ["nosniff"]},
            },
            "health": {"storagedriver": {"enabled": False}},
        }
        if self.tls:
            config["http"]["tls"] = {"certificate": str(self.tls[0]), "key": str(self.tls[1])}
        if self.users:
            htpasswd = self.workdir / "htpasswd"
            htpasswd.write_text(htpasswd_lines(self.users))
            htpasswd.chmod(0o600)
            config["auth"] = {"htpasswd": {"realm": "vigil-test-registry", "path": str(htpasswd)}}
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))

    def start(self) -> RegistryServer:
        if self.running:
            return self
        log = open(self.log_path, "ab")
        try:
            self._process = subprocess.Popen(
                [self.binary, "serve", str(self.config_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.workdir,
                start_new_session=True,  # a Ctrl-C in the test runner is not forwarded twice
            )
        finally:
            log.close()
        self.wait_until_ready()
        return self

    def wait_until_ready(self, timeout: float | None = None) -> None:
        """Poll ``/v2/`` until the registry answers (200, or 401 with auth on)."""
        deadline = time.monotonic() + (timeout or self.startup_timeout)
        with httpx.Client(verify=False, timeout=1.0, trust_env=False) as http:
            while time.monotonic() < deadline:
                if self._process is not None and self._process.poll() is not None:
                    raise RegistryServerError(
                        f"docker-registry exited with {self._process.returncode}: {self.log_tail()}"
                    )
                try:
                    if http.get(f"{self.url}/v2/").status_code in (200, 401):
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.05)
        raise RegistryServerError(f"docker-registry did not answer on {self.url} within the timeout: {self.log_tail()}")

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    def restart(self) -> RegistryServer:
        self.stop()
        return self.start()

    def close(self) -> None:
        """Stop and remove the temp dir (storage included) if this server created it."""
        self.stop()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def __enter__(self) -> RegistryServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @classmethod
    def for_pytest(cls, workdir: str | os.PathLike, **options) -> RegistryServer:
        """A server in pytest's ``tmp_path``; skips the test, naming the package, if the binary is missing."""
        if find_registry_binary() is None and options.get("binary") is None:
            import pytest

            pytest.skip("docker-registry binary missing (Debian package docker-registry)")
        return cls(workdir=workdir, **options)
