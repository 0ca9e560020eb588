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


def children(page) -> list[dict]:
    """The batch page's children as shown: client, instrument, side, product, quantity and status."""
    return page.evaluate(
        """() => [...document.querySelectorAll('tr[id^=order-]')].map(row => {
            const cells = [...row.cells].map(c => c.textContent.trim());
            return {client: cells[0], symbol: cells[1], side: cells[2], product: cells[3], qty: cells[4],
                    status: row.querySelector('[id$=-status]').textContent.trim()};
        })"""
    )


def client_links(page, base: str) -> dict[str, str]:
    """Client name → its page, from the desk's client table."""
    page.goto(base + "/")
    return page.evaluate(
        "() => Object.fromEntries([...document.querySelectorAll('#client-table tbody tr[id^=client-]')]"
        ".map(row => { const a = row.querySelector('td:first-child a'); return [a.textContent.trim(), a.href]; }))"
    )


def open_position_row(page, symbol: str, product: str) -> str | None:
    """The id of the client page's open position row in this instrument and product."""
    return page.evaluate(
        """([symbol, product]) => {
            const row = [...document.querySelectorAll('tr[id^=position-]')].find(r =>
                r.cells[0].textContent.trim() === symbol && r.cells[1].textContent.trim() === product &&
                r.cells[2].textContent.trim() !== '0');
            return row ? row.id : null;
        }""",
        [symbol, product],
    )


def watch_pnl_move(page, base: str, client: str) -> None:
    """On the desk and on a client page, the P&L and prices change by themselves (no reload).

    The client is one the batch just filled, reached from its desk row: the board is sorted worst
    day P&L first, so its first row may be a client with nothing open (the session's other tests
    trade and exit too), and a flat position is not repriced. Its open INFY position is."""
    page.goto(base + "/")
    wait_for_function(page, "document.getElementById('feed-state').textContent.trim() === 'live'", timeout=15_000)
    wait_for_function(page, "document.querySelector('#desk-mtm').textContent.trim() !== '0.00'", timeout=20_000)
    first = page.inner_text("#desk-mtm")
    wait_for_function(
        page, "t => document.querySelector('#desk-mtm').textContent.trim() !== t", arg=first, timeout=20_000
    )
    page.screenshot(path=str(SCREENSHOTS / "desk.png"), full_page=True)
    page.click(f"#client-table tbody tr[id^=client-] td:first-child a:text-is('{client}')")
    page.wait_for_selector("tbody[id^=positions-] tr[id^=position-]")
    position = open_position_row(page, "INFY", "MIS")
    assert position, f"{client}'s page shows no open INFY MIS position"
    wait_for_function(page, "document.getElementById('feed-state').textContent.trim() === 'live'", timeout=15_000)
    ltp = f"#{position} td:nth-child(5)"  # looked up afresh each time: the socket swaps the whole tbody
    price = page.inner_text(ltp)
    wait_for_function(
        page, "([sel, p]) => document.querySelector(sel).textContent.trim() !== p", arg=[ltp, price], timeout=20_000
    )


def test_trader_batch_fills_live_then_exits_everything(page, live_desk):
    login(page, live_desk, "trader")
    place_batch(page, live_desk, "INFY", 5)
    url = page.url
    wait_all_complete(page, 12)
    assert page.url == url  # no reload: htmx swapped the children table in place
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "batch.png"), full_page=True)
    watch_pnl_move(page, live_desk, children(page)[0]["client"])
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


def rearm_desk(page, base: str) -> None:
    """Re-arm the desk kill switch if it is on (the session's later tests place orders)."""
    page.goto(base + "/exits/desk/kill")
    if page.locator("button:has-text('Re-arm')").count():
        page.click("button:has-text('Re-arm')")
        page.wait_for_url(base + "/")


def test_admin_kill_switch_flattens_the_desk(page, live_desk):
    login(page, live_desk, "admin")
    rearm_desk(page, live_desk)  # whatever an earlier test left, the desk takes orders
    place_batch(page, live_desk, "TCS", 2)
    wait_all_complete(page, 12)
    tcs_batch = int(page.url.rsplit("/", 1)[1])
    bought = children(page)
    clients = {c["client"] for c in bought}
    assert len(clients) == 12
    links = client_links(page, live_desk)
    try:
        page.goto(live_desk + "/exits/desk/kill")
        page.click("button:has-text('Kill switch ON')")
        page.wait_for_selector("#desk-kill-banner")
        # the kill's square-off: the admin's kill-switch batch after the TCS one (not "the first batch":
        # earlier tests may have left other intraday positions, so it has a child for each of those too)
        page.goto(live_desk + "/orders/batches")
        kills = page.evaluate(
            """after => [...document.querySelectorAll('tbody tr[id^=batch-]')]
                .filter(row => +row.id.slice(6) > after && row.cells[2].textContent.trim() === 'kill_switch'
                               && row.cells[8].textContent.trim() === 'admin')
                .map(row => row.querySelector('a').href)""",
            tcs_batch,
        )
        assert len(kills) == 1, f"the desk kill made {len(kills)} square-off batches"
        page.goto(kills[0])
        wait_all_complete(page, page.locator("[id$=-status]").count())  # every child COMPLETE, however many
        squared_off = children(page)
        tcs = [c for c in squared_off if c["symbol"] == "TCS" and c["product"] == "MIS"]
        assert {c["client"] for c in tcs} >= clients  # every client's TCS was squared off...
        assert all(c["side"] == "SELL" for c in tcs)  # ...by selling what the batch bought
        for client in sorted(clients):  # and every client's page shows it flat in TCS
            page.goto(links[client])
            row = open_position_row(page, "TCS", "MIS")
            assert row is None, f"{client} still holds TCS MIS after the desk kill"
            assert page.locator("tr[id^=position-]:has(td:text-is('TCS'))").count()  # the position, now 0
        page.goto(live_desk + "/")  # the whole desk is flat: nothing open is marked to market
        wait_for_function(page, "document.querySelector('#desk-mtm').textContent.trim() === '0.00'", timeout=20_000)
    finally:
        rearm_desk(page, live_desk)
    page.goto(live_desk + "/exits/desk/kill")
    assert page.locator("button:has-text('Kill switch ON')").count() == 1  # re-armed: new orders go out again


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
