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

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir).expanduser()
        if self.database_url is None:
            self.database_url = os.environ.get("VIGIL_DATABASE_URL") or default_database_url(self.data_dir)
