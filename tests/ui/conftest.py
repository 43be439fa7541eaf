"""A live service seeded through the ingest API and store functions, and headless Debian chromium."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from vigil.devtools.service import LiveService

from .seed import WATCH_PERIOD_S, seed

CHROMIUM = "/usr/bin/chromium"
OUTPUT = Path(os.environ.get("VIGIL_UI_OUTPUT", Path(__file__).with_name("output")))
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def console(tmp_path_factory):
    svc = LiveService(tmp_path_factory.mktemp("ui") / "data")
    # The seed runs the runtime analysis pass itself, so pages show one fixed world.
    svc.settings.runtime.background = False
    svc.app.state.workers.runtime.watch_period = WATCH_PERIOD_S
    svc.start()
    world = seed(svc)
    yield svc, world
    svc.stop()


@pytest.fixture(scope="session")
def browser():
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="Playwright for Python is not installed (pip install playwright)"
    )
    if not shutil.which(CHROMIUM):
        pytest.skip(f"Debian chromium is not installed at {CHROMIUM} (apt-get install -y chromium)")
    pw = sync_api.sync_playwright().start()
    b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
    yield b
    b.close()
    pw.stop()


@pytest.fixture(scope="session")
def output_dir() -> Path:
    OUTPUT.mkdir(parents=True, exist_ok=True)
    return OUTPUT


def sign_in(browser, url: str, token: str):
    ctx = browser.new_context(viewport={"width": 1440, "height": 900})
    page = ctx.new_page()
    page.goto(f"{url}/login")
    page.fill("#token", token)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(re.escape(url) + r"/$"))
    return ctx, page


@pytest.fixture
def admin_page(browser, console):
    svc, _ = console
    ctx, page = sign_in(browser, svc.url, svc.admin_token)
    yield page
    ctx.close()


@pytest.fixture
def viewer_page(browser, console):
    svc, _ = console
    ctx, page = sign_in(browser, svc.url, svc.token("viewer", "test-viewer"))
    yield page
    ctx.close()
