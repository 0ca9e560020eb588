"""Browser tests: the desk as `make run` starts it (real gunicorn, RQ worker, rq cron, embedded
Redis, SQLite), driven by Playwright in the system Chromium (Debian's `chromium` package)."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.test_launcher import free_port, group_alive

ROOT = Path(__file__).resolve().parent.parent.parent
# the README's screenshots are refreshed on request (FANOUT_UPDATE_SCREENSHOTS=1); otherwise to a scratch dir
SCREENSHOTS = (ROOT / "docs" / "screenshots" if os.environ.get("FANOUT_UPDATE_SCREENSHOTS")
               else Path(os.environ.get("TMPDIR", "/tmp")) / "fanout-screenshots")


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="session")
def live_desk(tmp_path_factory):
    """The whole desk on embedded defaults; yields its base URL."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY")}
    env.update(FANOUT_INSTANCE=str(tmp_path_factory.mktemp("desk")), PORT=str(port), WEB_CONCURRENCY="2")
    log = open(tmp_path_factory.mktemp("log") / "desk.log", "w+")
    process = subprocess.Popen([sys.executable, "-m", "webapp.launcher"], cwd=ROOT, env=env, start_new_session=True,
                               stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None, "the desk did not start"
            try:
                if requests.get(base + "/health/ready", timeout=5).status_code == 200:
                    break
            except requests.RequestException:  # not listening yet, or still booting its workers
                pass
            assert time.monotonic() < deadline, "the desk did not become ready in 90 s"
            time.sleep(0.3)
        yield base
    except BaseException:
        log.seek(0)
        print(log.read()[-5000:])
        raise
    finally:
        if group_alive(process.pid):
            os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


@pytest.fixture(scope="session")
def browser():
    path = chromium_path()
    if path is None:
        if os.environ.get("FANOUT_REQUIRE_BROWSER"):
            pytest.fail("Chromium is required here (FANOUT_REQUIRE_BROWSER is set) but not installed")
        pytest.skip("no system Chromium: install Debian's `chromium` package to run the browser tests")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())  # the confirm() steps
    yield page
    context.close()


def login(page, base: str, username: str, password: str = "fanout-demo") -> None:
    page.goto(base + "/login")
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("button[type=submit]")
    page.wait_for_url(base + "/")
