"""In a browser: the market watch beside every page (add from search, live prices with their move,
lists, keyboard), the hotkeys and their overlay, the header's index tickers, the truthful feed chip,
and a header and page that fit 1024 and 1440 px wide, dark and light."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from tests.e2e.conftest import SCREENSHOTS, login, wait_for_function

pytestmark = pytest.mark.slow

NIFTY = 256265  # Kite's tokens, as the sample master lists them
BANKNIFTY = 260105


def add(page, symbol: str) -> None:
    hit = page.locator("#mw-found .mw-hit", has=page.locator(".mw-sym", has_text=re.compile(f"^{symbol}$")))
    for _ in range(6):  # the watch was just swapped whole: typing in its first moments can precede htmx's
        page.fill("#mw-search", "")  # listeners on the new search box, as a person's retyping would show
        page.fill("#mw-search", symbol)
        try:
            hit.wait_for(timeout=5_000)
            break
        except PlaywrightTimeout:
            continue
    hit.locator(".mw-add").click()
    page.locator("#mw-list .mw-sym", has_text=re.compile(f"^{symbol}$")).wait_for()


def text_changes(page, selector: str, timeout: float = 30_000) -> None:
    """The element's text becomes something other than what it is now (a live tick moved it)."""
    before = page.inner_text(selector)
    wait_for_function(
        page,
        "([s, t]) => document.querySelector(s) && document.querySelector(s).innerText !== t",
        [selector, before],
        timeout=timeout,
    )


def set_theme(page, base: str, theme: str) -> None:
    page.evaluate("theme => localStorage.setItem('fanout-theme', theme)", theme)
    page.goto(base + "/")
    assert page.evaluate("document.documentElement.dataset.theme") == theme


def test_market_watch_search_live_prices_lists_and_keyboard(page, live_desk):
    login(page, live_desk, "trader")
    wait_for_function(page, "document.body.classList.contains('live')", timeout=15_000)
    # "/" focuses the search; an instrument added from it shows with its price and move
    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.id") == "mw-search"
    add(page, "INFY")
    add(page, "RELIANCE")
    rows = page.locator("#mw-list .mw-row")
    assert rows.count() == 2 and page.inner_text("#mw-count") == "2/50"
    infy = rows.nth(0).get_attribute("data-instrument")
    token = rows.nth(0).locator(".q").get_attribute("id").removeprefix("mw-")
    # live: the LTP moves with the feed's ticks, over the chrome's socket (the page has none of its own)
    text_changes(page, f"#mw-{token} .q-ltp")
    assert re.fullmatch(r"[+-]?\d+\.\d{2}%", page.inner_text(f"#mw-{token} .q-pct"))
    assert re.fullmatch(r"[+-]?[\d,]+\.\d{2}", page.inner_text(f"#mw-{token} .q-chg"))
    # the header's index tickers move too, and the feed chip says nothing while every socket is live
    text_changes(page, f"#ix-{NIFTY} .q-ltp")
    assert page.locator(f"#ix-{BANKNIFTY} .q-ltp").is_visible()
    wait_for_function(page, "document.body.classList.contains('live')")
    assert not page.locator("#feed-state").is_visible()
    rows.nth(1).hover()  # its Buy / Sell show
    page.screenshot(path=str(SCREENSHOTS / "market-watch.png"), full_page=False)

    # keyboard: Esc leaves the search, ↓ from the search enters the list, ↓ again, B opens that row's ticket
    page.keyboard.press("Escape")
    page.focus("#mw-search")
    page.keyboard.press("ArrowDown")
    assert page.evaluate("document.activeElement.dataset.instrument") == infy
    page.keyboard.press("ArrowDown")
    reliance = page.evaluate("document.activeElement.dataset.instrument")
    assert reliance and reliance != infy
    page.keyboard.press("ArrowUp")
    assert page.evaluate("document.activeElement.dataset.instrument") == infy
    page.keyboard.press("ArrowDown")
    page.keyboard.press("b")
    page.wait_for_url(re.compile(r"/orders/new\?"))
    assert f"instrument_id={reliance}" in page.url and "side=BUY" in page.url
    assert page.locator("input[name=action][value=BUY]").is_checked()

    # lists: list 2 is its own; the number keys switch too; the choice carries to the next page
    page.goto(live_desk + "/clients/")
    page.click("#mw-tab-2")
    page.locator("#mw-tab-2.active").wait_for()
    assert page.locator("#mw-list .mw-row").count() == 0
    add(page, "TCS")
    page.keyboard.press("Escape")  # out of the search: keys are hotkeys again
    page.keyboard.press("1")
    page.locator("#mw-tab-1.active").wait_for()
    assert page.locator("#mw-list .mw-sym").all_inner_texts() == ["INFY", "RELIANCE"]
    page.keyboard.press("2")
    page.locator("#mw-tab-2.active").wait_for()
    page.goto(live_desk + "/orders/")
    assert page.locator("#mw-list .mw-sym").all_inner_texts() == ["TCS"]

    # Enter on a row opens its instrument page, where B / S act on the page's instrument
    page.focus("#mw-list .mw-row")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/instruments/\d+$"))
    page.keyboard.press("s")
    page.wait_for_url(re.compile(r"/orders/new\?.*side=SELL"))

    # "?" lists the hotkeys; Esc closes the overlay
    page.goto(live_desk + "/")
    page.keyboard.press("?")
    assert page.locator("#hotkeys-help").is_visible()
    assert "Buy the focused instrument" in page.inner_text("#hotkeys-help")
    page.keyboard.press("Escape")
    wait_for_function(page, "!document.getElementById('hotkeys-help').open")

    # a removed instrument leaves the list
    page.click("#mw-tab-1")
    page.locator("#mw-tab-1.active").wait_for()
    page.locator("#mw-list .mw-row").first.hover()
    page.locator("#mw-list .mw-row").first.locator(".mw-del").click()
    wait_for_function(page, "document.querySelectorAll('#mw-list .mw-row').length === 1")


@pytest.mark.parametrize("theme", ["dark", "light"])
@pytest.mark.parametrize("width", [1024, 1440])
def test_the_chrome_fits_1024_and_1440_dark_and_light(page, live_desk, width, theme):
    page.set_viewport_size({"width": width, "height": 800})
    login(page, live_desk, "admin")  # the most links
    set_theme(page, live_desk, theme)
    wait_for_function(page, "document.body.classList.contains('live')", timeout=15_000)
    for path in ("/", "/orders/new", "/clients/", "/orders/batches", "/instruments/watchlist"):
        page.goto(live_desk + path)
        page.locator("#market-watch").wait_for()
        fits = page.evaluate(
            """() => {
              const bar = document.querySelector('.topbar').getBoundingClientRect();
              const who = document.querySelector('.who').getBoundingClientRect();
              const more = document.querySelector('#nav-more summary').getBoundingClientRect();
              return {scroll: document.documentElement.scrollWidth, inner: innerWidth, bar: bar.height,
                      who: who.right, whoLeft: who.left, navEnd: more.right};
            }"""
        )
        assert fits["scroll"] <= fits["inner"], (path, fits)
        assert fits["who"] <= fits["inner"] and fits["bar"] <= 48, (path, fits)  # one row, nothing pushed off
        assert fits["navEnd"] <= fits["whoLeft"], (path, fits)  # the links and the account side do not overlap
    # the links that do not fit the bar are one click away in "More"
    page.click("#nav-more summary")
    assert page.locator("#nav-more .menu-list a", has_text="Audit").is_visible()
    page.keyboard.press("Escape")
    assert not page.locator("#nav-more .menu-list").is_visible()
    # the market watch starts open at 1440 and as a rail at 1024 (the pages need the room); the toggle
    # flips it, and the choice holds on the next page
    watch_width = "document.getElementById('market-watch').getBoundingClientRect().width"
    assert (page.evaluate(watch_width) > 200) == (width >= 1280)
    for _ in range(2):
        was_open = page.evaluate(watch_width) > 200
        page.click("#mw-toggle")
        page.goto(live_desk + "/orders/new")
        assert (page.evaluate(watch_width) > 200) == (not was_open)
        assert page.evaluate("document.documentElement.scrollWidth") <= width
    # "/" opens a collapsed watch to search it
    if page.evaluate(watch_width) < 50:
        page.keyboard.press("/")
        assert page.evaluate(watch_width) > 200 and page.evaluate("document.activeElement.id") == "mw-search"
