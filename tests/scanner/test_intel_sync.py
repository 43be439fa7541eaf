"""`vigil intel sync` against a real HTTP server on loopback serving OSV zips made here from the
PyPA records: conditional requests (ETag, Last-Modified), atomic swap, refusal of bad downloads,
the service's schedule and its re-match."""

from __future__ import annotations

import hashlib
import io
import threading
import time
import zipfile
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vigil.intel import AdvisoryStore
from vigil.intel.cli import app as intel_app
from vigil.intel.store import read_revision
from vigil.intel.sync import FeedError, FeedSyncer, check_url, default_feeds

from .expected import PYPA


def make_zip(*package_dirs: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name in package_dirs:
            for path in sorted((PYPA / name).glob("*.yaml")):
                z.writestr(f"{name}/{path.name}", path.read_bytes())
    return buf.getvalue()


class FeedServer:
    """Serves ``body`` at /PyPI/all.zip with an ETag and/or Last-Modified; answers 304 to a matching
    conditional request; records every request's conditional headers."""

    def __init__(self) -> None:
        self.body = b""
        self.etag: str | None = None
        self.last_modified: str | None = None
        self.requests: list[dict] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep test output clean
                pass

            def do_GET(self) -> None:
                server.requests.append(
                    {
                        "path": self.path,
                        "if_none_match": self.headers.get("If-None-Match"),
                        "if_modified_since": self.headers.get("If-Modified-Since"),
                    }
                )
                if self.path != "/PyPI/all.zip":
                    self.send_error(404)
                    return
                inm, ims = self.headers.get("If-None-Match"), self.headers.get("If-Modified-Since")
                if (server.etag and inm == server.etag) or (
                    not server.etag and server.last_modified and ims == server.last_modified
                ):
                    self.send_response(304)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/zip")
                self.send_header("Content-Length", str(len(server.body)))
                if server.etag:
                    self.send_header("ETag", server.etag)
                if server.last_modified:
                    self.send_header("Last-Modified", server.last_modified)
                self.end_headers()
                self.wfile.write(server.body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/PyPI/all.zip"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def serve(self, body: bytes, *, etag: bool = True, last_modified: bool = True) -> None:
        self.body = body
        self.etag = f'"{hashlib.sha256(body).hexdigest()[:16]}"' if etag else None
        self.last_modified = formatdate(time.time(), usegmt=True) if last_modified else None

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def feed():
    server = FeedServer()
    yield server
    server.close()


def count(db: Path) -> int:
    with AdvisoryStore(db) as store:
        return len(store)


def test_download_then_not_modified_then_changed(feed, tmp_path):
    db, cache = tmp_path / "intel.db", tmp_path / "feeds"
    feed.serve(make_zip("urllib3", "jinja2"))
    with FeedSyncer(db, cache) as syncer:
        first = syncer.sync_one(feed.url)
        assert (first.status, first.report.imported, first.bytes) == ("downloaded", 16, len(feed.body))
        assert feed.requests[-1]["if_none_match"] is None
        revision = read_revision(db)
        again = syncer.sync_one(feed.url)
        assert again.status == "not_modified" and again.report is None
        assert feed.requests[-1]["if_none_match"] == feed.etag
        assert read_revision(db) == revision and count(db) == 16
        feed.serve(make_zip("urllib3", "jinja2", "idna"))
        changed = syncer.sync_one(feed.url)
        assert (changed.status, changed.report.imported, changed.report.unchanged) == ("downloaded", 1, 16)
    assert read_revision(db) != revision and count(db) == 17
    cached = list(cache.glob("*.zip"))
    assert len(cached) == 1 and cached[0].read_bytes() == feed.body
    assert list(cache.glob("*.partial")) == []


def test_last_modified_alone_is_used(feed, tmp_path):
    feed.serve(make_zip("idna"), etag=False)
    with FeedSyncer(tmp_path / "intel.db", tmp_path / "feeds") as syncer:
        assert syncer.sync_one(feed.url).status == "downloaded"
        assert syncer.sync_one(feed.url).status == "not_modified"
    assert feed.requests[-1]["if_modified_since"] == feed.last_modified


def test_broken_download_keeps_the_previous_copy(feed, tmp_path):
    db, cache = tmp_path / "intel.db", tmp_path / "feeds"
    feed.serve(make_zip("idna"))
    with FeedSyncer(db, cache) as syncer:
        syncer.sync_one(feed.url)
        good = next(cache.glob("*.zip")).read_bytes()
        revision = read_revision(db)
        feed.serve(b"<html>proxy error</html>")
        report = syncer.sync([feed.url])
    [failed] = report.failed
    assert failed.error.startswith(f"feed {feed.url}: the download is not a readable zip archive")
    assert failed.error.endswith("the previous copy is kept")
    assert next(cache.glob("*.zip")).read_bytes() == good and list(cache.glob("*.partial")) == []
    assert read_revision(db) == revision


def test_urls_must_be_https_except_loopback(tmp_path):
    check_url("https://osv-vulnerabilities.storage.googleapis.com/PyPI/all.zip")
    check_url("http://127.0.0.1:8000/x.zip")
    with pytest.raises(
        FeedError, match=r"feed http://example.org/all.zip: plain http is only allowed to a loopback host; use https"
    ):
        check_url("http://example.org/all.zip")
    with pytest.raises(
        FeedError, match=r"feed ftp://example.org/all.zip: not an https URL, a local directory or a file"
    ):
        check_url("ftp://example.org/all.zip")
    assert default_feeds()[0].startswith("https://osv-vulnerabilities.storage.googleapis.com/")
    assert "https://osv-vulnerabilities.storage.googleapis.com/PyPI/all.zip" in default_feeds()


def test_cli_sync_url_and_directory(feed, tmp_path):
    feed.serve(make_zip("jinja2"))
    db = tmp_path / "intel.db"
    result = CliRunner().invoke(intel_app, ["sync", feed.url, str(PYPA / "idna"), "--db", str(db)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"{feed.url}: downloaded, ") and lines[0].endswith(
        "imported 5, updated 0, unchanged 0, rejected 0"
    )
    assert lines[1] == f"{PYPA / 'idna'}: local, imported 1, updated 0, unchanged 0, rejected 0"
    again = CliRunner().invoke(intel_app, ["sync", feed.url, "--db", str(db)])
    assert again.stdout.strip() == f"{feed.url}: not modified since the last download"
    missing = CliRunner().invoke(intel_app, ["sync", f"{feed.url}.missing", "--db", str(db)])
    assert missing.exit_code == 1
    assert missing.stdout.strip() == f"{feed.url}.missing: failed: feed {feed.url}.missing: HTTP 404 Not Found"


def test_service_schedule_syncs_and_rematches(feed, tmp_path):
    from vigil.devtools.service import LiveService

    feed.serve(make_zip("idna"))
    svc = LiveService(tmp_path / "data")
    try:
        schedule = svc.app.state.workers.intel_sync
        assert schedule.interval == 0  # off unless configured (tests, embedders)
        schedule.feeds, schedule.interval = [feed.url], 3600
        schedule.start()
        deadline = time.time() + 30
        while read_revision(svc.settings.intel_db) in (None, "0") and time.time() < deadline:
            time.sleep(0.1)
        schedule.stop()
        assert [f.status for f in schedule.last_report.feeds] == ["downloaded"]
        report = svc.app.state.workers.contents.run_pass()
        assert report.intel_reloaded and svc.app.state.workers.contents.intel.advisories == 1
    finally:
        svc.stop()
