"""In a browser, issue 13's "Done when": on the desk as `make run` starts it, a trader backtests EMA
crossover over a year of a demo instrument, reads the equity curve, the trades and the charges, sweeps the
fast and slow periods, and deploys the best pair to paper (a paused paper deployment)."""

from __future__ import annotations

import re
import time

import pytest

from tests.e2e.conftest import login, wait_for_function

pytestmark = pytest.mark.slow


def wait_for_history(page, base: str, timeout: float = 600) -> None:
    """The demo's year of history is simulated by a job the desk queues at its first start: wait for it
    (the form lists only instruments with stored candles)."""
    deadline = time.monotonic() + timeout
    while True:
        page.goto(base + "/backtests/new")
        coverage = page.locator("#coverage")
        if coverage.count() and re.search(r"\(\d{2},?\d{3} bars\)", coverage.inner_text()):
            return
        assert time.monotonic() < deadline, "the demo's history did not arrive"
        page.wait_for_timeout(3000)


def test_backtest_sweep_and_deploy_the_best_pair_to_paper(page, live_desk):
    login(page, live_desk, "trader")
    page.click("#nav-more summary")  # Backtests sits in the header's More menu
    page.click("#nav-more a:has-text('Backtests')")
    page.click("#new-backtest")
    wait_for_history(page, live_desk)
    page.select_option("#strategy", "ema_crossover")
    symbol = page.locator("#instrument_id option:checked").inner_text()  # the one with the most history
    assert symbol in ("RELIANCE", "TCS", "INFY", "HDFCBANK", "SBIN")  # a demo instrument
    page.select_option("#interval", "15")
    # the form says what history is stored, and sets the range to its last year
    wait_for_function(page, "/15-minute candles from/.test((document.getElementById('coverage') || {}).textContent)")
    start, end = page.input_value("#start"), page.input_value("#end")
    assert start < end
    page.fill("#param_fast", "9")
    page.fill("#param_slow", "21")
    page.click("#submit-backtest")
    page.wait_for_url(re.compile(r"/backtests/\d+$"))
    run_url = page.url

    # the progress bar polls until the run is done, then the page shows the results
    page.wait_for_selector("#metric-net_pnl", timeout=120_000)
    assert page.inner_text("#run-state") == "DONE"
    wait_for_function(page, "Number(document.getElementById('equity-chart').dataset.points || 0) > 0")
    assert page.locator("#equity-chart canvas").count() > 0 and page.locator("#drawdown-chart canvas").count() > 0
    charges = page.inner_text("#metric-charges")
    assert "Charges paid" in charges and re.search(r"[1-9]", charges.split("\t")[-1])
    trades_heading = page.inner_text("#trades h2")
    assert int(re.search(r"\((\d+)\)", trades_heading).group(1)) > 0
    assert "IST" in page.inner_text("#trades tbody tr >> nth=0")
    with page.expect_download() as download:
        page.click("#trades-csv")
    assert download.value.suggested_filename.endswith("-trades.csv")

    # sweep the fast and slow periods from this run's settings
    page.click("#sweep-from-run")
    page.fill("#sweep_fast", "5, 9")
    page.fill("#sweep_slow", "21, 30")
    page.click("#submit-backtest")
    page.wait_for_url(re.compile(r"/backtests/sweeps/\d+"))
    # it polls while runs are pending, then the page reloads with them all (the partial stops polling)
    page.wait_for_selector("#sweep-progress:not([hx-get])", timeout=300_000)
    assert "4 of 4 ended" in page.inner_text("#sweep-counts")
    assert page.locator("#heatmap td[class*=heat-]").count() == 4
    page.click("#sort-net_pnl")  # the table sorts on the server
    assert "sort=net_pnl" in page.url

    # the best pair becomes a paused paper deployment
    page.click("#best-run")
    page.wait_for_selector("#deploy-to-paper")
    assert page.url != run_url
    page.click("#deploy-to-paper")
    page.wait_for_url(re.compile(r"/deployments/\d+$"))
    body = page.inner_text("main")
    assert "PAUSED" in body.upper() and "ema_crossover" in body.lower().replace(" ", "_") or "EMA crossover" in body
