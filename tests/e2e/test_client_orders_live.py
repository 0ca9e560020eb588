"""In a browser: a client page's "Recent orders" follow the client's orders live (the socket's rows
carry the same id, order-N, as the page's), without a reload."""
import pytest

from tests.e2e.conftest import login, wait_for_function
from tests.e2e.test_orders_flow import place_batch

pytestmark = pytest.mark.slow

ROWS = "[...document.querySelectorAll('tr[id^=order-]')]"


def test_a_client_pages_recent_orders_update_live(page, live_desk):
    login(page, live_desk, "trader")
    page.goto(live_desk + "/clients/1")
    wait_for_function(page, "document.getElementById('feed-state').textContent.trim() === 'live'", timeout=15_000)
    known = page.evaluate(f"{ROWS}.map(r => r.id)")
    page.evaluate("window.fanoutNotReloaded = true")  # gone if the page were loaded again
    ticket = page.context.new_page()
    place_batch(ticket, live_desk, "SBIN", 3)  # one child per client, this one's among them
    wait_for_function(page, f"known => {ROWS}.some(r => !known.includes(r.id) && "
                            "r.querySelector('[id$=-status]').textContent.trim() === 'COMPLETE')",
                      arg=known, timeout=30_000)
    assert page.evaluate("window.fanoutNotReloaded === true")
    assert page.url == live_desk + "/clients/1"
