"""In a browser: a stop-loss set on the order ticket shows as the SL chip on the client's position
row once the entry fills, without a reload. The position is exited at the end: nothing is left held
for the tests that follow."""

import math
import re

import pytest

from tests.e2e.conftest import login, wait_for_function

pytestmark = pytest.mark.slow

SYMBOL = "ITC"  # no other browser test trades it
ROW = f"#positions-1 tr[id^=position-]:has(td:text-is('{SYMBOL}'))"
CHIP_SHOWN = (
    "sym => [...document.querySelectorAll('#positions-1 tr[id^=position-]')]"
    ".some(r => r.cells[0].textContent.trim() === sym && r.cells[2].textContent.trim() !== '0' "
    "&& !!r.querySelector('.chip[title=Stop-loss]'))"
)
FLAT = (
    "sym => [...document.querySelectorAll('#positions-1 tr[id^=position-]')]"
    ".every(r => r.cells[0].textContent.trim() !== sym || r.cells[2].textContent.trim() === '0')"
)


def test_a_stop_set_on_the_ticket_shows_on_the_filled_position(page, live_desk):
    login(page, live_desk, "trader")
    page.goto(live_desk + "/clients/1")
    wait_for_function(page, "document.getElementById('feed-state').textContent.trim() === 'live'", timeout=15_000)
    page.evaluate("window.fanoutNotReloaded = true")  # gone if the page were loaded again

    ticket = page.context.new_page()
    ticket.goto(live_desk + "/orders/new")
    ticket.fill("#instrument-q", SYMBOL)
    ticket.click(f"#instrument-options .option:has-text('{SYMBOL}')")
    ticket.check("input[name=action][value=BUY]")
    ticket.select_option("#product", "MIS")
    ticket.select_option("#order_type", "MARKET")
    ticket.fill("input[name=qty_1]", "1")
    facts = ticket.inner_text("#instrument-facts")
    ltp = float(re.search(r"(?:LTP|ref) ₹?([\d,]+\.\d+)", facts).group(1).replace(",", ""))
    stop = math.floor(ltp * 0.8)  # whole rupees: on every tick grid; far below anything the simulator reaches
    ticket.fill("#stop", f"{stop}.00")
    ticket.wait_for_selector("#preview table.preview")
    assert ticket.query_selector("#preview-stop-errors") is None
    ticket.click("#submit-ticket")
    ticket.wait_for_url(re.compile(r".*/orders/batches/\d+$"))
    wait_for_function(
        ticket,
        "[...document.querySelectorAll('[id$=-status]')].some(e => e.textContent.trim() === 'COMPLETE')",
        timeout=30_000,
    )

    wait_for_function(page, CHIP_SHOWN, arg=SYMBOL, timeout=30_000)  # the row and its chip came over the socket
    chip = page.inner_text(f"{ROW} .chip[title=Stop-loss]")
    assert chip.startswith("SL") and f"{stop:,}.00" in chip.replace("₹", ""), chip
    assert page.evaluate("window.fanoutNotReloaded === true")

    with page.expect_navigation():  # leave nothing held: the row's Exit (its confirm() accepted) opens the exit batch
        page.click(f"{ROW} button:has-text('Exit')")
    page.goto(live_desk + "/clients/1")
    wait_for_function(page, FLAT, arg=SYMBOL, timeout=30_000)
    ticket.close()
