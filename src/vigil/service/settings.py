"""Service settings: flags, then environment (VIGIL_*), then defaults.

Each background worker has one nested settings object with one ``background`` flag: on, the
worker runs in its own thread while the app serves; off, it does nothing until a caller runs its
pass (tests, ``POST /api/v1/.../run``). ``vigil up`` and ``vigil service`` turn every flag on.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from vigil.service.analysis.alerts.destinations import DestinationPolicy
from vigil.service.store.db import default_database_url


def default_data_dir() -> Path:
    env = os.environ.get("VIGIL_DATA_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "vigil"


def env_int(name: str, default: int) -> int:
    """A positive integer from the environment, else ``default``."""
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"{name}={raw!r} must be a positive integer")
    return value


@dataclass
class IntegritySettings:
    """Registry trust and image integrity (docs/integrity.md)."""

    background: bool = False
    tick: float = 2.0  # seconds between passes over images that are due
    # Reverify every running image's tag this often.
    reverify_interval: float = 300.0
    # Requests at a time to any one registry during a pass (tag HEADs, then provenance fetches).
    registry_concurrency: int = 8
    # A YAML trust policy loaded into the store at start (replacing what it held).
    trust_file: Path | None = None
    # The Sigstore trusted root (JSON) keyless signatures are checked against; None: the public-good root
    # the sigstore package ships (docs/signatures.md).
    sigstore_trusted_root: Path | None = None


@dataclass
class ContentsSettings:
    """Image contents and vulnerabilities: the scanner, the matcher and the advisory sync."""

    background: bool = False
    tick: float = 2.0  # seconds between passes of the matcher and of an idle in-process scanner
    # Pull and catalog in this process (one worker); False when `vigil scanner` workers do it.
    scanner_inprocess: bool = True
    # Claims of one scan job (a worker's lease running out counts as one) before it stays failed.
    scan_attempts: int = 3
    # Seconds between `vigil intel sync` runs inside the service; 0 turns the schedule off.
    intel_sync_interval: float = 0.0
    # Feeds for the scheduled sync (URLs, directories, files); None: OSV's per-ecosystem exports.
    intel_feeds: list[str] | None = None


@dataclass
class RuntimeSettings:
    """Runtime analysis (docs/runtime-analysis.md). On by default: each runtime batch wakes it."""

    background: bool = True
    # Seconds between passes when nothing wakes the analyzer: a runtime batch wakes it on any replica
    # (jobs/wakeups.py); a finished scan or a new advisory match waits for this.
    tick: float = field(default_factory=lambda: env_positive("VIGIL_RUNTIME_TICK", 0.5))
    # A vulnerable package whose code never ran while its workload was watched this long is
    # labelled not_observed_running.
    watch_period: float = 24 * 3600.0
    label_interval: float = 30.0  # seconds between passes that relabel packages


@dataclass
class AlertsSettings:
    """Alert delivery (docs/alerts.md)."""

    background: bool = False
    tick: float = 1.0  # seconds between passes over the finding history
    attempts: int = 5  # per alert, including the first, before it becomes a dead letter
    retry_base: float = 1.0  # backoff: base, 2*base, 4*base ... capped at retry_max
    retry_max: float = 60.0
    timeout: float = 10.0  # per attempt (HTTP request, TCP connect and send)
    # Where outputs may send (comma-separated host names, *.domains, addresses and ranges, each with an
    # optional :port); empty: public addresses only (docs/alerts.md).
    destinations: DestinationPolicy = field(
        default_factory=lambda: DestinationPolicy.parse(os.environ.get("VIGIL_ALERT_DESTINATIONS"))
    )


def env_positive(name: str, default: float, unit: str = "seconds") -> float:
    """A positive finite number (of ``unit``) from the environment, else ``default``."""
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if not value > 0 or value == float("inf"):
        raise ValueError(f"{name}={raw!r} must be a positive number of {unit}")
    return value


@dataclass
class ReplicaSettings:
    """Several service processes on one PostgreSQL (docs/architecture.md, Replicas)."""

    # A job lease holds this long without a renewal: a replica that dies has its jobs taken over
    # by another within it. Renewed every third of it.
    lease_seconds: float = field(default_factory=lambda: env_positive("VIGIL_JOB_LEASE_SECONDS", 15.0))


@dataclass
class RetentionSettings:
    """What the store forgets, and how gently (docs/settings.md, Retention)."""

    background: bool = False
    # Runtime records, file and kernel activity, preventions, admission decisions, applied batch ids
    # and finding history not seen or changed for this long are deleted; open findings stay.
    period_days: float = field(default_factory=lambda: env_positive("VIGIL_RETENTION_DAYS", 10.0, "days"))
    interval: float = field(default_factory=lambda: env_positive("VIGIL_RETENTION_INTERVAL", 3600.0))
    batch_rows: int = field(default_factory=lambda: env_int("VIGIL_RETENTION_BATCH_ROWS", 1000))
    # Between two batches, so ingest and analysis take the write lock in between.
    pause: float = field(default_factory=lambda: env_positive("VIGIL_RETENTION_PAUSE", 0.1))


@dataclass
class Settings:
    data_dir: Path = field(default_factory=default_data_dir)
    database_url: str | None = None
    host: str = "127.0.0.1"
    port: int = 8080
    # The URL people reach the service at, when a proxy terminates TLS in front of it: an https URL
    # marks the console's cookie Secure even though requests arrive here over plain HTTP.
    external_url: str | None = None
    # Request body limits after gzip decoding (413 beyond them); docs/security.md says why each.
    # The ingest routes, authenticated:
    max_body_bytes: int = field(default_factory=lambda: env_int("VIGIL_MAX_INGEST_BODY_BYTES", 256 * 1024 * 1024))
    # Every other route, authenticated:
    max_other_body_bytes: int = field(default_factory=lambda: env_int("VIGIL_MAX_BODY_BYTES", 1024 * 1024))
    # Any route before the caller is known:
    max_preauth_body_bytes: int = field(default_factory=lambda: env_int("VIGIL_MAX_PREAUTH_BODY_BYTES", 64 * 1024))
    # Bodies over max_other_body_bytes read at once; one more gets 503 with Retry-After:
    max_large_bodies: int = field(default_factory=lambda: env_int("VIGIL_MAX_LARGE_BODIES", 4))
    log_level: str = "info"
    # Mutual TLS for controllers and sensors (docs/security.md): off, optional (a client certificate,
    # when presented, must be the service CA's and bound to the request's credential) or required
    # (cluster and sensor credentials are refused without one). Needs the service to serve TLS itself.
    client_certs: str = "off"
    # Lifetime of the client certificates the service's CA issues, in days.
    client_cert_days: int = field(default_factory=lambda: env_int("VIGIL_CLIENT_CERT_DAYS", 30))
    # Per-registry credentials and TLS (vigil.registry.RegistryConfig); else $VIGIL_REGISTRY_CONFIG.
    # Shared by the integrity evaluator and the in-process scanner.
    registry_config: Path | None = None
    # The advisory database written by `vigil intel import|sync`; default <data_dir>/intel.db.
    intel_db: Path | None = None
    integrity: IntegritySettings = field(default_factory=IntegritySettings)
    contents: ContentsSettings = field(default_factory=ContentsSettings)
    runtime: RuntimeSettings = field(default_factory=RuntimeSettings)
    alerts: AlertsSettings = field(default_factory=AlertsSettings)
    retention: RetentionSettings = field(default_factory=RetentionSettings)
    replicas: ReplicaSettings = field(default_factory=ReplicaSettings)

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir).expanduser()
        if self.external_url is not None and not self.external_url.lower().startswith(("https://", "http://")):
            raise ValueError(
                f"external URL {self.external_url!r} must start with https:// (or http:// with no TLS in front)"
            )
        if self.client_certs not in ("off", "optional", "required"):
            raise ValueError(f"client certificates {self.client_certs!r} must be off, optional or required")
        if self.intel_db is None:
            self.intel_db = self.data_dir / "intel.db"
        self.database_url = self.store_url

    @property
    def store_url(self) -> str:
        """The database in force: ``database_url``, else $VIGIL_DATABASE_URL, else SQLite under ``data_dir``."""
        return self.database_url or os.environ.get("VIGIL_DATABASE_URL") or default_database_url(self.data_dir)

    def all_in_background(self) -> Settings:
        """These settings with every worker running in the background (what the service commands run)."""
        for worker in (self.integrity, self.contents, self.runtime, self.alerts, self.retention):
            worker.background = True
        return self
