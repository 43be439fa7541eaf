"""Service settings: flags, then environment (VIGIL_*), then defaults."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from vigil.service.store.db import default_database_url


def default_data_dir() -> Path:
    env = os.environ.get("VIGIL_DATA_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "vigil"


@dataclass
class Settings:
    data_dir: Path = field(default_factory=default_data_dir)
    database_url: str | None = None
    host: str = "127.0.0.1"
    port: int = 8080
    # Bodies larger than this (after gzip decoding) are refused with 413.
    max_body_bytes: int = 256 * 1024 * 1024
    log_level: str = "info"
    # Registry trust and image integrity (issue 4): reverify every running image's tag this often.
    reverify_interval: float = 300.0
    # A YAML trust policy loaded into the store at start (replacing what it held); see docs/integrity.md.
    trust_file: Path | None = None
    # Per-registry credentials and TLS (vigil.registry.RegistryConfig); else $VIGIL_REGISTRY_CONFIG.
    registry_config: Path | None = None
    # Run integrity passes in a background thread; off by default so tests run passes themselves.
    integrity_background: bool = False
    # Image contents and vulnerabilities (issue 5): scan running images and match advisories in
    # background threads; off by default so tests run passes themselves (the CLI turns it on).
    contents_background: bool = False
    # Pull and catalog in this process (one worker); False when `vigil scanner` workers do it.
    scanner_inprocess: bool = True
    # Seconds between passes of the contents analysis and of an idle in-process scanner.
    contents_tick: float = 2.0
    # The advisory database written by `vigil intel import|sync`; default <data_dir>/intel.db.
    intel_db: Path | None = None
    # Seconds between `vigil intel sync` runs inside the service; 0 turns the schedule off.
    intel_sync_interval: float = 0.0
    # Feeds for the scheduled sync (URLs, directories, files); None: OSV's per-ecosystem exports.
    intel_feeds: list[str] | None = None
    # Alerts (issue 7, docs/alerts.md): deliver in a background thread; None follows integrity_background
    # (the service command's background switch); tests leave it off and call dispatch_once().
    alerts_background: bool | None = None
    alerts_tick: float = 1.0  # seconds between passes over the finding history
    alerts_attempts: int = 5  # per alert, including the first, before it becomes a dead letter
    alerts_retry_base: float = 1.0  # backoff: base, 2*base, 4*base ... capped at alerts_retry_max
    alerts_retry_max: float = 60.0
    alerts_timeout: float = 10.0  # per attempt (HTTP request, TCP connect and send)

    # Runtime analysis (issue 7, docs/runtime-analysis.md): analyse runtime records as they are
    # ingested, in a background thread woken by each runtime batch; off: records queue and
    # app.state.runtime_analyzer.run_pass() analyses them.
    runtime_analysis: bool = True
    runtime_tick: float = 0.5  # seconds between passes when no batch wakes the analyzer
    # A vulnerable package whose code never ran while its workload was watched this long is
    # labelled not_observed_running.
    runtime_watch_period: float = 24 * 3600.0
    runtime_label_interval: float = 30.0  # seconds between passes that relabel packages

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir).expanduser()
        if self.intel_db is None:
            self.intel_db = self.data_dir / "intel.db"
        if self.database_url is None:
            self.database_url = os.environ.get("VIGIL_DATABASE_URL") or default_database_url(self.data_dir)
