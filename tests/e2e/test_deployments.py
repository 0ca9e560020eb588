"""In a browser, on the desk `make run` starts: a trader deploys EMA crossover on 5-minute candles of
three instruments for six clients in paper mode and starts it; the page shows it ACTIVE (whether its
signals then become batches is the runner's test). A bad parameter is refused next to its field."""

import re

import pytest

from tests.e2e.conftest import SCREENSHOTS, login

pytestmark = pytest.mark.slow


def add_instrument(page, symbol: str) -> None:
    page.fill("#instrument-q", symbol)
    page.click(f"#instrument-options .option:has-text('{symbol}')")
    page.wait_for_selector(f"#chosen-instruments .chip:has-text('{symbol}')")


def fill_deployment(page, base: str, name: str) -> None:
    page.goto(base + "/deployments/new")
    page.fill("#name", name)
    page.select_option("#strategy", "ema_crossover")
    page.wait_for_selector("#param_fast")
    page.fill("#param_fast", "3")
    page.fill("#param_slow", "8")
    for symbol in ("INFY", "TCS", "RELIANCE"):
        add_instrument(page, symbol)
    page.select_option("#interval", "5")
    page.select_option("#product", "MIS")
    page.check("input[name=mode][value=paper]")
    page.select_option("#sizing", "fixed")
    page.fill("#sizing_value", "1")
    boxes = page.locator("input[name=clients]")
    for n in range(6):
        boxes.nth(n).check()


def test_trader_deploys_ema_crossover_in_paper_mode_and_starts_it(page, live_desk):
    login(page, live_desk, "trader")
    page.click("#nav-more summary")  # Deployments sits in the header's More menu
    page.click("#nav-more a:has-text('Deployments')")
    page.click("#new-deployment")
    fill_deployment(page, live_desk, "EMA 3/8 on 5m")
    page.fill("#param_fast", "8")  # not below the slow period: refused next to the field, nothing saved
    page.click("#save-deployment")
    assert "must be below the slow period" in page.inner_text("#param_fast-error")
    assert page.locator("#chosen-instruments .chip").count() == 3  # what was chosen is still there
    page.fill("#param_fast", "3")
    page.click("#save-deployment")
    page.wait_for_url(re.compile(r".*/deployments/\d+$"))
    assert page.inner_text("#deployment-state") == "PAUSED"
    assert page.locator("#deployment-clients-table tbody tr").count() == 6
    assert page.inner_text("#deployment-instruments") == "INFY, TCS, RELIANCE"
    page.click("#start-deployment")
    try:
        page.wait_for_selector("#deployment-state:text-is('ACTIVE')", timeout=30_000)
    except Exception:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "deployment-failure.png"), full_page=True)
        raise AssertionError(page.inner_text("main")[:2000]) from None
    assert "started by trader" in page.inner_text("#deployment-reason")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "deployment.png"), full_page=True)
    page.goto(live_desk + "/deployments")
    row = page.locator("#deployments-table tbody tr", has_text="EMA 3/8 on 5m")
    assert "ACTIVE" in row.inner_text() and "INFY, TCS, RELIANCE" in row.inner_text()
    page.goto(live_desk + "/strategies")
    assert page.locator("#strategy-ema_crossover #param-ema_crossover-fast").count() == 1
