"""The engine's fill rules on hand-made candles, with exact Decimal answers."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal

import numpy as np
import pytest

from webapp.backtest import engine
from webapp.backtest.charges import Fill, contract_note, plan
from webapp.backtest.engine import BacktestCancelled, Client, Settings, run, run_clients
from webapp.strategies import Action, Candles, Signal, Strategy, create_strategy
from webapp.timeutil import IST

D = Decimal
MONDAY = datetime(2026, 1, 5, 9, 15, tzinfo=IST)

BASE = Settings(
    capital=D("1000000"),
    product="MIS",
    allow_short=True,
    sizing="fixed",
    sizing_value=D("100"),
    tick_size=D("0.05"),
    lot_size=1,
    squareoff=None,
    charges=None,
)


class Scripted(Strategy):
    """Signals given by the test (the engine only reads `signals`)."""

    name = "scripted"
    title = "Scripted"
    summary = "test signals"
    params = ()
    warmup = 0

    def __init__(self, signals: list[Signal]) -> None:
        super().__init__()
        self.script = signals

    def _signals(self, candles: Candles) -> list[Signal]:
        return [s for s in self.script if s.index < len(candles)]


def bars(rows, start: datetime = MONDAY, step: timedelta = timedelta(minutes=1)) -> Candles:
    """Candles from (open, high, low, close) rows, one a `step` from `start`."""
    times = [int((start + k * step).timestamp()) for k in range(len(rows))]
    return Candles.from_rows([(t, o, h, lo, c, 1000) for t, (o, h, lo, c) in zip(times, rows, strict=True)])


def flat(n: int, price: float = 100.0) -> list[tuple[float, float, float, float]]:
    return [(price, price, price, price)] * n


def long_at(i, **levels):
    return Signal(i, Action.ENTER_LONG, **levels)


def test_market_orders_fill_at_the_next_open():
    rows = flat(3) + [(101.0, 102.0, 100.5, 101.5), (103.0, 104.0, 102.0, 103.5), (105.0, 106.0, 104.0, 105.0)]
    result = run(Scripted([long_at(2), Signal(4, Action.EXIT)]), bars(rows), BASE)
    (trade,) = result.trades
    assert (trade.entry_bar, trade.exit_bar) == (3, 5)
    assert (trade.entry_price, trade.exit_price) == (D("101.00"), D("105.00"))
    assert trade.gross == D("400.00") and trade.net == D("400.00") and trade.exit_reason == "signal"
    assert trade.entry_time == datetime(2026, 1, 5, 3, 48, tzinfo=UTC)  # 09:18 IST, the fill bar's start
    assert result.metrics["net_pnl"] == D("400.00") and result.metrics["trades"] == 1
    assert result.equity[-1] == pytest.approx(1_000_400.0)
    assert trade == replace(trade) and hash(trade) == hash(replace(trade))  # a whole frozen dataclass


def test_fill_at_the_signal_bars_close():
    rows = flat(3) + [(101.0, 102.0, 100.5, 101.5), (103.0, 104.0, 102.0, 103.5), (105.0, 106.0, 104.0, 105.0)]
    result = run(Scripted([long_at(2), Signal(4, Action.EXIT)]), bars(rows), replace(BASE, fill="close"))
    (trade,) = result.trades
    assert (trade.entry_bar, trade.exit_bar, trade.entry_price, trade.exit_price) == (2, 4, D("100.00"), D("103.50"))


def test_a_signal_on_the_last_bar_is_dropped_and_an_open_position_ends_at_the_last_close():
    rows = flat(2) + [(101.0, 101.0, 101.0, 101.0), (102.0, 102.5, 101.5, 102.25)]
    result = run(Scripted([long_at(1), Signal(3, Action.EXIT)]), bars(rows), BASE)
    (trade,) = result.trades
    assert (trade.exit_reason, trade.exit_bar, trade.exit_price) == ("end", 3, D("102.25"))


def test_stop_and_target_inside_one_bar_take_the_stop():
    rows = flat(2) + [(100.0, 100.5, 99.5, 100.0), (100.0, 103.0, 97.0, 100.0)]
    strategy = Scripted([long_at(1, stop=98.0, target=102.0)])
    (trade,) = run(strategy, bars(rows), BASE).trades
    assert (trade.exit_reason, trade.exit_bar, trade.exit_price) == ("stop", 3, D("98.00"))
    assert trade.gross == D("-200.00")


def test_gaps_through_a_stop_or_a_target_fill_at_the_open():
    stop_gap = flat(2) + [(100.0, 100.5, 99.5, 100.0), (96.0, 96.5, 95.0, 96.0)]
    (trade,) = run(Scripted([long_at(1, stop=98.0, target=102.0)]), bars(stop_gap), BASE).trades
    assert (trade.exit_reason, trade.exit_price) == ("stop", D("96.00"))
    target_gap = flat(2) + [(100.0, 100.5, 99.5, 100.0), (104.0, 105.0, 103.5, 104.5)]
    (trade,) = run(Scripted([long_at(1, stop=98.0, target=102.0)]), bars(target_gap), BASE).trades
    assert (trade.exit_reason, trade.exit_price) == ("target", D("104.00"))


def test_a_stop_can_fire_in_the_entry_bar():
    rows = flat(2) + [(100.0, 100.2, 97.5, 98.0), (98.0, 98.0, 98.0, 98.0)]
    (trade,) = run(Scripted([long_at(1, stop=98.0)]), bars(rows), BASE).trades
    assert (trade.entry_bar, trade.exit_bar, trade.exit_reason, trade.exit_price) == (2, 2, "stop", D("98.00"))


def test_levels_are_rounded_to_the_tick_away_from_the_price():
    """A long's stop 98.03 -> 98.00 (down), target 101.97 -> 102.00 (up), trail 0.51 -> 0.55; a short's
    mirror."""
    sig = long_at(0, stop=98.03, target=101.97, trail=0.51)
    assert engine.levels(sig, 1, 2000, 0.05) == (1960, 2040, 11)
    short = Signal(0, Action.ENTER_SHORT, stop=101.97, target=98.03)
    assert engine.levels(short, -1, 2000, 0.05) == (2040, 1960, None)
    on_grid = long_at(0, stop=98.05000000000001)  # float noise on the grid stays on it
    assert engine.levels(on_grid, 1, 2000, 0.05)[0] == 1961


def test_short_stop_target_and_slippage():
    rows = flat(2) + [(100.0, 100.5, 99.5, 100.0), (99.0, 99.5, 95.0, 96.0)]
    strategy = Scripted([Signal(1, Action.ENTER_SHORT, stop=102.0, target=97.0)])
    (trade,) = run(strategy, bars(rows), replace(BASE, slippage_ticks=2)).trades
    # the entry sells 2 ticks below the open; the target is a limit: no slippage
    assert (trade.direction, trade.entry_price, trade.exit_price, trade.exit_reason) == (
        -1,
        D("99.90"),
        D("97.00"),
        "target",
    )
    assert trade.gross == D("290.00")


def test_trailing_stop_arms_after_the_first_bar_and_follows_the_high():
    rows = flat(2) + [
        (100.0, 100.0, 98.6, 99.0),  # entry bar: the trail (1.00) is not armed yet
        (99.5, 103.0, 99.5, 102.5),  # armed at 99 (best so far 100): not reached; best 103 moves it to 102
        (102.5, 102.8, 101.5, 101.8),  # low 101.5 <= 102: out at 102
    ]
    (trade,) = run(Scripted([long_at(1, trail=1.0)]), bars(rows), BASE).trades
    assert (trade.exit_reason, trade.exit_bar, trade.exit_price) == ("trail", 4, D("102.00"))


def test_an_exit_signal_at_the_open_comes_before_a_stop_in_that_bar():
    rows = flat(2) + [(100.0, 100.5, 99.5, 100.0), (99.5, 99.6, 97.0, 97.5)]
    strategy = Scripted([long_at(1, stop=98.0), Signal(2, Action.EXIT)])
    (trade,) = run(strategy, bars(rows), BASE).trades
    assert (trade.exit_reason, trade.exit_price) == ("signal", D("99.50"))


def test_reversal_and_long_only():
    rows = flat(2) + [(101.0,) * 4, (102.0,) * 4, (103.0,) * 4]
    signals = [long_at(1), Signal(2, Action.ENTER_SHORT)]
    trades = run(Scripted(signals), bars(rows), BASE).trades
    assert [(t.direction, t.entry_bar, t.exit_bar, t.exit_reason) for t in trades] == [
        (1, 2, 3, "signal"),
        (-1, 3, 4, "end"),
    ]
    long_only = run(Scripted(signals), bars(rows), replace(BASE, allow_short=False)).trades
    assert [(t.direction, t.exit_bar) for t in long_only] == [(1, 3)]


def test_mis_square_off_at_the_set_time_and_no_entry_after_it():
    start = datetime(2026, 1, 5, 15, 12, tzinfo=IST)
    rows = flat(3) + [(101.0, 101.0, 101.0, 101.0), (102.0,) * 4, (103.0,) * 4]  # 15:12 ... 15:17
    settings = replace(BASE, squareoff=time(15, 15))
    (trade,) = run(Scripted([long_at(0), long_at(4)]), bars(rows, start), settings).trades
    assert (trade.exit_reason, trade.exit_bar, trade.exit_price) == ("squareoff", 3, D("101.00"))
    assert trade.exit_time.astimezone(IST).time() == time(15, 15)  # the 15:16 long signal did not enter


def test_mis_day_without_a_bar_after_the_square_off_ends_at_its_last_close():
    day_bars = bars(
        [(100.0,) * 4, (101.0,) * 4, (102.0,) * 4], datetime(2026, 1, 5, 9, 15, tzinfo=IST), timedelta(days=1)
    )
    (trade,) = run(Scripted([long_at(0)]), day_bars, replace(BASE, squareoff=time(15, 15))).trades
    assert (trade.entry_bar, trade.exit_bar, trade.exit_reason, trade.exit_price) == (1, 1, "squareoff", D("101.00"))


def test_cnc_is_carried_overnight():
    days = bars([(100.0,) * 4, (101.0,) * 4, (102.0,) * 4], MONDAY, timedelta(days=1))
    settings = replace(BASE, product="CNC", allow_short=False, squareoff=time(15, 15))
    (trade,) = run(Scripted([long_at(0)]), days, settings).trades
    assert (trade.exit_reason, trade.exit_bar) == ("end", 2)


def test_example_a_through_the_engine():
    """Buy 100 @ 1,000 and sell 100 @ 1,010 the same day, MIS at Zerodha: the worked note, to the paisa."""
    rows = [(1000.0,) * 4, (1000.0,) * 4, (1010.0,) * 4, (1010.0,) * 4]
    settings = replace(BASE, charges="zerodha", squareoff=time(15, 15))
    (trade,) = run(Scripted([long_at(0), Signal(1, Action.EXIT)]), bars(rows), settings).trades
    assert trade.gross == D("1000.00")
    assert trade.charges == D("82.72")  # 82.48 + IPFT inside the exchange charge (Zerodha bills it so)
    assert trade.net == D("917.28")


def test_example_b_through_the_engine():
    """Buy 10 @ 2,500, sell 10 @ 2,600 two days later, CNC: two notes and the DP charge."""
    days = bars([(2500.0,) * 4, (2500.0,) * 4, (2550.0,) * 4, (2600.0,) * 4], MONDAY, timedelta(days=1))
    settings = replace(BASE, product="CNC", allow_short=False, sizing_value=D("10"), charges="zerodha")
    (trade,) = run(Scripted([long_at(0), Signal(2, Action.EXIT)]), days, settings).trades
    assert (trade.entry_price, trade.exit_price, trade.gross) == (D("2500.00"), D("2600.00"), D("1000.00"))
    assert trade.charges == D("72.01")  # 71.94 with IPFT inside the exchange charge
    assert trade.net == D("927.99")


def test_a_days_note_is_shared_among_its_trades_to_the_paisa():
    rows = [(1000.0 + k,) * 4 for k in range(12)]
    signals = [
        long_at(0),
        Signal(2, Action.EXIT),
        long_at(4),
        Signal(6, Action.EXIT),
        long_at(8),
        Signal(9, Action.EXIT),
    ]
    settings = replace(BASE, charges="zerodha", commission=D("1.50"))
    trades = run(Scripted(signals), bars(rows), settings).trades
    fills = []
    for t in trades:
        fills += [Fill("BUY", t.quantity, t.entry_price), Fill("SELL", t.quantity, t.exit_price)]
    note = contract_note(fills, product="MIS", plan=plan("zerodha"), day=MONDAY.date())
    assert sum(t.charges for t in trades) == note.total + 6 * D("1.50")
    assert all(t.net == t.gross - t.charges for t in trades)


def test_sizing_follows_the_live_rules_and_zero_skips():
    rows = flat(2) + [(100.0,) * 4] * 3
    risk = replace(BASE, sizing="risk_pct", sizing_value=D("1"))  # 1% of 10 lakh at risk to a Rs 2 stop
    (trade,) = run(Scripted([long_at(1, stop=98.0)]), bars(rows), risk).trades
    assert trade.quantity == 5000
    lots = replace(BASE, sizing="capital_pct", sizing_value=D("0.01"), lot_size=50)  # Rs 100: not one lot
    result = run(Scripted([long_at(1)]), bars(rows), lots)
    assert result.trades == [] and result.metrics["skipped_entries"] == 1


def test_per_client_results_share_the_signals():
    rows = flat(2) + [(100.0,) * 4, (110.0,) * 4, (110.0,) * 4]
    clients = [
        Client("a", D("100000"), "fixed", D("10")),
        Client("b", D("500000"), "capital_pct", D("10")),
    ]
    results = run_clients(Scripted([long_at(1), Signal(3, Action.EXIT)]), bars(rows), BASE, clients)
    assert results["a"].trades[0].quantity == 10 and results["a"].metrics["net_pnl"] == D("100.00")
    assert results["b"].trades[0].quantity == 500 and results["b"].metrics["net_pnl"] == D("5000.00")
    assert results["b"].equity[0] == pytest.approx(500000.0)
    with pytest.raises(ValueError, match="own key"):
        run_clients(Scripted([]), bars(rows), BASE, [clients[0], clients[0]])


def test_progress_and_cancel():
    candles = bars([(100.0 + (k % 7),) * 4 for k in range(3000)])
    signals = [long_at(k) if k % 2 else Signal(k, Action.EXIT) for k in range(0, 2999)]
    seen: list[float] = []
    run(Scripted(signals), candles, BASE, progress=seen.append)
    assert seen[-1] == 1.0 and len(seen) > 3 and seen == sorted(seen)
    calls = []

    def cancel_later() -> bool:
        calls.append(1)
        return len(calls) > 2

    with pytest.raises(BacktestCancelled):
        run(Scripted(signals), candles, BASE, cancelled=cancel_later)


def test_settings_that_cannot_run_say_why():
    errors = replace(BASE, product="CNC", allow_short=True, charges="nobody", fill="vwap", capital=D("0")).errors()
    assert set(errors) == {"allow_short", "charges", "fill", "capital"}
    with pytest.raises(ValueError, match="short selling needs MIS"):
        run(Scripted([]), bars(flat(3)), replace(BASE, product="CNC"))


def test_metrics_from_known_trades():
    # +400 then -200 then +100 (fixed 100 shares)
    rows = [(100.0,) * 4, (100.0,) * 4, (104.0,) * 4, (104.0,) * 4, (102.0,) * 4, (102.0,) * 4, (103.0,) * 4]
    signals = [
        long_at(0),
        Signal(1, Action.EXIT),
        long_at(2),
        Signal(3, Action.EXIT),
        long_at(4),
        Signal(5, Action.EXIT),
    ]
    m = run(Scripted(signals), bars(rows), BASE).metrics
    assert (m["trades"], m["net_pnl"], m["gross_pnl"], m["charges"]) == (3, D("300.00"), D("300.00"), D("0.00"))
    assert m["win_rate_pct"] == pytest.approx(200 / 3)
    assert m["profit_factor"] == pytest.approx(2.5)
    assert m["expectancy"] == D("100.00") and m["avg_win"] == D("250.00") and m["avg_loss"] == D("-200.00")
    assert m["max_drawdown"] == D("200.00")
    assert m["max_drawdown_pct"] == pytest.approx(200 / 1_000_400 * 100)
    assert m["final_equity"] == D("1000300.00")
    for name in ("return_pct", "cagr_pct", "sharpe", "sortino", "calmar", "exposure_pct", "max_drawdown_duration"):
        assert name in m


def test_the_real_strategies_run_on_a_year_shaped_series():
    rng = np.random.default_rng(5)
    close = np.round(500 * np.exp(np.cumsum(rng.normal(0, 0.002, 5000))) / 0.05) * 0.05
    candles = Candles(
        int(MONDAY.timestamp()) + 60 * np.arange(5000), close, close + 0.5, close - 0.5, close, np.full(5000, 1e3)
    )
    strategy = create_strategy("ema_crossover", {"fast": 5, "slow": 20, "stop_pct": 1.0})
    result = run(strategy, candles, replace(BASE, charges="zerodha"))
    assert result.trades and len(result.equity) == len(result.drawdown) == 5000
    assert result.metrics["net_pnl"] == sum(t.net for t in result.trades)
    assert result.metrics["charges"] > 0
    assert np.all(result.drawdown <= 0)


def test_no_candles_and_bad_prices():
    result = run(Scripted([]), Candles.empty(), BASE)
    assert result.trades == [] and result.metrics["trades"] == 0 and result.metrics["net_pnl"] == D("0.00")
    rows = flat(3) + [(100.0, 101.0, float("nan"), 100.0)]
    with pytest.raises(ValueError, match="non-positive low price at bar 3"):
        run(Scripted([]), bars(rows), BASE)
