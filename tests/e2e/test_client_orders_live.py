"""In a browser: a client page's "Recent orders" follow the client's orders live (the socket's rows
carry the same id, order-N, as the page's), without a reload: a new order appears and rests OPEN,
then the same row turns CANCELLED. Nothing is left held for the tests that follow."""

import re

import pytest

from tests.e2e.conftest import login, wait_for_function

pytestmark = pytest.mark.slow

NEW_ROW_IS = (
    "([known, want]) => { const row = [...document.querySelectorAll('tr[id^=order-]')]"
    ".find(r => !known.includes(r.id)); "
    "return !!row && row.querySelector('[id$=-status]').textContent.trim() === want; }"
)


def place_resting_limit(page, base: str, symbol: str, price: str) -> None:
    """A LIMIT BUY under the market for every client: it rests at the broker (OPEN) until cancelled."""
    page.goto(base + "/orders/new")
    page.fill("#instrument-q", symbol)
    page.click(f"#instrument-options .option:has-text('{symbol}')")
    page.check("input[name=action][value=BUY]")
    page.select_option("#product", "MIS")
    page.select_option("#order_type", "LIMIT")
    page.fill("#price", price)
    page.fill("#fill-same", "1")
    page.click("button[data-fill=same]")
    page.wait_for_selector("#preview table.preview")
    page.click("#submit-ticket")
    page.wait_for_url(re.compile(r".*/orders/batches/\d+$"))


def test_a_client_pages_recent_orders_update_live(page, live_desk):
    login(page, live_desk, "trader")
    page.goto(live_desk + "/clients/1")
    wait_for_function(page, "document.getElementById('feed-state').textContent.trim() === 'live'", timeout=15_000)
    known = page.evaluate("[...document.querySelectorAll('tr[id^=order-]')].map(r => r.id)")
    page.evaluate("window.fanoutNotReloaded = true")  # gone if the page were loaded again
    ticket = page.context.new_page()
    ticket.on("dialog", lambda dialog: dialog.accept())  # the cancel's confirm()
    place_resting_limit(ticket, live_desk, "SBIN", "900.00")  # ~5% under the sample's 951.15, inside its band
    wait_for_function(page, NEW_ROW_IS, arg=[known, "OPEN"], timeout=30_000)
    ticket.click("button:has-text('Cancel open children')")
    wait_for_function(page, NEW_ROW_IS, arg=[known, "CANCELLED"], timeout=30_000)
    assert page.evaluate("window.fanoutNotReloaded === true")
    assert page.url == live_desk + "/clients/1"
