"""In a browser: the admins' health page on a running desk (every Procfile role started by the
launcher) shows each role alive, the queues, the workers and the feed, refreshes itself by htmx
polling, fits 1024 and 1440 px without sideways scrolling, and is refused to a trader."""

import re

import pytest

from tests.e2e.conftest import SCREENSHOTS, login, wait_for_function

pytestmark = pytest.mark.slow

ROLES = ("orders", "strategies", "worker", "cron", "feed")


def fits(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth")


def test_health_page_for_an_admin_at_1440_and_1024(page, live_desk):
    login(page, live_desk, "admin")
    page.click("#nav-more summary")
    page.click("#nav-more a:has-text('Health')")
    page.wait_for_url(live_desk + "/health/page")
    for role in ROLES:  # the launcher started one of each; heartbeats may take a few seconds to show
        wait_for_function(
            page,
            "r => (document.querySelector('#role-' + r + ' .chip') || {}).textContent === 'alive'",
            role,
            timeout=30_000,
        )
    assert page.locator("#health-database").inner_text() == "ok" and page.locator("#health-redis").inner_text() == "ok"
    assert page.locator("#health-queues tbody tr").count() == 5
    assert page.locator("#health-workers tbody tr").count() >= 4  # orders, strategies, worker, backtests
    assert "orders" in page.locator("#health-workers").inner_text()
    assert page.locator("#feed-source").inner_text() == "paper"
    assert re.match(r"\d+ ticking of \d+ subscribed", page.locator("#feed-instruments").inner_text())
    assert re.search(r"\d\d:\d\d:\d\d", page.locator("#feed-lag").inner_text())
    assert "IST" in page.locator("#health-updated").inner_text()

    before = page.locator("#health-updated").inner_text()  # the panel is polled every 5 s
    wait_for_function(page, "t => document.getElementById('health-updated').textContent !== t", before, timeout=20_000)
    assert fits(page)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "health.png"), full_page=True)

    page.set_viewport_size({"width": 1024, "height": 800})
    page.click("#theme-toggle")  # light
    wait_for_function(page, "document.documentElement.dataset.theme === 'light'")
    page.wait_for_timeout(300)
    assert fits(page)
    box = page.locator("#health-processes").bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 1024

    page.goto(live_desk + "/metrics")  # the admin's session reads the metrics too
    text = page.locator("body").inner_text()
    assert re.search(r'fanout_processes\{role="orders"\} [1-9]', text) and "fanout_feed_lag_seconds" in text


def test_health_page_is_refused_to_a_trader(page, live_desk):
    login(page, live_desk, "trader")
    assert page.locator("#nav-more a:has-text('Health')").count() == 0
    response = page.goto(live_desk + "/health/page")
    assert response.status == 403
    assert page.goto(live_desk + "/metrics").status == 403
