"""In a browser: every kind of page works under the Content-Security-Policy (no inline script, no
eval, no inline style) without a single violation in the console, and the check can see one."""

import re

import pytest

from tests.e2e.conftest import login, wait_for_function

pytestmark = pytest.mark.slow


def test_an_injected_inline_script_is_blocked_and_reported(page, live_desk):
    page.goto(live_desk + "/login")
    page.evaluate("""() => { const s = document.createElement("script");  // as an XSS would
                             s.textContent = "window.injected = true"; document.body.appendChild(s); }""")
    page.wait_for_timeout(200)
    assert page.evaluate("window.injected === undefined")
    assert any("script-src" in v for v in page.csp_violations)
    page.csp_violations.clear()  # seen, as expected: the fixture's own check stays for the rest


def test_pages_run_under_the_policy(page, live_desk):
    login(page, live_desk, "admin")
    wait_for_function(page, "document.getElementById('feed-state').textContent.trim() === 'live'", timeout=15_000)
    page.fill("#desk-q", "a")  # an htmx swap and a new socket
    page.wait_for_timeout(500)
    page.click("#client-table tbody tr:first-child a")  # the client page and its P&L chart
    page.wait_for_selector("#pnl-chart canvas", timeout=10_000)
    page.goto(live_desk + "/instruments/")
    page.fill("input[name=q]", "INFY")  # active search (htmx), then the instrument page and its candle chart
    page.click("#instrument-results a[href*='/instruments/']")
    page.wait_for_selector("#candle-chart canvas", timeout=10_000)
    instrument_id = page.url.rstrip("/").rsplit("/", 1)[1]
    page.goto(f"{live_desk}/exits/{instrument_id}")
    page.click("input[data-check-all]")  # forms.js
    page.goto(live_desk + "/orders/new")
    page.fill("#instrument-q", "INFY")  # the ticket's active search (htmx) and its script
    page.click("#instrument-options .option:has-text('INFY')")
    for path in ("/orders/", "/orders/batches", "/admin/users", "/admin/audit", "/exits/desk/kill", "/nothing-here"):
        page.goto(live_desk + path)
    page.goto(live_desk + "/admin/users")
    page.click("#theme-toggle")  # theme.js
    assert re.match(r"(light|dark)", page.evaluate("document.documentElement.dataset.theme"))
