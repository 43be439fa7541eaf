"""Keeping the advisory database current: download feeds, swap them in, import.

A feed is a URL (by default OSV's per-ecosystem ``all.zip`` exports) or a local
directory or file. A URL is fetched with ``If-None-Match`` / ``If-Modified-Since``
from the previous download, so an unchanged feed costs one small request and no
import. A new download goes to a temporary file next to the cached copy, is
checked (a zip must open), and only then replaces the cached copy with an atomic
rename: a broken or partial download never replaces a good one. The import is
incremental by ``modified`` and one transaction, as for ``vigil intel import``.

URLs must be https; plain http is accepted only for loopback hosts (tests, a
local mirror), as everywhere else in Vigil.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
import time
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from vigil.loopback import is_loopback_host

from .loader import load_osv
from .report import ImportReport
from .store import AdvisoryStore

log = logging.getLogger(__name__)

OSV_EXPORT_URL = "https://osv-vulnerabilities.storage.googleapis.com/{ecosystem}/all.zip"
# What images hold: OS packages of the common base images, and language packages.
DEFAULT_ECOSYSTEMS = (
    "Debian",
    "Ubuntu",
    "Alpine",
    "Red Hat",
    "PyPI",
    "npm",
    "Go",
    "Maven",
    "crates.io",
    "RubyGems",
    "NuGet",
    "Packagist",
)
DEFAULT_MAX_BYTES = 4 << 30
_CHUNK = 1 << 20


def default_feeds() -> list[str]:
    return [OSV_EXPORT_URL.format(ecosystem=e.replace(" ", "%20")) for e in DEFAULT_ECOSYSTEMS]


UNREACHABLE_HINT = (
    "advisory feeds unreachable: without network access, load OSV advisories with "
    "`vigil intel import DIR|ZIP...` (or give --intel-feed a reachable mirror, directory or file)"
)


class FeedError(ValueError):
    """A feed that cannot be used as given; names the feed and the rule."""


def _is_unreachable(exc: BaseException) -> bool:
    """The feed's host never answered (name, route, refusal, connect timeout), as when offline."""
    return isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.ProxyError))


@dataclass
class FeedResult:
    feed: str
    status: str  # downloaded | not_modified | local | failed
    bytes: int = 0
    error: str | None = None
    report: ImportReport | None = None
    unreachable: bool = False  # failed before any answer: no route, no name, connection refused or timed out

    def describe(self) -> str:
        if self.status == "failed":
            return f"{self.feed}: failed: {self.error}"
        if self.status == "not_modified":
            return f"{self.feed}: not modified since the last download"
        r = self.report or ImportReport()
        size = f"{self.bytes / 1e6:.1f} MB, " if self.status == "downloaded" else ""
        return (
            f"{self.feed}: {self.status}, {size}imported {r.imported}, updated {r.updated}, "
            f"unchanged {r.unchanged}, rejected {len(r.rejected)}"
        )

    def as_dict(self) -> dict[str, Any]:
        r = self.report
        return {
            "feed": self.feed,
            "status": self.status,
            "bytes": self.bytes,
            "error": self.error,
            "imported": r.imported if r else 0,
            "updated": r.updated if r else 0,
            "unchanged": r.unchanged if r else 0,
            "rejected": len(r.rejected) if r else 0,
        }


@dataclass
class SyncReport:
    feeds: list[FeedResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def failed(self) -> list[FeedResult]:
        return [f for f in self.feeds if f.status == "failed"]

    @property
    def unreachable(self) -> list[FeedResult]:
        return [f for f in self.feeds if f.unreachable]

    def as_dict(self) -> dict[str, Any]:
        return {"feeds": [f.as_dict() for f in self.feeds], "seconds": round(self.seconds, 3)}


def check_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return
    if parts.scheme == "http" and parts.hostname and is_loopback_host(parts.hostname):
        return
    if parts.scheme == "http":
        raise FeedError(f"feed {url}: plain http is only allowed to a loopback host; use https")
    raise FeedError(f"feed {url}: not an https URL, a local directory or a file")


def _slug(url: str) -> str:
    readable = re.sub(r"[^A-Za-z0-9.]+", "-", urlsplit(url).path.strip("/"))[-60:].strip("-.")
    return f"{readable or 'feed'}-{hashlib.sha256(url.encode()).hexdigest()[:12]}"


def _suffix(url: str) -> str:
    suffix = Path(urlsplit(url).path).suffix.lower()
    return suffix if suffix in (".zip", ".json", ".yaml", ".yml") else ".zip"


def _is_local(feed: str) -> Path | None:
    if feed.startswith("file://"):
        return Path(urlsplit(feed).path)
    if "://" in feed:
        return None
    return Path(feed)


def _import(paths: Sequence[Path], db_path: Path) -> ImportReport:
    advisories, report = load_osv(paths)
    with AdvisoryStore(db_path) as db:
        db.upsert(advisories, report)
    return report


class FeedSyncer:
    """Downloads feeds into ``cache_dir`` and imports them into the database at ``db_path``."""

    def __init__(
        self,
        db_path: str | os.PathLike[str],
        cache_dir: str | os.PathLike[str],
        *,
        timeout: float = 300.0,
        max_bytes: int = DEFAULT_MAX_BYTES,
        client: httpx.Client | None = None,
    ) -> None:
        self.db_path = Path(db_path)
        self.cache_dir = Path(cache_dir)
        self.max_bytes = max_bytes
        self._own_client = client is None
        self.client = client or httpx.Client(timeout=httpx.Timeout(timeout, connect=15.0), follow_redirects=True)

    def close(self) -> None:
        if self._own_client:
            self.client.close()

    def __enter__(self) -> FeedSyncer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def sync(self, feeds: Sequence[str], progress: Callable[[str], None] | None = None) -> SyncReport:
        """Every feed in turn; one that fails is reported and the others go on."""
        started = time.perf_counter()
        report = SyncReport()
        for feed in feeds:
            if progress is not None:
                progress(feed)
            try:
                result = self.sync_one(feed)
            except (FeedError, httpx.HTTPError, OSError) as exc:
                result = FeedResult(
                    feed, "failed", error=str(exc) or exc.__class__.__name__, unreachable=_is_unreachable(exc)
                )
            if result.unreachable:  # said once for all of them, below: offline, every feed fails alike
                log.debug("advisory feed unreachable", extra={"feed": feed, "error": result.error})
            elif result.status == "failed":
                log.warning("advisory feed failed", extra={"feed": feed, "error": result.error})
            else:
                log.info("advisory feed synced", extra=result.as_dict())
            report.feeds.append(result)
        report.seconds = time.perf_counter() - started
        if report.unreachable:
            first = report.unreachable[0]
            log.warning(
                UNREACHABLE_HINT,
                extra={"unreachable": len(report.unreachable), "feeds": len(feeds), "first": first.describe()},
            )
        return report

    def sync_one(self, feed: str) -> FeedResult:
        local = _is_local(feed)
        if local is not None:
            if not local.exists():
                raise FeedError(f"feed {feed}: no such file or directory")
            return FeedResult(feed, "local", report=_import([local], self.db_path))
        check_url(feed)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        slug = _slug(feed)
        cached = self.cache_dir / (slug + _suffix(feed))
        state_path = self.cache_dir / (slug + ".state.json")
        state = self._read_state(state_path)
        headers = {}
        if cached.is_file() and state.get("imported"):
            if state.get("etag"):
                headers["If-None-Match"] = state["etag"]
            if state.get("last_modified"):
                headers["If-Modified-Since"] = state["last_modified"]
        with self.client.stream("GET", feed, headers=headers) as response:
            check_url(str(response.url))  # a redirect must not leave https (or loopback)
            if response.status_code == 304:
                return FeedResult(feed, "not_modified")
            if response.status_code != 200:
                raise FeedError(f"feed {feed}: HTTP {response.status_code} {response.reason_phrase}")
            fd, tmp_name = tempfile.mkstemp(prefix=slug + ".", suffix=".partial", dir=self.cache_dir)
            tmp = Path(tmp_name)
            size = 0
            digest = hashlib.sha256()
            try:
                with os.fdopen(fd, "wb") as out:
                    for chunk in response.iter_bytes(_CHUNK):
                        size += len(chunk)
                        if size > self.max_bytes:
                            raise FeedError(
                                f"feed {feed}: larger than the {self.max_bytes}-byte limit; download abandoned"
                            )
                        digest.update(chunk)
                        out.write(chunk)
                if cached.suffix == ".zip":
                    self._check_zip(feed, tmp)
                os.replace(tmp, cached)  # atomic: readers see the old file or the new one
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
            new_state = {
                "url": feed,
                "etag": response.headers.get("ETag"),
                "last_modified": response.headers.get("Last-Modified"),
                "sha256": digest.hexdigest(),
                "bytes": size,
                "fetched_at": time.time(),
                "imported": False,
            }
        # Written before the import and marked imported after it: a crash in between
        # makes the next sync download again rather than trust a 304.
        self._write_state(state_path, new_state)
        result = FeedResult(feed, "downloaded", bytes=size, report=_import([cached], self.db_path))
        self._write_state(state_path, dict(new_state, imported=True))
        return result

    def _check_zip(self, feed: str, path: Path) -> None:
        try:
            with zipfile.ZipFile(path) as archive:
                archive.infolist()
        except (zipfile.BadZipFile, OSError) as exc:
            raise FeedError(
                f"feed {feed}: the download is not a readable zip archive ({exc}); the previous copy is kept"
            ) from None

    @staticmethod
    def _read_state(path: Path) -> dict[str, Any]:
        try:
            state = json.loads(path.read_text())
        except (OSError, ValueError):
            return {}
        return state if isinstance(state, dict) else {}

    @staticmethod
    def _write_state(path: Path, state: dict[str, Any]) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        os.replace(tmp, path)


def sync_feeds(
    feeds: Sequence[str],
    db_path: str | os.PathLike[str],
    cache_dir: str | os.PathLike[str],
    progress: Callable[[str], None] | None = None,
    *,
    timeout: float = 300.0,
    max_bytes: int = DEFAULT_MAX_BYTES,
    client: httpx.Client | None = None,
) -> SyncReport:
    with FeedSyncer(db_path, cache_dir, timeout=timeout, max_bytes=max_bytes, client=client) as syncer:
        return syncer.sync(feeds, progress)
