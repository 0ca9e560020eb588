"""In a browser (issue 15's page defects): Buy and Sell look different, a position's Exit is a clear
button, the users and audit tables fit at 1440 and 1024 px in dark and light, the audit trail names
people and clients and exports what it filters, the positions export needs no dates, recent orders
have headers, there is a favicon — and the exit page ticks every holder, says how 50% rounds and
shows each client's side and quantity before anything is sent."""

import csv
import io
import re
from pathlib import Path

import pytest

from tests.e2e.conftest import SCREENSHOTS, login
from tests.e2e.test_orders_flow import place_batch, wait_all_complete

pytestmark = pytest.mark.slow

SYMBOL = "TITAN"  # no other browser test trades it
LAYOUTS = [(1440, "dark"), (1440, "light"), (1024, "dark"), (1024, "light")]


@pytest.fixture(scope="module")
def held(browser, live_desk):
    """Every demo client holds 3 TITAN intraday (bought in a browser, as a trader would)."""
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    login(page, live_desk, "trader")
    place_batch(page, live_desk, SYMBOL, 3)
    wait_all_complete(page, 12)
    context.close()
    return SYMBOL


def layout(page, width: int, theme: str) -> None:
    page.set_viewport_size({"width": width, "height": 900})
    page.evaluate(
        "t => { localStorage.setItem('fanout-theme', t); document.documentElement.dataset.theme = t; }", theme
    )


def colour(page, selector: str, prop: str = "color") -> str:
    return page.locator(selector).first.evaluate("(e, p) => getComputedStyle(e)[p]", prop)


def fits(page, table: str, box: str) -> None:
    """The table needs no sideways scroll inside its panel, and its panel stays inside the window."""
    sizes = page.evaluate(
        "([t, b]) => { const table = document.querySelector(t), box = document.querySelector(b);"
        " return [table.scrollWidth, box.clientWidth, box.getBoundingClientRect().right, innerWidth]; }",
        [table, box],
    )
    table_width, box_width, box_right, window_width = sizes
    assert table_width <= box_width and box_right <= window_width, sizes


@pytest.mark.parametrize("width, theme", LAYOUTS)
def test_sides_are_coloured_and_the_exit_button_is_clear(page, live_desk, held, width, theme):
    login(page, live_desk, "trader")
    layout(page, width, theme)
    page.goto(live_desk + "/orders/new")
    page.check("input[name=action][value=BUY]")
    buy_on = colour(page, "label.side-buy", "backgroundColor")
    sell_off = colour(page, "label.side-sell", "backgroundColor")
    page.check("input[name=action][value=SELL]")
    sell_on = colour(page, "label.side-sell", "backgroundColor")
    assert len({buy_on, sell_off, sell_on}) == 3  # a chosen side is filled, in its own colour
    assert colour(page, "label.side-buy") != colour(page, "label.side-sell")

    page.goto(live_desk + "/clients/1")
    row = f"tr[id^=position-]:has(td:text-is('{held}'))"
    button = f"{row} button.exit-position"
    page.wait_for_selector(button)
    assert page.is_enabled(button) and page.is_visible(button)
    muted = page.evaluate("getComputedStyle(document.documentElement).getPropertyValue('--muted')")
    exit_colour = colour(page, button)
    assert exit_colour != colour(page, "body") and float(colour(page, button, "opacity")) == 1
    assert colour(page, button, "borderTopStyle") == "solid" and muted.strip() not in exit_colour
    page.screenshot(path=str(SCREENSHOTS / f"client-positions-{width}-{theme}.png"), full_page=True)


def test_recent_orders_have_headers_and_positions_export_needs_no_dates(page, live_desk, held, tmp_path):
    login(page, live_desk, "trader")
    page.goto(live_desk + "/clients/1")
    table = "table:has(#client-1-orders)"
    headers = page.locator(f"{table} thead th").all_inner_texts()
    assert headers[:6] == ["#", "Time (IST)", "Batch", "Client", "Instrument", "Side"]
    cells = page.locator("#client-1-orders tr[id^=order-]").first.locator("td").count()
    assert cells == len(headers)

    page.click("a:has-text('Export positions')")
    assert page.locator("#export-positions input[type=date]").count() == 0
    with page.expect_download() as download:
        page.click("#export-positions button[type=submit]")
    saved = Path(tmp_path / "positions.csv")
    download.value.save_as(saved)
    rows = list(csv.DictReader(io.StringIO(saved.read_text(encoding="utf-8"))))
    assert any(r["instrument"].endswith(held) and int(r["quantity"]) > 0 for r in rows), rows


def test_favicon(page, live_desk):
    login(page, live_desk, "viewer")
    found = page.evaluate(
        "async () => { const link = document.querySelector('link[rel=icon]');"
        " const r = await fetch(link.href); return [r.status, r.headers.get('content-type'), await r.text()]; }"
    )
    assert found[0] == 200 and found[1].startswith("image/svg+xml") and "<svg" in found[2]


@pytest.mark.parametrize("width, theme", LAYOUTS)
def test_users_table_fits_and_a_new_user_starts_as_viewer(page, live_desk, width, theme):
    login(page, live_desk, "admin")
    layout(page, width, theme)
    username = f"many-{width}-{theme}"
    page.goto(live_desk + "/admin/users/new")
    assert page.input_value("select[name=role]") == "viewer"
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", "Sharp-trader-9x")
    for box in page.locator("input[name=clients]").all():  # every client: the longest Clients cell
        box.check()
    page.click("button:has-text('Save')")
    page.wait_for_url(live_desk + "/admin/users")
    assert page.inner_text(f"tr:has(a:text-is('{username}')) .role") == "Viewer"
    fits(page, "#users-table", "section.table-scroll")
    page.screenshot(path=str(SCREENSHOTS / f"users-{width}-{theme}.png"), full_page=True)


@pytest.mark.parametrize("width, theme", [(1440, "dark"), (1024, "light")])
def test_audit_names_filters_and_exports(page, live_desk, held, tmp_path, width, theme):
    login(page, live_desk, "admin")
    layout(page, width, theme)
    page.goto(live_desk + "/admin/audit")
    assert page.locator("#audit-rows td.detail:has-text('{')").count() == 0  # no raw JSON
    page.select_option("select[name=action]", "batch.ticket")
    page.select_option("select[name=client]", label="Aarav Mehta")
    page.click("#audit-filters button[type=submit]")
    page.wait_for_url(re.compile(r".*/admin/audit\?.*action=batch.ticket.*"))
    rows = page.locator("#audit-rows tr[id^=audit-]")
    assert rows.count() >= 1
    for text in rows.all_inner_texts():
        assert "batch.ticket" in text and "Aarav Mehta" in text
    fits(page, "#audit-table", "#audit-table")  # the detail column wraps; nothing runs off the window
    page.screenshot(path=str(SCREENSHOTS / f"audit-{width}-{theme}.png"), full_page=True)
    with page.expect_download() as download:
        page.click("#audit-export")
    saved = Path(tmp_path / "audit.csv")
    download.value.save_as(saved)
    exported = list(csv.DictReader(io.StringIO(saved.read_text(encoding="utf-8"))))
    assert len(exported) == rows.count()
    assert all(r["action"] == "batch.ticket" and "Aarav Mehta" in r["clients"] for r in exported)


def test_exit_page_ticks_everyone_says_rounding_and_reviews_quantities(page, live_desk, held):
    login(page, live_desk, "trader")
    page.goto(f"{live_desk}/instruments/?q={held}")
    page.click(f"#instrument-results a[href*='/instruments/']:has-text('{held}')")
    page.wait_for_url(re.compile(r".*/instruments/\d+$"))
    instrument_id = page.url.rstrip("/").rsplit("/", 1)[1]
    page.goto(f"{live_desk}/exits/{instrument_id}")
    boxes = page.locator("input.pick")
    assert boxes.count() == 12
    assert all(box.is_checked() for box in boxes.all())  # ticked by default
    assert page.locator("td.half:has-text('50% of 3 = 1 (rounded down)')").count() == 12

    page.check("input[name=share][value='50']")
    page.click("button:has-text('Review exit orders')")
    page.wait_for_selector("#exit-review")
    legs = page.locator("#exit-legs tbody tr[id^=leg-]")
    assert legs.count() == 12
    for text in legs.all_inner_texts():
        assert "SELL" in text and "50% of 3 = 1 (rounded down)" in text
    assert [q.strip() for q in page.locator("#exit-legs td.qty-cell").all_inner_texts()] == ["1"] * 12
    assert re.search(r"SELL\s+12", page.inner_text("#exit-total")) and "12 order(s)" in page.inner_text("#exit-total")
    assert colour(page, "#exit-legs .chip.side-sell") != colour(page, "#exit-legs th")
    page.screenshot(path=str(SCREENSHOTS / "exit-review.png"), full_page=True)

    page.click("#exit-review button[value=edit]")  # change to all of it: nothing left held afterwards
    page.wait_for_selector("#exit-form")
    assert page.is_checked("input[name=share][value='50']") and all(b.is_checked() for b in boxes.all())
    page.check("input[name=share][value='100']")
    page.click("button:has-text('Review exit orders')")
    page.wait_for_selector("#exit-review")
    assert [q.strip() for q in page.locator("#exit-legs td.qty-cell").all_inner_texts()] == ["3"] * 12
    page.click("#exit-review button[value=confirm]")
    page.wait_for_url(re.compile(r".*/orders/batches/\d+$"))
    wait_all_complete(page, 12)
    for _ in range(50):  # the fills reach the ledger by the sync job: nothing left to exit then
        page.goto(f"{live_desk}/exits/{instrument_id}")
        if page.locator("input.pick").count() == 0:
            break
        page.wait_for_timeout(300)
    assert page.locator("input.pick").count() == 0
