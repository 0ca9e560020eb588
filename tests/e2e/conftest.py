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
SCREENSHOTS = (
    ROOT / "docs" / "screenshots"
    if os.environ.get("FANOUT_UPDATE_SCREENSHOTS")
    else Path(os.environ.get("TMPDIR", "/tmp")) / "fanout-screenshots"
)


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="session")
def live_desk(tmp_path_factory):
    """The whole desk on embedded defaults; yields its base URL."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY")}
    env.update(
        FANOUT_INSTANCE=str(tmp_path_factory.mktemp("desk")),
        PORT=str(port),
        WEB_CONCURRENCY="2",
        LOGIN_RATE_LIMIT="60 per minute",
    )  # every test logs in from 127.0.0.1; the throttle has its own tests
    log = open(tmp_path_factory.mktemp("log") / "desk.log", "w+")  # noqa: SIM115  (the desk writes it until teardown)
    process = subprocess.Popen(
        [sys.executable, "-m", "webapp.launcher"],
        cwd=ROOT,
        env=env,
        start_new_session=True,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 240  # a loaded 2-core machine boots the desk in ~100 s
        while True:
            assert process.poll() is None, "the desk did not start"
            try:
                if requests.get(base + "/health/ready", timeout=5).status_code == 200:
                    break
            except requests.RequestException:  # not listening yet, or still booting its workers
                pass
            assert time.monotonic() < deadline, "the desk did not become ready in 240 s"
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
        browser = playwright.chromium.launch(
            executable_path=path,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield browser
        browser.close()


def watch_csp(page) -> list[str]:
    """The Content-Security-Policy violations the page reports in its console, as they come (and
    htmx refusing to evaluate an expression, which the policy would otherwise need 'unsafe-eval' for)."""
    violations: list[str] = []
    page.on(
        "console",
        lambda message: (
            violations.append(f"{message.text} ({message.location.get('url')})")
            if "Content Security Policy" in message.text or "evalDisallowed" in message.text
            else None
        ),
    )
    return violations


@pytest.fixture
def page(browser):
    """A fresh browser page; whatever a test does on it, the page must break no CSP rule."""
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())  # the confirm() steps
    page.csp_violations = watch_csp(page)
    yield page
    context.close()
    assert page.csp_violations == [], "the page broke its Content-Security-Policy"


def wait_for_function(page, expression: str, arg=None, timeout: float = 30_000) -> None:
    """page.wait_for_function compiles its predicate with eval() inside the page, which the desk's
    CSP forbids; page.evaluate goes through the DevTools protocol, outside the page's policy."""
    deadline = time.monotonic() + timeout / 1000
    while not page.evaluate(expression, arg):
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout:.0f} ms for: {expression}")
        page.wait_for_timeout(100)


def login(page, base: str, username: str, password: str = "fanout-demo") -> None:
    page.goto(base + "/login")
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("button[type=submit]")
    page.wait_for_url(base + "/")
