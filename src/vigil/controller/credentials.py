"""The cluster credential: obtained by registering, then kept in a file (mode 0600) or, in a cluster, in a
Secret (``credential_secret.py``)."""

from __future__ import annotations

import json
import logging
import os
import stat
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

log = logging.getLogger(__name__)
# The Secret a controller in a pod keeps its credential in (deploy/helm/vigil gives it RBAC on this name).
DEFAULT_SECRET_NAME = "vigil-controller-credential"
# The Secret it writes for the sensors (``sensor_secret.py``), in the sensors' namespace.
DEFAULT_SENSOR_SECRET = "vigil-sensor-credential"
# The Secret it writes for the admission webhook (``admission_secret.py``), in its own namespace.
DEFAULT_ADMISSION_SECRET = "vigil-admission-credential"


class CredentialError(RuntimeError):
    pass


@dataclass(frozen=True)
class ClusterCredential:
    cluster_id: str
    credential: str
    name: str = ""
    service: str = ""

    def __repr__(self) -> str:  # never print the secret
        return f"ClusterCredential(cluster_id={self.cluster_id!r}, name={self.name!r}, service={self.service!r})"


def load_credential(path: Path) -> ClusterCredential | None:
    path = Path(path)
    if not path.exists():
        return None
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        log.warning("credential file %s is readable by others (mode %o); it should be 0600", path, mode)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CredentialError(f"credential file {path}: not readable JSON ({exc.__class__.__name__})") from None
    if not isinstance(data, dict) or not all(
        isinstance(data.get(k), str) and data.get(k) for k in ("cluster_id", "credential")
    ):
        raise CredentialError(f"credential file {path}: needs non-empty string fields cluster_id and credential")
    return ClusterCredential(
        data["cluster_id"], data["credential"], str(data.get("name", "")), str(data.get("service", ""))
    )


def save_credential(path: Path, cred: ClusterCredential) -> None:
    """Write atomically, created 0600 from the start (never briefly world-readable)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(asdict(cred), fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class CredentialStore(Protocol):
    """Where the cluster credential is kept between starts."""

    @property
    def where(self) -> str: ...

    @property
    def absent(self) -> str:
        """What a start without a credential (and no way to register) is told."""
        ...

    async def load(self) -> ClusterCredential | None: ...

    async def save(self, cred: ClusterCredential) -> ClusterCredential:
        """Keep ``cred``; returns the credential now kept (another writer's, if it got there first)."""
        ...


class FileCredentialStore:
    """A JSON file (mode 0600): for a controller run outside the cluster."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @property
    def where(self) -> str:
        return str(self.path)

    @property
    def absent(self) -> str:
        return f"no credential file at {self.path}"

    async def load(self) -> ClusterCredential | None:
        return load_credential(self.path)

    async def save(self, cred: ClusterCredential) -> ClusterCredential:
        save_credential(self.path, cred)
        return cred
