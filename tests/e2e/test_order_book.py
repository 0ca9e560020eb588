"""In a browser, on the desk `make run` starts: a trader searches the order book by symbol, changes one
open LIMIT order's price from its row and sees the new price arrive, cancels another and sees who
cancelled it; a bad price is refused next to its field."""

import json
import re
import uuid
from decimal import ROUND_DOWN, Decimal

import pytest

from tests.e2e.conftest import SCREENSHOTS, login, wait_for_function

pytestmark = pytest.mark.slow


def place_open_limits(page, base: str, symbol: str, clients: int) -> tuple[list[int], Decimal, Decimal]:
    """A BUY LIMIT ticket below the market for the first `clients` of the trader's clients, posted as
    the ticket's form posts it (this test is about the book, not the ticket's screen). Returns the
    children's ids, their price and the instrument's tick."""
    options = page.request.get(f"{base}/orders/instrument-options?q={symbol}").text()
    found = re.search(r'data-id="(\d+)" data-facts="[^"]*ref ([\d,]+\.\d+) · tick ([\d.]+)"', options)
    assert found, options
    instrument_id, ref, tick = found.group(1), Decimal(found.group(2).replace(",", "")), Decimal(found.group(3))
    price = (ref * Decimal("0.97") / tick).to_integral_value(ROUND_DOWN) * tick  # rests: below the market
    page.goto(f"{base}/orders/new?instrument_id={instrument_id}")
    client_ids = page.eval_on_selector_all("input[name^=qty_]", "els => els.map(e => e.name.slice(4))")[:clients]
    token = json.loads(page.get_attribute("body", "hx-headers"))["X-CSRFToken"]
    form = {
        "ticket_id": str(uuid.uuid4()),
        "instrument_id": instrument_id,
        "action": "BUY",
        "product": "MIS",
        "order_type": "LIMIT",
        "price": str(price),
        "validity": "DAY",
        **{f"qty_{c}": "1" for c in client_ids},
    }
    answer = page.request.post(f"{base}/orders/new", form=form, headers={"X-CSRFToken": token})
    batch = re.search(r"/orders/batches/(\d+)$", answer.url)
    assert answer.ok and batch, (answer.status, answer.url)
    page.goto(f"{base}/orders/?batch={batch.group(1)}")
    ids = [int(i) for i in page.eval_on_selector_all("#book-rows tr[id^=order-]", "els => els.map(e => e.id.slice(6))")]
    assert len(ids) == clients
    return ids, price, tick


def status(page, order_id: int) -> str:
    return page.inner_text(f"#order-{order_id}-status").strip()


def test_search_modify_and_cancel_from_the_order_book(page, live_desk):
    login(page, live_desk, "trader")
    (changed, cancelled), price, tick = place_open_limits(page, live_desk, "INFY", 2)
    for _ in range(60):  # the send job and the sync that follows: PLACED, then OPEN at the exchange
        if status(page, changed) == "OPEN" and status(page, cancelled) == "OPEN":
            break
        page.wait_for_timeout(500)
        page.reload()
    assert (status(page, changed), status(page, cancelled)) == ("OPEN", "OPEN")

    # search by symbol: the results (and the URL, a bookmark) follow as it is typed
    page.goto(live_desk + "/orders/")
    page.fill("#book-symbol", "INF")
    page.wait_for_url(re.compile(r".*symbol=INF.*"))
    wait_for_function(page, "document.querySelectorAll('#book-rows tr[id^=order-]').length > 0")
    symbols = page.eval_on_selector_all(
        "#book-rows tr[id^=order-] td:nth-child(5)", "els => els.map(e => e.textContent)"
    )
    assert symbols and set(symbols) == {"INFY"}
    page.select_option("#book-status", "open")
    page.wait_for_url(re.compile(r".*status=open.*"))
    page.goto(page.url)  # the search is a bookmark: loaded afresh, the same rows
    assert page.input_value("#book-symbol") == "INF" and page.input_value("#book-status") == "open"
    page.wait_for_selector(f"#order-{changed}")
    wait_for_function(page, "document.getElementById('feed-state').textContent.trim() === 'live'", timeout=15_000)

    # a bad price: the message next to the field, nothing changed
    page.click(f"#order-{changed}-modify summary")
    page.fill(f"#order-{changed}-price", "abc")
    page.click(f"#order-{changed}-modify button[type=submit]")
    page.wait_for_selector(f"#order-{changed}-price-error")
    assert "digits 0-9" in page.inner_text(f"#order-{changed}-price-error")
    assert page.inner_text(f"#order-{changed} td:nth-child(10)").replace(",", "") == f"{price:.2f}"

    # a new price: sent by a job, the row follows over the socket
    new_price = price - tick * 10
    page.fill(f"#order-{changed}-price", str(new_price))
    page.click(f"#order-{changed}-modify button[type=submit]")
    wait_for_function(
        page,
        "([id, p]) => document.querySelector(`#order-${id} td:nth-child(10)`).textContent.replace(/,/g, '') === p",
        arg=[changed, f"{new_price:.2f}"],
    )

    # cancel another: the reason names who cancelled it
    page.click(f"#order-{cancelled}-cancel")  # its confirm() is accepted by the page fixture
    wait_for_function(
        page,
        "id => document.getElementById(`order-${id}-status`).textContent.trim() === 'CANCELLED'",
        arg=cancelled,
    )
    assert "Cancelled by trader" in page.inner_text(f"#order-{cancelled} td.detail")
    assert page.query_selector(f"#order-{cancelled}-cancel") is None  # final: no actions left
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "orders.png"), full_page=True)

    # the trade book, at the narrower width too
    page.set_viewport_size({"width": 1024, "height": 800})
    page.goto(live_desk + "/orders/trades")
    page.wait_for_selector("#trades-count")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
