"""In a browser: the desk's "worst day P&L first" board stays sorted while P&L moves live; the
desk-wide positions page filters by a bookmarkable query and exits two selected rows in one batch
(after a confirmation naming each client, side and quantity); the desk's P&L chart draws, in IST."""

import re

import pytest

from tests.e2e.conftest import SCREENSHOTS, login, wait_for_function

pytestmark = pytest.mark.slow

BOARD = "#client-table tbody tr[id^=client-]"
BOARD_PNL = f"[...document.querySelectorAll('{BOARD}')].map(r => [r.id, parseFloat(r.dataset.dayPnl)])"


def place_market(page, base: str, symbol: str, quantities: dict[int, int], side: str = "BUY") -> None:
    """A MARKET MIS ticket: the n-th client of the ticket's list gets quantities[n] (others none)."""
    page.goto(base + "/orders/new")
    page.fill("#instrument-q", symbol)
    page.click(f"#instrument-options .option:has-text('{symbol}')")
    page.check(f"input[name=action][value={side}]")
    page.select_option("#product", "MIS")
    page.select_option("#order_type", "MARKET")
    boxes = page.locator("#ticket-clients input[name^=qty_]")
    for n, qty in quantities.items():
        boxes.nth(n).fill(str(qty))
    total = sum(quantities.values())
    # the review has caught up with every quantity typed: the button names the side, total and clients
    wait_for_function(
        page,
        "t => document.getElementById('submit-ticket').textContent.includes(t)",
        arg=f"{total} {symbol} for {len(quantities)} clients",
    )
    page.wait_for_selector("#preview table.preview")
    page.click("#submit-ticket")
    try:
        page.wait_for_url(re.compile(r".*/orders/batches/\d+$"))
    except Exception as exc:  # refused: say what the ticket said, for whoever reads the failure
        raise AssertionError(page.inner_text("form#ticket")[:2000]) from exc


def test_the_pnl_sorted_board_stays_sorted_as_pnl_moves(page, live_desk):
    """Half the clients are long or short one instrument, half long or short another, in different
    sizes: as the two prices walk apart, the two halves' P&L cross each other, so the board's order
    must change live (the rows are swapped in place by id), and it must stay sorted."""
    login(page, live_desk, "trader")
    place_market(page, live_desk, "TITAN", {0: 3, 1: 6, 2: 9})
    place_market(page, live_desk, "TITAN", {3: 3, 4: 6, 5: 9}, side="SELL")
    place_market(page, live_desk, "NTPC", {6: 25, 7: 50, 8: 75})
    place_market(page, live_desk, "NTPC", {9: 25, 10: 50, 11: 75}, side="SELL")
    page.goto(live_desk + "/")
    wait_for_function(page, "document.getElementById('feed-state').textContent.trim() === 'live'", timeout=15_000)
    assert page.locator(BOARD).count() == 12 and page.input_value("#desk-sort") == "pnl"
    page.evaluate("window.fanoutNotReloaded = true")
    orders = set()
    for _ in range(600):  # up to ~2 minutes of live prices; usually a few seconds
        rows = page.evaluate(BOARD_PNL)
        values = [v for _, v in rows]
        assert values == sorted(values), f"the board is out of order: {rows}"
        orders.add(tuple(i for i, _ in rows))
        if len(orders) >= 3:  # the order changed twice, live
            break
        page.wait_for_timeout(200)
    else:
        raise AssertionError(f"the P&L never moved the board's order ({len(orders)} order(s) seen)")
    assert page.evaluate("window.fanoutNotReloaded === true")


def test_positions_page_filters_and_exits_two_selected_rows(page, live_desk):
    login(page, live_desk, "trader")
    place_market(page, live_desk, "WIPRO", {n: 2 for n in range(12)})
    page.goto(live_desk + "/positions/")
    page.fill("#pf-instrument", "wipro")
    page.select_option("#pf-product", "MIS")
    page.click("#positions-filters button[type=submit]")
    page.wait_for_url(re.compile(r".*/positions/\?instrument=wipro&client=&product=MIS$"))  # bookmarkable
    rows = "#positions-table tbody tr[id^=dpos-]"
    for _ in range(60):  # the fills reach the ledger with the next order sync
        if page.locator(rows).count() == 12:
            break
        page.wait_for_timeout(500)
        page.reload()
    assert page.locator(rows).count() == 12 and page.inner_text("#pt-count") == "12"
    assert all("WIPRO" in text for text in page.locator(f"{rows} td:nth-child(4)").all_inner_texts())
    page.screenshot(path=str(SCREENSHOTS / "positions.png"), full_page=True)

    picked = page.locator(f"{rows} .position-pick")
    names = [page.locator(rows).nth(n).locator("td:nth-child(2) a").inner_text() for n in (0, 1)]
    held = [page.locator(rows).nth(n).locator("td:nth-child(6)").inner_text().split()[0] for n in (0, 1)]
    picked.nth(0).check()
    picked.nth(1).check()
    page.click("#positions-exit")
    page.wait_for_selector("#exit-legs")
    legs = page.locator("#exit-legs tbody tr")
    assert legs.count() == 2
    for n, name in enumerate(names):  # the confirmation names each client, side and quantity
        cells = legs.nth(n).locator("td").all_inner_texts()
        assert cells[0].startswith(name) and cells[2] == "WIPRO" and cells[5] == "SELL" and cells[6] == held[n]
    assert f"SELL {sum(int(q) for q in held)}" in page.inner_text("#exit-total")
    page.click("#positions-confirm")
    page.wait_for_url(re.compile(r".*/orders/batches/\d+$"))
    wait_for_function(page, "document.querySelectorAll('tr[id^=order-]').length === 2")
    children = page.locator("tr[id^=order-]").all_inner_texts()
    assert all(any(name in child for child in children) for name in names)  # one child per picked client

    page.goto(live_desk + "/positions/?instrument=WIPRO&product=MIS")
    for _ in range(60):  # the two exits fill, and their positions leave the open book
        if page.locator(rows).count() == 10:
            break
        page.wait_for_timeout(500)
        page.reload()
    assert page.locator(rows).count() == 10 and page.inner_text("#pt-count") == "10"


def test_viewer_sees_positions_without_exit_controls(page, live_desk):
    login(page, live_desk, "viewer")
    page.goto(live_desk + "/positions/")
    assert page.locator("#positions-table").count() == 1
    assert page.locator(".position-pick, #positions-exit, form[action$='/exits/position']").count() == 0


@pytest.mark.parametrize("width, theme", [(1440, "dark"), (1024, "light")])
def test_the_desk_pnl_chart_draws_in_ist(page, live_desk, width, theme):
    page.set_viewport_size({"width": width, "height": 900})
    login(page, live_desk, "trader")
    if page.evaluate("document.documentElement.dataset.theme") != theme:
        page.click("#theme-toggle")
        page.reload()
    assert page.evaluate("document.documentElement.dataset.theme") == theme
    wait_for_function(page, "Number(document.getElementById('desk-mtm-chart').dataset.drawn) >= 1")
    assert page.locator("#desk-mtm-chart canvas").count() >= 1
    last = page.evaluate(
        "(() => { const d = document.getElementById('desk-mtm-chart').fanoutSeries.data(); return d[d.length - 1]; })()"
    )
    now = page.evaluate("Date.now() / 1000")
    # the line ends now, shifted +5:30 so the axis reads IST (not UTC: 19800 s away)
    assert abs(last["time"] - (now + 19800)) < 900
    assert page.evaluate("document.getElementById('desk-mtm-chart').getBoundingClientRect().width") > 300
    if width == 1440:
        page.screenshot(path=str(SCREENSHOTS / "desk.png"), full_page=True)
