"""In a browser, on the desk `make run` starts: a fill made in one tab shows a toast on another page
of the same user (its page-chrome socket), the bell's count moves, and the notifications page lists it."""

import re

import pytest

from tests.e2e.conftest import SCREENSHOTS, login, wait_for_function, watch_csp

pytestmark = pytest.mark.slow

BELL = (
    "(() => { const c = document.querySelector('#notify-bell .bell-count'); return c ? c.textContent.trim() : '0'; })()"
)


def place(page, base: str, symbol: str, qty: int) -> None:
    """A market BUY of `qty` for every client on the ticket (the paper exchange fills it at once)."""
    page.goto(base + "/orders/new")
    page.fill("#instrument-q", symbol)
    page.click(f"#instrument-options .option:has-text('{symbol}')")
    page.check("input[name=action][value=BUY]")
    page.select_option("#product", "MIS")
    page.select_option("#order_type", "MARKET")
    page.fill("#fill-same", str(qty))
    page.click("button[data-fill=same]")
    page.click("#submit-ticket")
    page.wait_for_url(re.compile(r".*/orders/batches/\d+$"))


def test_a_fill_toasts_on_another_page_and_is_listed(page, live_desk):
    login(page, live_desk, "trader")
    page.goto(live_desk + "/clients/")
    wait_for_function(page, "document.body.classList.contains('live')", timeout=20_000)  # the chrome socket is open
    before = page.evaluate(BELL)

    ticket = page.context.new_page()
    ticket.csp_violations = watch_csp(ticket)
    place(ticket, live_desk, "TCS", 1)
    batch_url = ticket.url

    # generous: on a fresh desk the default queue's worker first catches up the day roll (a minute or more
    # on a loaded machine) before the notifications job runs again
    wait_for_function(page, "document.querySelector('#toasts .toast[data-toast=fill]') !== null", timeout=120_000)
    toast = page.locator("#toasts .toast[data-toast=fill]").first
    assert "Filled BUY 1 TCS" in toast.inner_text()
    assert "toast-green" in toast.get_attribute("class")
    wait_for_function(page, f"{BELL} !== {before!r}", timeout=10_000)
    assert page.evaluate(BELL) != before
    assert page.url.endswith("/clients/")  # no reload: the toast came over the socket
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "notifications-toast.png"))
    toast.locator("a.toast-body").click()  # opens the order's batch
    page.wait_for_url(re.compile(r".*/orders/batches/\d+$"))
    assert page.url == batch_url

    page.click("#notify-bell")
    page.wait_for_url(re.compile(r".*/notifications$"))
    assert page.locator(".notify-list tr.unread").filter(has_text="Filled BUY 1 TCS").count() >= 1
    page.screenshot(path=str(SCREENSHOTS / "notifications.png"), full_page=True)
    page.click("button:has-text('Mark all read')")
    page.wait_for_selector("text=0 unread")
    assert page.evaluate(BELL) == "0"
    page.set_viewport_size({"width": 1024, "height": 800})
    page.goto(live_desk + "/notifications?kind=fill")
    assert page.locator(".notify-list tbody tr").count() >= 1
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")  # no sideways scroll at 1024
    ticket.close()
    assert ticket.csp_violations == []
