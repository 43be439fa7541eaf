"""A throwaway PostgreSQL cluster in a temp dir on a free loopback port (Debian's postgresql).

initdb refuses to run as root, so as root the cluster is owned by the `postgres`
system user that Debian's package creates.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from vigil.devtools.net import free_port


class PostgresUnavailable(RuntimeError):
    pass


def _bin(name: str) -> str:
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    found = candidates[0] if candidates else shutil.which(name)
    if not found:
        raise PostgresUnavailable(f"PostgreSQL's {name} is not installed (apt-get install postgresql)")
    return found


class ThrowawayPostgres:
    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="vigil-pg-"))
        self.port = free_port()
        self.user = "vigil"
        self._as_user: list[str] = []

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/vigil"

    def _run(self, *args: str) -> None:
        cmd = self._as_user + list(args)
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            raise PostgresUnavailable(f"{' '.join(args[:2])} failed: {proc.stderr.strip()[-800:]}")

    def start(self) -> ThrowawayPostgres:
        initdb, pg_ctl = _bin("initdb"), _bin("pg_ctl")
        data = self.dir / "data"
        if os.geteuid() == 0:
            try:
                pw = pwd.getpwnam("postgres")
            except KeyError:
                raise PostgresUnavailable(
                    "running as root and there is no 'postgres' user to own the cluster"
                ) from None
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
            self._as_user = ["runuser", "-u", "postgres", "--"]
        self._run(initdb, "-D", str(data), "-U", self.user, "--auth=trust", "-E", "UTF8", "--no-sync")
        self._run(
            pg_ctl,
            "-D",
            str(data),
            "-l",
            str(self.dir / "log"),
            "-w",
            "-o",
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off "
            "-c synchronous_commit=off -c max_connections=200",
            "start",
        )
        self._run(_bin("createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user, "vigil")
        return self

    def reset(self) -> None:
        """Drop and recreate the database: a fresh, empty store for the next test."""
        dropdb, createdb = _bin("dropdb"), _bin("createdb")
        self._run(dropdb, "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user, "--force", "vigil")
        self._run(createdb, "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user, "vigil")

    def stop(self) -> None:
        try:
            self._run(_bin("pg_ctl"), "-D", str(self.dir / "data"), "-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
