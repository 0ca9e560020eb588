"""In a browser, on the desk `make run` starts: a trader places a 12-client paper batch and watches
every child fill without reloading, exits the stock across all clients, and an admin's kill switch
flattens the desk."""

import re

import pytest

from tests.e2e.conftest import SCREENSHOTS, login, wait_for_function

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
        page.screenshot(path=str(SCREENSHOTS / "failure.png"), full_page=True)
        raise


def _wait(page, count: int, timeout: float) -> None:
    wait_for_function(
        page,
        "n => document.querySelectorAll('[id$=-status]').length === n && "
        "[...document.querySelectorAll('[id$=-status]')].every(e => e.textContent.trim() === 'COMPLETE')",
        arg=count,
        timeout=timeout,
    )


def watch_pnl_move(page, base: str) -> None:
    """On the desk and on a client page, the P&L and prices change by themselves (no reload)."""
    page.goto(base + "/")
    wait_for_function(page, "document.getElementById('feed-state').textContent.trim() === 'live'", timeout=15_000)
    wait_for_function(page, "document.querySelector('#desk-mtm').textContent.trim() !== '0.00'", timeout=20_000)
    first = page.inner_text("#desk-mtm")
    wait_for_function(
        page, "t => document.querySelector('#desk-mtm').textContent.trim() !== t", arg=first, timeout=20_000
    )
    page.screenshot(path=str(SCREENSHOTS / "desk.png"), full_page=True)
    page.click("#client-table tbody tr:first-child a")
    row = "tbody[id^=positions-] tr[id^=position-] td:nth-child(5)"
    page.wait_for_selector(row)
    price = page.inner_text(row)
    wait_for_function(
        page, "([sel, p]) => document.querySelector(sel).textContent.trim() !== p", arg=[row, price], timeout=20_000
    )


def test_trader_batch_fills_live_then_exits_everything(page, live_desk):
    login(page, live_desk, "trader")
    place_batch(page, live_desk, "INFY", 5)
    url = page.url
    wait_all_complete(page, 12)
    assert page.url == url  # no reload: htmx swapped the children table in place
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "batch.png"), full_page=True)
    watch_pnl_move(page, live_desk)
    page.goto(live_desk + "/orders/new")
    page.fill("#instrument-q", "INFY")
    page.click("#instrument-options .option:has-text('INFY')")
    page.click("a.side-exit")
    page.check("input[aria-label='select all']")
    page.click("button:has-text('Review exit orders')")  # the review lists each client's side and quantity
    page.click("#exit-review button[value=confirm]")
    page.wait_for_url(re.compile(r".*/orders/batches/\d+$"))
    wait_all_complete(page, 12)
    assert page.locator(".chip.side-buy").count() == 0  # every exit child is a SELL


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
    wait_for_function(page, "document.querySelector('#desk-mtm').textContent.trim() === '0.00'", timeout=20_000)


def test_ticket_preview(page, live_desk):
    login(page, live_desk, "trader")
    page.goto(live_desk + "/orders/new")
    page.fill("#instrument-q", "RELIANCE")
    page.click("#instrument-options .option:has-text('RELIANCE')")
    page.select_option("#order_type", "LIMIT")
    page.fill("#price", "1500.00")
    page.fill("#fill-same", "10")
    page.click("button[data-fill=same]")
    page.wait_for_selector("#preview table.preview tfoot")
    assert "12 of 12 will be sent" in page.inner_text("#preview")
    page.screenshot(path=str(SCREENSHOTS / "ticket.png"), full_page=True)
