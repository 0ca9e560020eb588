"""In a browser: the desk's client table is searched on the server and swapped in place; the new
table's socket follows exactly the rows it shows, and bad input gets a clear answer."""

import re

import pytest

from tests.e2e.conftest import login, wait_for_function

pytestmark = pytest.mark.slow

ROWS = "#client-table tbody tr[id^=client-]"


def test_search_swaps_the_table_and_its_socket_follows_the_rows(page, live_desk):
    frames = []  # (socket url, message) for every message any socket of the page received
    page.on("websocket", lambda ws: ws.on("framereceived", lambda message: frames.append((ws.url, str(message)))))
    login(page, live_desk, "trader")
    wait_for_function(page, "document.getElementById('feed-state').textContent.trim() === 'live'", timeout=15_000)
    assert page.locator(ROWS).count() == 12 and "1–12 of 12" in page.inner_text("#desk-showing")
    with page.expect_websocket(lambda ws: re.search(r"clients=\d+$", ws.url) is not None) as opened:
        page.fill("#desk-q", "aarav")  # one client: the new table's socket asks for one row
    wait_for_function(page, f"document.querySelectorAll('{ROWS}').length === 1")
    assert re.search(r"[?&]q=aarav", page.url)  # the search is in the address bar: reload and back work
    row_id = page.locator(ROWS).first.get_attribute("id").removeprefix("client-")
    assert opened.value.url.endswith(f"clients={row_id}")
    for _ in range(150):  # its snapshot: the totals and that one row
        if any(
            url == opened.value.url and f'id="client-{row_id}"' in m and 'id="desk-totals"' in m for url, m in frames
        ):
            break
        page.wait_for_timeout(100)
    else:
        raise AssertionError(f"no snapshot on {opened.value.url}")
    page.fill("#desk-q", "")
    wait_for_function(page, f"document.querySelectorAll('{ROWS}').length === 12")


def test_a_bad_page_number_is_explained(page, live_desk):
    login(page, live_desk, "viewer")
    response = page.goto(live_desk + "/?page=abc")
    assert response.status == 400 and "Page must be a whole number from 1" in page.inner_text("main")
