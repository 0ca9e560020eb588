"""In a browser, on the desk `make run` starts: a trader places a 12-client paper batch and watches
every child fill without reloading, exits the stock across all clients, and an admin's kill switch
flattens the desk."""
import re

import pytest

from tests.e2e.conftest import SCREENSHOTS, login

pytestmark = pytest.mark.slow


def place_batch(page, base: str, symbol: str, qty: int) -> None:
    page.goto(base + "/orders/new")
    page.fill("#instrument-q", symbol)
    page.click(f"#instrument-options .option:has-text('{symbol}')")
    page.check("input[name=action][value=BUY]")
    page.select_option("#product", "MIS")
    page.select_option("#order_type", "MARKET")
    page.fill("#fill-same", str(qty))
    page.click("button[data-fill=same]")
    page.wait_for_selector("#preview table.preview")  # the live preview came back
    page.click("#submit-ticket")
    page.wait_for_url(re.compile(r".*/orders/batches/\d+$"))


def wait_all_complete(page, count: int, timeout: float = 30_000) -> None:
    try:
        _wait(page, count, timeout)
    except Exception:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path="/tmp/e2e-failure.png", full_page=True)
        raise


def _wait(page, count: int, timeout: float) -> None:
    page.wait_for_function(
        "n => document.querySelectorAll('[id$=-status]').length === n && "
        "[...document.querySelectorAll('[id$=-status]')].every(e => e.textContent.trim() === 'COMPLETE')",
        arg=count, timeout=timeout)


def test_trader_batch_fills_live_then_exits_everything(page, live_desk):
    login(page, live_desk, "trader")
    place_batch(page, live_desk, "INFY", 5)
    url = page.url
    wait_all_complete(page, 12)
    assert page.url == url  # no reload: htmx swapped the children table in place
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "batch.png"), full_page=True)
    page.goto(live_desk + "/orders/new")
    page.fill("#instrument-q", "INFY")
    page.click("#instrument-options .option:has-text('INFY')")
    page.click("a.side-exit")
    page.check("input[aria-label='select all']")
    page.click("button:has-text('Exit selected')")
    page.wait_for_url(re.compile(r".*/orders/batches/\d+$"))
    wait_all_complete(page, 12)
    assert page.locator("td.pos:has-text('BUY')").count() == 0  # every exit child is a SELL


def test_admin_kill_switch_flattens_the_desk(page, live_desk):
    login(page, live_desk, "admin")
    place_batch(page, live_desk, "TCS", 2)
    wait_all_complete(page, 12)
    page.goto(live_desk + "/exits/desk/kill")
    page.click("button:has-text('Kill switch ON')")
    page.wait_for_selector("#desk-kill-banner")
    page.goto(live_desk + "/orders/batches")
    page.click("table.grid tbody tr:first-child a")
    wait_all_complete(page, 12)
    for client_row in range(1, 4):  # spot-check clients: flat in TCS
        page.goto(live_desk + f"/clients/{client_row}")
        assert page.locator("tr[id^=position-]:has-text('TCS') td.num").first.inner_text() == "0"
    page.goto(live_desk + "/exits/desk/kill")
    page.click("button:has-text('Re-arm')")
    page.wait_for_url(live_desk + "/")
    page.screenshot(path=str(SCREENSHOTS / "desk.png"), full_page=True)
