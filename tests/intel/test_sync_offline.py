"""Offline, an advisory sync says once that the feeds are unreachable and how to load advisories, not once a feed."""

from __future__ import annotations

import logging
import socket
from pathlib import Path

import pytest

from vigil.intel.sync import UNREACHABLE_HINT, sync_feeds


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_feeds_are_said_once_with_how_to_import(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    port = _closed_port()
    feeds = [f"http://127.0.0.1:{port}/{ecosystem}/all.zip" for ecosystem in ("Debian", "PyPI", "npm")]
    missing = tmp_path / "no-such-dir"
    with caplog.at_level(logging.INFO, logger="vigil.intel.sync"):
        report = sync_feeds([*feeds, str(missing)], tmp_path / "intel.db", tmp_path / "feeds", timeout=5)
    assert [(f.feed, f.status, f.unreachable) for f in report.feeds] == [
        *[(feed, "failed", True) for feed in feeds],
        (str(missing), "failed", False),
    ]
    assert [f.feed for f in report.unreachable] == feeds
    warnings = [
        (r.getMessage(), getattr(r, "unreachable", None)) for r in caplog.records if r.levelno >= logging.WARNING
    ]
    # The unreachable ones in one line; a feed that fails for another reason still has its own.
    assert warnings == [("advisory feed failed", None), (UNREACHABLE_HINT, 3)]
    assert "`vigil intel import DIR|ZIP...`" in UNREACHABLE_HINT
    hint = next(r for r in caplog.records if r.getMessage() == UNREACHABLE_HINT)
    assert (hint.feeds, hint.first) == (4, f"{feeds[0]}: failed: [Errno 111] Connection refused")
